"""Scanning: walking folders, analysing files (format, levels, peaks, metadata, UCS).

soundfile, mutagen and numpy; never imports torch, torchaudio or faiss.
"""
