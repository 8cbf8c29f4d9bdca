"""Find duplicates: groups of copies of one sound with where each copy lives, the one
suggested to keep unticked, its exact copies (the same audio) ticked and near copies
unticked for the user to judge (a near copy may be a velocity layer or a take that only
sounds alike); Remove from library (scans leave them out from now on) or Move to trash,
each after a confirmation. GUI thread only; the bridge finds and removes on the curating
thread."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.catalog.text import printable
from gui.results_model import format_duration, relative_folder

_ID = Qt.ItemDataRole.UserRole


class DuplicatesDialog(QDialog):
    """Emits ``find_requested(near)`` and ``remove_requested(file ids, trash)``."""

    find_requested = Signal(bool)
    remove_requested = Signal(list, bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Duplicates")
        self.resize(1000, 560)
        self.near = QCheckBox("Near duplicates too (re-encoded, re-levelled, trimmed, resampled)")
        self.find_button = QPushButton("Find")
        self.summary = QLabel("")
        self._roots: list[str] = []  # library folders, longest first
        self.tree = QTreeWidget()
        self.tree.setColumnCount(6)
        self.tree.setHeaderLabels(["Name", "Folder", "Format", "Rate", "Length", "Match"])
        self.tree.setColumnWidth(0, 320)
        self.tree.setColumnWidth(1, 340)
        self.remove_button = QPushButton("Remove ticked from library")
        self.trash_button = QPushButton("Move ticked to trash")
        close = QPushButton("Close")
        top = QHBoxLayout()
        top.addWidget(self.near, 1)
        top.addWidget(self.find_button)
        actions = QHBoxLayout()
        actions.addWidget(self.summary, 1)
        for button in (self.remove_button, self.trash_button, close):
            actions.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        layout.addLayout(actions)
        self.find_button.clicked.connect(self.find)
        self.remove_button.clicked.connect(lambda: self._remove(trash=False))
        self.trash_button.clicked.connect(lambda: self._remove(trash=True))
        close.clicked.connect(self.reject)
        self._set_busy(False)
        self.remove_button.setEnabled(False)
        self.trash_button.setEnabled(False)

    def find(self) -> None:
        self._set_busy(True)
        self.summary.setText("Looking for duplicates…")
        self.find_requested.emit(self.near.isChecked())

    def _set_busy(self, busy: bool) -> None:
        self.find_button.setEnabled(not busy)

    def set_roots(self, roots: list[str]) -> None:
        """The library folders: the Folder column shows each copy's folder inside them
        (the full path stays in the name's tooltip)."""
        self._roots = sorted(roots, key=len, reverse=True)

    def show_groups(self, groups: list[dict]) -> None:
        """Fill the tree from Group.to_json()s."""
        self._set_busy(False)
        self.tree.clear()
        copies = near = 0
        for g in groups:
            top = QTreeWidgetItem([f"{g['kind']} duplicates: {len(g['files'])} copies"])
            top.setFirstColumnSpanned(True)
            self.tree.addTopLevelItem(top)
            for f in g["files"]:
                keep = f["id"] == g["keep"]
                match = "keep" if keep else ("same audio" if f["exact"] else
                                             f"{(f['similarity'] or 0):.3f}")  # fmt: skip
                folder = relative_folder(f["folder"] or "", self._roots)
                item = QTreeWidgetItem([
                    printable(f["name"]), printable(folder),
                    f"{f['format']} {f['subtype'] or ''}", f"{f['sample_rate']} Hz",
                    format_duration(f["duration"]), match,
                ])  # fmt: skip
                item.setData(0, _ID, f["id"])
                item.setToolTip(0, printable(f["path"]))
                ticked = not keep and bool(f["exact"])
                item.setCheckState(0, Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)
                top.addChild(item)
                copies += 0 if keep else 1
                near += 0 if keep or f["exact"] else 1
            top.setExpanded(True)
        text = f"{len(groups)} groups, {copies} copies beyond the ones to keep"
        if near:
            text += f" ({near} near copies left unticked: tick the ones to remove)"
        self.summary.setText(text if groups else "No duplicates found")
        self.remove_button.setEnabled(bool(groups))
        self.trash_button.setEnabled(bool(groups))

    def ticked(self) -> list[int]:
        ids = []
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount()):
                child = top.child(j)
                if child.checkState(0) == Qt.CheckState.Checked:
                    ids.append(int(child.data(0, _ID)))
        return ids

    def _remove(self, trash: bool) -> None:
        ids = self.ticked()
        if not ids:
            self.summary.setText("Tick the copies to remove first")
            return
        what = (
            f"Move {len(ids)} files to the trash and forget them?"
            if trash else
            f"Remove {len(ids)} files from the library? They stay on disk, and scans "
            "leave them out from now on."
        )  # fmt: skip
        answer = QMessageBox.question(self, "Duplicates", what)
        if answer != QMessageBox.StandardButton.Yes:
            return
        self._set_busy(True)
        self.summary.setText("Removing…")
        self.remove_requested.emit(ids, trash)
