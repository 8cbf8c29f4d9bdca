"""file:// URLs for drag and drop, exact to the byte. GUI thread.

QUrl.fromLocalFile and toLocalFile go through QString, which cannot hold a file name that
is not valid UTF-8 (an old CD rip's Latin-1 names); these build and read the percent-
encoded URL from the name's bytes instead, so a DAW receives the very file.
"""

from __future__ import annotations

import os
import urllib.parse

from PySide6.QtCore import QByteArray, QUrl

from engine.catalog.paths import os_bytes, to_catalog


def file_url(stored: str) -> QUrl:
    """The file:// URL of a catalog path (engine.catalog.paths)."""
    encoded = b"file://" + urllib.parse.quote_from_bytes(os_bytes(stored), safe="/").encode()
    return QUrl.fromEncoded(QByteArray(encoded))


def local_path(url: QUrl) -> str | None:
    """The catalog path a dropped file:// URL names, or None for other URLs."""
    if not url.isLocalFile():
        return None
    path = bytes(url.toEncoded(QUrl.ComponentFormattingOption.FullyEncoded).data())
    path = urllib.parse.unquote_to_bytes(urllib.parse.urlsplit(path).path)
    return to_catalog(os.fsdecode(path))
