"""Every error the engine raises on purpose, in one tree. Any thread.

    SonariumError                   catch this once in a front end
    ├── LibraryError                a library operation cannot be done (bad path, not a folder)
    │   ├── CatalogUnusable         the catalog is damaged or from a newer Sonarium (never written)
    │   ├── CannotWrite             the library's folder is read-only or its disk is full
    │   ├── NotIndexed              the sounds a request needs are not embedded (yet)
    │   ├── FileUnreadable          an audio file given to a request cannot be read
    │   └── FileNotWritable         metadata cannot go into an audio file (read-only,
    │                               offline, a format Sonarium cannot write, damaged)
    ├── QueryError                  a malformed query (also a ValueError)
    ├── ModelUnavailable            a model's weights are missing, unreachable or unsafe
    ├── NothingToLearn              too few described files to learn text search from
    ├── AdapterInvalid              an adapter file is not one this build can read
    └── Cancelled                   the user cancelled (Ctrl+C, Cancel button, stdin)

Messages say what is wrong and what to do in words that fit both front ends ("rescan the
library", "install the aisfx model"); never a CLI flag or a menu path. The CLI and the GUI
add their own "how" (a command to type, a button to press).

Scanning's internal signals (a file vanished or changed while being read) are not here:
they never leave the scanner, which turns them into error rows with a reason.
"""

from __future__ import annotations


class SonariumError(Exception):
    """The root of every error the engine raises for a user to read."""


class LibraryError(SonariumError):
    """A library operation cannot be done as asked (bad path, not a library folder...)."""


class CatalogUnusable(LibraryError):
    """The library's catalog is damaged, or was written by a newer Sonarium; it is left
    exactly as it is."""


class CannotWrite(LibraryError, OSError):
    """A write to the library (the catalog or a file beside it) is impossible now: its
    folder is read-only or the disk is full. Nothing was half written; reading goes on.
    Also an OSError, so code that guards file writes catches it as such."""


class NotIndexed(LibraryError):
    """The request needs embedded sounds (or a vector space) that the library lacks yet."""


class ClusterUnusable(LibraryError):
    """The cluster asked to index cannot do it (its nodes cannot read the library, run
    another model, or keep failing)."""


class FileUnreadable(LibraryError):
    """An audio file given to a request (find similar, info) cannot be read."""


class FileNotWritable(LibraryError):
    """Metadata cannot be written into an audio file: it is read-only or offline, of a
    format Sonarium cannot write, or damaged. The file was not touched."""


class QueryError(SonariumError, ValueError):
    """A malformed search query; the message says what to change."""


class TransferError(SonariumError, ValueError):
    """Transfer settings (rate, bits, format, channels, fades, normalisation) that cannot
    be rendered; the message says why (engine/audio/transfer.py)."""


class ModelUnavailable(SonariumError):
    """A model's weights are missing, unreachable or could not be loaded safely.

    The message is meant for the user: the reason, then what to do about it.
    """


class NothingToLearn(SonariumError):
    """Too few described files (or no embedded sounds) to learn text search from yet.

    A normal state for a new library, not a failure: front ends report it quietly.
    """


class AdapterInvalid(SonariumError, ValueError):
    """An adapter file is truncated, foreign or from another version."""


class Cancelled(SonariumError):
    """Work stopped because the user asked; what was done is kept and the next run resumes."""
