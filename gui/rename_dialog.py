"""Rename to UCS: the selected files' new names side by side with the old (numbered where
they would collide, and why a file keeps its name), CreatorID/SourceID for the files
without, then Rename. GUI thread only; the bridge plans and renames on the query
thread."""

from __future__ import annotations

import os

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.catalog.text import printable


class RenameDialog(QDialog):
    """Emits ``preview_requested(creator, source)`` to plan again and
    ``rename_requested(creator, source)`` to rename; `show_plan` fills the table."""

    preview_requested = Signal(str, str)
    rename_requested = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Rename to UCS")
        self.resize(900, 500)
        self.creator = QLineEdit()
        self.creator.setPlaceholderText("for files without a CreatorID (e.g. your initials)")
        self.source = QLineEdit()
        self.source.setPlaceholderText("for files without a SourceID (e.g. the library's)")
        form = QFormLayout()
        form.addRow("CreatorID", self.creator)
        form.addRow("SourceID", self.source)
        self.preview_button = QPushButton("Preview again")
        self.summary = QLabel("Planning…")
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Now", "New name", "Note"])
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.rename_button = self.buttons.addButton(
            "Rename", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.rename_button.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.preview_button)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.buttons)
        self.preview_button.clicked.connect(
            lambda: self.preview_requested.emit(self.creator.text(), self.source.text())
        )
        self.rename_button.clicked.connect(self._rename)
        self.buttons.rejected.connect(self.reject)

    def show_plan(self, plan: list[dict]) -> None:
        self.table.setRowCount(len(plan))
        for r, entry in enumerate(plan):
            new = os.path.basename(entry["new"]) if entry["action"] == "rename" else ""
            note = {"keep": "named so already"}.get(entry["action"], entry["reason"])
            for c, text in enumerate((os.path.basename(entry["old"]), new, note)):
                self.table.setItem(r, c, QTableWidgetItem(printable(text)))
        self.table.resizeColumnsToContents()
        count = sum(e["action"] == "rename" for e in plan)
        self.summary.setText(f"{count} of {len(plan)} files will be renamed.")
        self.rename_button.setEnabled(count > 0)

    def _rename(self) -> None:
        self.rename_requested.emit(self.creator.text(), self.source.text())
        self.accept()
