"""The results table's model: search results (SearchResult.to_json() dicts) as rows.

Rows live in a Python list, never in Qt items: storing Python strings through
QTableWidgetItem.setData crashes PySide6 6.12 at interpreter exit, and a list also keeps
100k-row result sets cheap (set_results does no per-row work).

Overview peaks are not fetched here (that would read the database on the GUI thread);
the window asks missing_overviews() for the visible rows, requests those from the engine
thread, and feeds the answers back through set_overview(). GUI thread only.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont

from engine.catalog.text import printable
from gui.file_urls import file_url

# Relevance before Folder: a long path is what a narrow window may cut, never the score.
COLUMNS = ("Name", "Waveform", "Duration", "Rate", "Ch", "Format", "Relevance", "Folder")
(
    COL_NAME,
    COL_WAVEFORM,
    COL_DURATION,
    COL_RATE,
    COL_CHANNELS,
    COL_FORMAT,
    COL_RELEVANCE,
    COL_FOLDER,
) = range(len(COLUMNS))

PATH_ROLE = Qt.ItemDataRole.UserRole + 1
PEAKS_ROLE = Qt.ItemDataRole.UserRole + 2
OFFLINE_ROLE = Qt.ItemDataRole.UserRole + 3
_OFFLINE_BRUSH = QBrush(QColor(128, 128, 128))


@functools.cache
def _more_font() -> QFont:
    """Italic, made on first use (a QFont needs the application to exist)."""
    font = QFont()
    font.setItalic(True)
    return font


_NUMERIC = {COL_DURATION, COL_RATE, COL_CHANNELS, COL_RELEVANCE}
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
# Overviews are ~1 KiB each; this bounds the cache to a few tens of MiB however long the
# user scrolls through a huge result set.
OVERVIEW_CACHE_SIZE = 20_000

_Index = QModelIndex | QPersistentModelIndex


def format_duration(seconds: float | None) -> str:
    """'2.500 s' under a minute, else 'm:ss.mmm' (e.g. '1:02.500')."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.3f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:06.3f}"


def format_rate(rate: int | None) -> str:
    """'48k', '44.1k', '22.05k'; empty when unknown."""
    return f"{rate / 1000:g}k" if rate else ""


def _text_key(field: str) -> Callable[[dict], Any]:
    return lambda r: (r.get(field) or "").casefold()


def _number_key(field: str) -> Callable[[dict], Any]:
    # Unknown values sort below every number rather than raising on None < float.
    return lambda r: (r.get(field) is not None, r.get(field) or 0)


_SORT_KEYS: dict[int, Callable[[dict], Any]] = {
    COL_NAME: _text_key("name"),
    COL_DURATION: _number_key("duration"),
    COL_RATE: _number_key("sample_rate"),
    COL_CHANNELS: _number_key("channels"),
    COL_FORMAT: _text_key("format"),
    COL_FOLDER: _text_key("folder"),
    COL_RELEVANCE: _number_key("score"),
}


def relative_folder(folder: str, roots: tuple[str, ...] | list[str]) -> str:
    """`folder` inside the first of `roots` (longest first) that holds it, as
    "<root name>/<the rest>"; unchanged when none does."""
    for root in roots:
        base = root.rstrip("/\\")
        if folder == base or folder.startswith(base + "/") or folder.startswith(base + "\\"):
            name = base.replace("\\", "/").rsplit("/", 1)[-1] or base
            rest = folder[len(base) :].lstrip("/\\")
            return f"{name}/{rest}" if rest else name
    return folder


