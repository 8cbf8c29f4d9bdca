"""Curating a library's files: writing the catalog's metadata into the audio files safely
(write.py: temporary copy, verification, rename; riff.py for WAV/BWF/RF64, aiff.py for
AIFF, tags.py for the formats mutagen writes). The fields and their edits live in the
catalog (engine/catalog/fields.py, engine/catalog/edits.py)."""
