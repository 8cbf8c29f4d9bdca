"""Browse: the library's folders as a tree with file counts (subfolders read when a folder
is opened), the UCS categories the files have (Category > SubCategory, with counts), the
collections, favorites and the sounds auditioned lately. Clicking a folder, a category or
Favorites narrows the results to it, together with whatever is typed in the search field;
clicking a collection or Recently auditioned lists those sounds. GUI thread only; counts
come from the bridge."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from engine.catalog.text import printable

_KIND = Qt.ItemDataRole.UserRole
_VALUE = Qt.ItemDataRole.UserRole + 1
_LOADED = Qt.ItemDataRole.UserRole + 2


def folder_filter(path: str) -> str:
    """The query filter for the files under a folder (`folder:"..."`, quotes escaped)."""
    return 'folder:"' + path.replace('"', "") + '"'


class BrowsePanel(QWidget):
    """Emits ``filter_chosen(query filter, label)`` (empty: browse everything),
    ``subfolders_wanted(folder)`` when a folder is opened the first time, and
    ``recent_chosen()`` for the recently auditioned list, ``collection_chosen(name)``."""

    filter_chosen = Signal(str, str)
    subfolders_wanted = Signal(str)
    recent_chosen = Signal()
    collection_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Browse", "Files"])
        self.tree.setColumnWidth(0, 230)
        self.everything = self._top("All sounds", "all", "")
        self.folders = self._top("Folders", "heading", "")
        self.categories = self._top("Categories", "heading", "")
        self.collections = self._top("Collections", "heading", "")
        # Queries and names live in Python dicts keyed by the item's texts, not in item
        # data (see LibraryPanel.set_status: PySide6 and Python strings at exit).
        self._category_queries: dict[tuple[str, str], str] = {}
        self._collection_names: dict[str, str] = {}
        self.favorites = self._top("★ Favorites", "filter", "fav")
        self.recent = self._top("Recently auditioned", "recent", "")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        self.tree.itemClicked.connect(self._clicked)
        self.tree.itemExpanded.connect(self._expanded)

    def _top(self, text: str, kind: str, value: str) -> QTreeWidgetItem:
        item = QTreeWidgetItem([text, ""])
        item.setData(0, _KIND, kind)
        item.setData(0, _VALUE, value)
        self.tree.addTopLevelItem(item)
        return item

    def set_roots(self, folders: list[dict], favorites: int, recent: int) -> None:
        """Library folders (Library.folders(): path, files), the favorites' count and how
        many sounds were auditioned lately. Keeps what is open when the roots stay."""
        known = {self.folders.child(i).data(0, _VALUE) for i in range(self.folders.childCount())}
        if known != {f["path"] for f in folders}:
            self.folders.takeChildren()
            for f in folders:
                self._folder_item(self.folders, f["path"], printable(f["path"]), f["files"])
            self.folders.setExpanded(True)
        else:
            for i in range(self.folders.childCount()):
                child = self.folders.child(i)
                count = next(f["files"] for f in folders if f["path"] == child.data(0, _VALUE))
                child.setText(1, str(count))
        self.favorites.setText(1, str(favorites))
        self.recent.setText(1, str(recent))

    def set_categories(self, rows: list[dict]) -> None:
        """The UCS categories the files have (Library.ucs_categories()): Category >
        SubCategory (CatID), with file counts; keeps the node open or closed."""
        self.categories.takeChildren()
        self._category_queries = {}
        tops: dict[str, QTreeWidgetItem] = {}
        totals: dict[str, int] = {}
        for r in rows:
            category = r["category"] or r["catid"]
            top = tops.get(category)
            if top is None:
                top = tops[category] = QTreeWidgetItem([printable(category), ""])
                top.setData(0, _KIND, "category")
                self.categories.addChild(top)
                self._category_queries[(top.text(0), "")] = (
                    f'cat:"{category}"' if r["category"] else f"cat:{r['catid']}"
                )
            totals[category] = totals.get(category, 0) + int(r["files"])
            label = f"{r['subcategory']} ({r['catid']})" if r["subcategory"] else r["catid"]
            child = QTreeWidgetItem([printable(label), str(r["files"])])
            child.setData(0, _KIND, "category")
            top.addChild(child)
            self._category_queries[(top.text(0), child.text(0))] = f"cat:{r['catid']}"
        for category, top in tops.items():
            top.setText(1, str(totals[category]))
        self.categories.setText(1, str(len(tops)) if tops else "")

    def set_collections(self, collections: list[dict]) -> None:
        """The collections (Library.collections(): name, files) with their file counts."""
        self.collections.takeChildren()
        self._collection_names = {}
        for c in collections:
            item = QTreeWidgetItem([printable(str(c["name"])), str(c["files"])])
            item.setData(0, _KIND, "collection")
            self.collections.addChild(item)
            self._collection_names[item.text(0)] = str(c["name"])
        self.collections.setText(1, str(len(collections)) if collections else "")

    def _folder_item(self, parent: QTreeWidgetItem, path: str, text: str, count: int) -> None:
        item = QTreeWidgetItem([text, str(count)])
        item.setData(0, _KIND, "folder")
        item.setData(0, _VALUE, path)
        item.setToolTip(0, printable(path))
        # Opened on demand: a placeholder child gives it an arrow until then.
        item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
        parent.addChild(item)

    def _find(self, path: str, under: QTreeWidgetItem | None = None) -> QTreeWidgetItem | None:
        under = under or self.folders
        for i in range(under.childCount()):
            child = under.child(i)
            if child.data(0, _VALUE) == path:
                return child
            if path.startswith(str(child.data(0, _VALUE)).rstrip("/") + "/"):
                return self._find(path, child)
        return None

    def set_subfolders(self, folder: str, subfolders: list[tuple[str, int]]) -> None:
        """The folders directly inside `folder` with their file counts (all levels)."""
        item = self._find(folder)
        if item is None:
            return
        item.takeChildren()
        item.setData(0, _LOADED, True)
        for path, count in subfolders:
            self._folder_item(item, path, printable(path.rsplit("/", 1)[-1]), count)
        if not subfolders:
            item.setChildIndicatorPolicy(
                QTreeWidgetItem.ChildIndicatorPolicy.DontShowIndicatorWhenChildless
            )

    def _expanded(self, item: QTreeWidgetItem) -> None:
        if item.data(0, _KIND) == "folder" and not item.data(0, _LOADED):
            self.subfolders_wanted.emit(str(item.data(0, _VALUE)))

    def _clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        kind = item.data(0, _KIND)
        if kind == "folder":
            path = str(item.data(0, _VALUE))
            self.filter_chosen.emit(folder_filter(path), printable(path))
        elif kind == "filter":
            self.filter_chosen.emit(str(item.data(0, _VALUE)), item.text(0))
        elif kind == "all":
            self.filter_chosen.emit("", "")
        elif kind == "recent":
            self.recent_chosen.emit()
        elif kind == "category":
            parent = item.parent()
            top = parent is self.categories
            key = (item.text(0), "") if top else (parent.text(0), item.text(0))
            query = self._category_queries.get(key)
            if query:
                self.filter_chosen.emit(query, item.text(0))
        elif kind == "collection":
            name = self._collection_names.get(item.text(0))
            if name is not None:
                self.collection_chosen.emit(name)