class ResultsModel(QAbstractTableModel):
    """Search results as a sortable, draggable table. GUI thread only."""

    # The view scrolled to the last row of a page that may have more: the offset to ask
    # the engine for (the window asks; the model never reads the catalog).
    more_wanted = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._results: list[dict] = []
        self._more = False  # the last page was full: the engine may have more
        self._asked: int | None = None  # offset of the page asked for and not yet come
        self._sorted: tuple[int, Qt.SortOrder] | None = None
        self._overviews: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        # file id -> rows; built on first need, since set_results must stay O(1) per row.
        self._rows_by_id: dict[int, list[int]] | None = None
        self._roots: list[str] = []  # library folders, longest first
        self._rendered: dict[str, list[str]] = {}  # source -> its renders for dragging
        # The transfer settings convert: a file goes out only as its render.
        self.converting = False

    # -- content ---------------------------------------------------------------------

    def set_results(self, results: list[dict], more: bool = False) -> None:
        """Replace all rows, in the given (engine) order. Does not re-apply a sort.
        `more`: the engine may have further pages (asked for when the view reaches the
        end, through more_wanted)."""
        self.beginResetModel()
        self._results = list(results)
        self._rows_by_id = None
        self._more, self._asked, self._sorted = more, None, None
        self.endResetModel()

    def append_results(self, offset: int, results: list[dict], more: bool) -> bool:
        """Add the page that starts at `offset` (False, adding nothing, when the rows
        changed since it was asked for); a sort the user chose is applied to it too."""
        if offset != self._asked or offset != len(self._results):
            return False
        self._asked, self._more = None, more
        if results:
            first = len(self._results)
            self.beginInsertRows(QModelIndex(), first, first + len(results) - 1)
            self._results.extend(results)
            self._rows_by_id = None
            self.endInsertRows()
            if self._sorted is not None:
                self.sort(*self._sorted)
        return True

    def has_more(self) -> bool:
        return self._more

    def canFetchMore(self, parent: _Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and self._more and self._asked is None

    def fetchMore(self, parent: _Index = QModelIndex()) -> None:  # noqa: B008
        if self.canFetchMore(parent):
            self._asked = len(self._results)
            self.more_wanted.emit(self._asked)

    def result(self, row: int) -> dict:
        """The result dict shown in `row` (IndexError when out of range)."""
        return self._results[row]

    def results(self) -> list[dict]:
        """All rows in display order (a copy of the list; the dicts are shared)."""
        return list(self._results)

    # -- overview peaks --------------------------------------------------------------

    def set_overview(self, file_id: int, mins: np.ndarray, maxs: np.ndarray) -> None:
        """Store a file's overview peaks and repaint its rows.

        Pass empty arrays for a file that has no peaks, so it is not listed as missing
        again (it draws as a flat line).
        """
        self._overviews[file_id] = (
            np.asarray(mins, dtype=np.float32),
            np.asarray(maxs, dtype=np.float32),
        )
        self._overviews.move_to_end(file_id)
        while len(self._overviews) > OVERVIEW_CACHE_SIZE:
            self._overviews.popitem(last=False)
        for row in self._rows_for(file_id):
            index = self.index(row, COL_WAVEFORM)
            self.dataChanged.emit(index, index, [PEAKS_ROLE])

    def overview(self, file_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The stored overview of a file, or None."""
        return self._overviews.get(file_id)

    def clear_overviews(self) -> None:
        """Forget all overviews (e.g. after a rescan changed files)."""
        self._overviews.clear()
        if self._results:
            self.dataChanged.emit(
                self.index(0, COL_WAVEFORM),
                self.index(len(self._results) - 1, COL_WAVEFORM),
                [PEAKS_ROLE],
            )

    def missing_overviews(self, rows: Iterable[int]) -> list[int]:
        """Distinct file ids of the given rows that have no overview yet, in row order.

        Rows out of range are skipped, so a view's visible range can be passed as is.
        """
        missing: list[int] = []
        seen: set[int] = set()
        count = len(self._results)
        for row in rows:
            if 0 <= row < count:
                file_id = self._results[row]["id"]
                if file_id not in self._overviews and file_id not in seen:
                    seen.add(file_id)
                    missing.append(file_id)
        return missing

    def _rows_for(self, file_id: int) -> list[int]:
        if self._rows_by_id is None:
            rows_by_id: dict[int, list[int]] = {}
            for row, r in enumerate(self._results):
                rows_by_id.setdefault(r["id"], []).append(row)
            self._rows_by_id = rows_by_id
        return self._rows_by_id.get(file_id, [])

    # -- Qt model interface ----------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._results)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self,
        section: int,
        orientation: Qt.Orientation,
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(COLUMNS):
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section]
            if role == Qt.ItemDataRole.TextAlignmentRole and section in _NUMERIC:
                return _RIGHT
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        if not 0 <= row < len(self._results):
            return None
        r = self._results[row]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(r, col, self._roots)
        if role == PATH_ROLE:
            return r["path"]
        if role == Qt.ItemDataRole.ToolTipRole:
            return printable(r["path"])
        if role == PEAKS_ROLE:
            return self._overviews.get(r["id"])
        if role == Qt.ItemDataRole.TextAlignmentRole and col in _NUMERIC:
            return _RIGHT
        if role == Qt.ItemDataRole.ForegroundRole and r.get("offline"):
            return _OFFLINE_BRUSH  # greyed: its folder could not be read at the last scan
        if role == OFFLINE_ROLE:
            return bool(r.get("offline"))
        if role == Qt.ItemDataRole.FontRole and not r.get("match", True):
            return _more_font()  # italic: shown because it sounds alike, not a match
        return None

    def set_rendered(self, source: str, paths: list[str] | None) -> None:
        """What dragging `source` delivers (its renders; None: the file itself)."""
        if paths:
            self._rendered[source] = list(paths)
        else:
            self._rendered.pop(source, None)

    def unrendered(self, indexes: Sequence[_Index]) -> list[str]:
        """The paths of these rows that must be rendered before they can be dragged (none
        when the transfer settings deliver files as they are)."""
        if not self.converting:
            return []
        rows = self._distinct_rows(indexes)
        return [p for r in rows if (p := self._results[r]["path"]) not in self._rendered]

    def _distinct_rows(self, indexes: Sequence[_Index]) -> list[int]:
        """The rows of these indexes (any column), each once, top first."""
        return sorted({i.row() for i in indexes if i.isValid() and i.row() < len(self._results)})

    def clear_rendered(self) -> None:
        """The transfer settings changed: files go out as they are until rendered again."""
        self._rendered.clear()

    @property
    def roots(self) -> list[str]:
        """The library folders, longest first."""
        return list(self._roots)

    def set_roots(self, roots: list[str]) -> None:
        """The library folders: the Folder column shows paths inside them."""
        self._roots = sorted(roots, key=len, reverse=True)
        if self._results:
            self.dataChanged.emit(
                self.index(0, COL_FOLDER), self.index(len(self._results) - 1, COL_FOLDER)
            )

    @staticmethod
    def _text(r: dict, col: int, roots: tuple[str, ...] | list[str] = ()) -> str | None:
        if col == COL_NAME:
            return printable(r["name"])
        if col == COL_DURATION:
            return format_duration(r.get("duration"))
        if col == COL_RATE:
            return format_rate(r.get("sample_rate"))
        if col == COL_CHANNELS:
            return "" if r.get("channels") is None else str(r["channels"])
        if col == COL_FORMAT:
            return r.get("format") or ""
        if col == COL_FOLDER:
            return printable(relative_folder(r.get("folder") or "", roots))
        if col == COL_RELEVANCE:
            return "" if r.get("score") is None else f"{r['score']:.2f}"
        return None  # the Waveform column is painted by MiniWaveformDelegate

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (
            Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled
        )

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort rows by a column; numbers numerically, text case-insensitively.

        The sort is stable (equal keys keep their current relative order, in both
        directions), and selections and other persistent indexes follow their rows.
        """
        key = _SORT_KEYS.get(column)
        if key is None:
            return
        self._sorted = (column, order)
        if len(self._results) < 2:
            return
        self.layoutAboutToBeChanged.emit()
        results = self._results
        keys = [key(r) for r in results]
        # Python's sort is stable with reverse=True too.
        order_ = sorted(
            range(len(results)),
            key=keys.__getitem__,
            reverse=order == Qt.SortOrder.DescendingOrder,
        )
        self._results = [results[i] for i in order_]
        self._rows_by_id = None
        persistent = self.persistentIndexList()
        if persistent:
            new_row = [0] * len(order_)
            for new, old in enumerate(order_):
                new_row[old] = new
            self.changePersistentIndexList(
                persistent,
                [self.index(new_row[i.row()], i.column()) for i in persistent],
            )
        self.layoutChanged.emit()

    # -- drag and drop ---------------------------------------------------------------

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list"]

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    def mimeData(self, indexes: Sequence[_Index]) -> QMimeData:
        """file:// URLs (and the paths as plain text) of the distinct rows, top first."""
        rows = self._distinct_rows(indexes)
        # A file rendered with the transfer settings goes out as its render(s).
        paths = [
            p for row in rows
            for p in self._rendered.get(self._results[row]["path"], [self._results[row]["path"]])
        ]  # fmt: skip
        mime = QMimeData()
        mime.setUrls([file_url(p) for p in paths])
        mime.setText("\n".join(printable(p) for p in paths))
        return mime
