"""Library panel: folders with file counts, add/remove/rescan, indexing progress, errors,
the collections (click one to show its files; drop results on one to add them; new,
rename, export as a folder copy, delete). The Browse panel lists them with the UCS
categories for browsing."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.catalog.text import printable


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d} left" if seconds >= 60 else f"{seconds}s left"


class CollectionList(QListWidget):
    """The collections, taking dropped results (file URLs): ``files_dropped(row, paths)``."""

    files_dropped = Signal(int, list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(True)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        item = self.itemAt(event.position().toPoint())
        if event.mimeData().hasUrls() and item is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:
        item = self.itemAt(event.position().toPoint())
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if item is not None and paths:
            self.files_dropped.emit(self.row(item), paths)
            event.acceptProposedAction()


class LibraryPanel(QWidget):
    """GUI thread only. Emits requests; the window forwards them to the bridge."""

    add_requested = Signal(object)  # list of folder paths
    remove_requested = Signal(str)
    rescan_requested = Signal()
    retry_requested = Signal()  # rescan, reading the unreadable files again
    forget_offline_requested = Signal()  # rescan, forgetting files whose folders are gone
    pause_toggled = Signal(bool)
    collection_chosen = Signal(str)
    collection_delete_requested = Signal(str)
    collection_create_requested = Signal(str)
    collection_rename_requested = Signal(str, str)  # old name, new name
    collection_export_requested = Signal(str, str)  # name, folder
    collection_files_dropped = Signal(str, list)  # name, file paths

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.folders = QListWidget()
        self.folders.setSelectionMode(QListWidget.SelectionMode.SingleSelection)
        self.add_button = QPushButton("Add…")
        self.remove_button = QPushButton("Remove")
        self.rescan_button = QPushButton("Rescan")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.progress_label = QLabel("")
        # Fixed size: a label that re-wraps on every progress update relayouts the whole
        # window each time (docs/measurements.md, library panel).
        self.progress_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.progress_label.setFixedHeight(self.progress_label.fontMetrics().height() * 2 + 4)
        self.progress_label.setWordWrap(True)
        self.errors_button = QPushButton("Unreadable files (0)")
        self.errors_button.setFlat(True)
        self.errors_button.setEnabled(False)
        self._errors: list[dict] = []
        self.folder_paths: list[str] = []
        self.collections = CollectionList()
        self.collections.setSelectionMode(QListWidget.SelectionMode.SingleSelection)
        self.collections.setToolTip(
            "Click to show a collection's files (select them all there to drag them into a "
            "DAW); drop results on one to add them"
        )
        self.collections.setMaximumHeight(140)
        self.forget_offline_button = QPushButton("Forget offline files (0)")
        self.forget_offline_button.setToolTip(
            "Rescan and forget the files whose folders are gone, with their tags and "
            "favorites (reconnect a drive or share first if they should come back)"
        )
        self.forget_offline_button.setEnabled(False)
        self.delete_collection_button = QPushButton("Delete")
        self.delete_collection_button.setEnabled(False)
        self.new_collection_button = QPushButton("New…")
        self.rename_collection_button = QPushButton("Rename…")
        self.export_collection_button = QPushButton("Export files…")
        self.export_collection_button.setToolTip("Copy the collection's files into a folder")
        for b in (self.rename_collection_button, self.export_collection_button):
            b.setEnabled(False)
        self.collection_names: list[str] = []

        buttons = QHBoxLayout()
        for b in (self.add_button, self.remove_button, self.rescan_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addWidget(self.folders)
        layout.addLayout(buttons)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress)
        progress_row.addWidget(self.pause_button)
        layout.addLayout(progress_row)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.errors_button)
        layout.addWidget(self.forget_offline_button)
        layout.addWidget(QLabel("Collections"))
        layout.addWidget(self.collections)
        collection_buttons = QHBoxLayout()
        for b in (self.new_collection_button, self.rename_collection_button,
                  self.export_collection_button, self.delete_collection_button):  # fmt: skip
            collection_buttons.addWidget(b)
        layout.addLayout(collection_buttons)

        self.add_button.clicked.connect(self._choose_folder)
        self.remove_button.clicked.connect(self._remove_selected)
        self.rescan_button.clicked.connect(self.rescan_requested)
        self.pause_button.toggled.connect(self._on_pause)
        self.errors_button.clicked.connect(self.show_errors)
        self.forget_offline_button.clicked.connect(self.forget_offline_requested)
        self.collections.itemClicked.connect(self._on_collection_clicked)
        self.collections.currentRowChanged.connect(self._on_collection_row)
        self.delete_collection_button.clicked.connect(self._delete_selected_collection)
        self.new_collection_button.clicked.connect(self._new_collection)
        self.rename_collection_button.clicked.connect(self._rename_collection)
        self.export_collection_button.clicked.connect(self._export_collection)
        self.collections.files_dropped.connect(self._on_files_dropped)

    def _on_collection_row(self, row: int) -> None:
        for b in (self.delete_collection_button, self.rename_collection_button,
                  self.export_collection_button):  # fmt: skip
            b.setEnabled(row >= 0)

    def selected_collection(self) -> str | None:
        row = self.collections.currentRow()
        return self.collection_names[row] if 0 <= row < len(self.collection_names) else None

    def _new_collection(self) -> None:
        from PySide6.QtWidgets import QInputDialog

        name, ok = QInputDialog.getText(self, "New collection", "Name:")
        if ok and name.strip():
            self.collection_create_requested.emit(name.strip())

    def _rename_collection(self) -> None:
        from PySide6.QtWidgets import QInputDialog

        old = self.selected_collection()
        if old is None:
            return
        name, ok = QInputDialog.getText(self, "Rename collection", "New name:", text=old)
        if ok and name.strip() and name.strip() != old:
            self.collection_rename_requested.emit(old, name.strip())

    def _export_collection(self) -> None:
        name = self.selected_collection()
        if name is None:
            return
        folder = QFileDialog.getExistingDirectory(self, f"Copy the files of {name} into")
        if folder:
            self.collection_export_requested.emit(name, folder)

    def _on_files_dropped(self, row: int, paths: list) -> None:
        if 0 <= row < len(self.collection_names):
            self.collection_files_dropped.emit(self.collection_names[row], list(paths))

    def _on_collection_clicked(self, item: QListWidgetItem) -> None:
        row = self.collections.row(item)
        if 0 <= row < len(self.collection_names):
            self.collection_chosen.emit(self.collection_names[row])

    def _delete_selected_collection(self) -> None:
        row = self.collections.currentRow()
        if 0 <= row < len(self.collection_names):
            self.collection_delete_requested.emit(self.collection_names[row])

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder to the library")
        if folder:
            self.add_requested.emit([folder])

    def _remove_selected(self) -> None:
        row = self.folders.currentRow()
        if 0 <= row < len(self.folder_paths):
            self.remove_requested.emit(self.folder_paths[row])

    def _on_pause(self, paused: bool) -> None:
        self.pause_button.setText("Resume" if paused else "Pause")
        self.pause_toggled.emit(paused)

    def set_status(self, status: dict) -> None:
        self.folders.clear()
        # Paths live in a Python list, not item data: Python strings stored through
        # setData crash PySide6 6.12 at interpreter exit.
        self.folder_paths = [str(f["path"]) for f in status["folders"]]
        for folder in status["folders"]:
            text = f"{printable(folder['path'])}\n{folder['indexed']} sounds"
            if folder["errors"]:
                text += f", {folder['errors']} unreadable"
            if folder.get("offline"):
                text += f", {folder['offline']} offline (kept; shown with “offline too”)"
            self.folders.addItem(QListWidgetItem(text))
        self.collection_names = [str(c["name"]) for c in status.get("collections", [])]
        self.collections.clear()
        for c in status.get("collections", []):
            self.collections.addItem(QListWidgetItem(f"{c['name']} ({c['files']})"))
        self._on_collection_row(-1)
        self._errors = list(status["errors"])
        self.errors_button.setText(f"Unreadable files ({len(self._errors)})")
        self.errors_button.setEnabled(bool(self._errors))
        offline = sum(int(f.get("offline") or 0) for f in status["folders"])
        self.forget_offline_button.setText(f"Forget offline files ({offline})")
        self.forget_offline_button.setEnabled(offline > 0)

    def set_progress(self, p: dict) -> None:
        self.progress.setVisible(True)
        self.pause_button.setEnabled(True)
        self.progress.setMaximum(max(1, p["total"]))
        self.progress.setValue(p["done"])
        stage = p["stage"]
        if stage.startswith("learning"):
            # Learning text search from the library's names (engine/adapt/).
            what = {
                "learning-captions": "reading names", "learning-encoding": "reading captions",
                "learning-training": "training",
            }.get(stage)  # fmt: skip
            if what is None:
                self.progress_label.setText(p.get("message") or "Text search by sound: skipped")
                return
            self.progress_label.setText(
                f"Learning text search from names ({what}): {p['done']}/{p['total']}"
            )
            return
        label = {"scanning": "Scanning", "embedding": "Analysing sounds"}.get(stage, stage)
        rate = p.get("rate") or 0.0
        self.progress_label.setText(
            f"{label}: {p['done']}/{p['total']} · {rate:.0f} files/s · {format_eta(p.get('eta'))}"
        )

    def set_finished(self, summary: dict) -> None:
        self.progress.setVisible(False)
        self.pause_button.setChecked(False)
        self.pause_button.setEnabled(False)
        if "error" in summary:
            self.progress_label.setText(summary["error"])
            return
        text = (
            f"Up to date: {summary['added']} added, {summary['updated']} updated, "
            f"{summary['removed']} removed"
        )
        if summary.get("cancelled"):
            text = "Indexing stopped; it resumes with the next rescan."
        self.progress_label.setText(text)

    def show_errors(self) -> None:
        dialog = QDialog(self)
        dialog.setWindowTitle("Unreadable files")
        table = QTableWidget(len(self._errors), 2, dialog)
        table.setHorizontalHeaderLabels(["File", "Why"])
        for row, e in enumerate(self._errors):
            table.setItem(row, 0, QTableWidgetItem(printable(e["path"])))
            table.setItem(row, 1, QTableWidgetItem(printable(e["error"] or "")))
        table.resizeColumnsToContents()
        retry = QPushButton("Retry these files", dialog)
        retry.setToolTip("Read them again (after fixing permissions or reconnecting a drive)")
        retry.clicked.connect(self.retry_requested)
        retry.clicked.connect(dialog.accept)
        layout = QVBoxLayout(dialog)
        layout.addWidget(table)
        layout.addWidget(retry)
        dialog.resize(900, 400)
        dialog.open()
