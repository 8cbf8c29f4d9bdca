"""The metadata editor: the editable fields of the selected files, set on all of them at
once (or appended to), undo/redo, and Write to files. GUI thread only; the bridge does
the work on the query thread and answers with `show_selection`'s payload."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from engine.catalog.fields import FIELDS
from engine.catalog.text import printable

SEVERAL = "(several values)"


class MetadataEditor(QWidget):
    """GUI thread only."""

    apply_requested = Signal(list, dict, bool)  # file ids, {field: value}, append
    write_requested = Signal(list)  # file ids
    undo_requested = Signal()
    redo_requested = Signal()
    accept_requested = Signal(list, int)  # file ids, which suggestion (0: the best)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.file_ids: list[int] = []
        self._shown: dict[str, str] = {}  # what each field showed when the selection came
        self.heading = QLabel("No file selected")
        self.heading.setWordWrap(True)
        self.editors: dict[str, QLineEdit | QPlainTextEdit] = {}
        form = QFormLayout()
        for name, f in FIELDS.items():
            editor: QLineEdit | QPlainTextEdit
            if f.kind == "text":
                editor = QPlainTextEdit()
                editor.setFixedHeight(54)
                editor.setTabChangesFocus(True)
            else:
                editor = QLineEdit()
                editor.setMaxLength(f.limit)
                if f.kind == "rating":
                    editor.setPlaceholderText("0–5")
                elif f.kind == "date":
                    editor.setPlaceholderText("YYYY-MM-DD HH:MM:SS")
            editor.setObjectName(f"field_{name}")
            self.editors[name] = editor
            form.addRow(f.label, editor)
        fields = QWidget()
        fields.setLayout(form)
        scroll = QScrollArea()
        scroll.setWidget(fields)
        scroll.setWidgetResizable(True)

        self.append = QCheckBox("Append")
        self.append.setToolTip("Add to what each file's field holds instead of replacing it")
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Store the changed fields in the library (Ctrl+Return)")
        self.write_button = QPushButton("Write to files")
        self.write_button.setToolTip(
            "Write the selected files' metadata into the audio files (verified copy, then "
            "renamed over the original)"
        )
        self.undo_button = QPushButton("Undo")
        self.redo_button = QPushButton("Redo")
        self.pending = QLabel("")
        # Category suggestions for files without a CatID: one button (and key) each.
        self.suggest_label = QLabel("")
        self.suggest_buttons = [QPushButton("") for _ in range(3)]
        suggest_row = QHBoxLayout()
        suggest_row.addWidget(self.suggest_label)
        for rank, button in enumerate(self.suggest_buttons):
            button.setVisible(False)
            button.setToolTip(f"Set this category (key {rank + 1} in the results)")
            button.clicked.connect(lambda _c=False, r=rank: self.accept(r))
            suggest_row.addWidget(button)
        suggest_row.addStretch(1)
        buttons = QHBoxLayout()
        for w in (self.append, self.apply_button, self.write_button, self.undo_button,
                  self.redo_button):  # fmt: skip
            buttons.addWidget(w)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(scroll, 1)
        layout.addLayout(buttons)
        layout.addLayout(suggest_row)
        layout.addWidget(self.pending)

        self.apply_button.clicked.connect(self.apply)
        self.write_button.clicked.connect(lambda: self.write_requested.emit(list(self.file_ids)))
        self.undo_button.clicked.connect(self.undo_requested)
        self.redo_button.clicked.connect(self.redo_requested)
        shortcut = QShortcut(QKeySequence("Ctrl+Return"), self, self.apply)
        shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.show_selection({"ids": [], "fields": {}, "pending": 0})

    def text(self, name: str) -> str:
        editor = self.editors[name]
        if isinstance(editor, QPlainTextEdit):
            return editor.toPlainText()
        return editor.text()

    def set_text(self, name: str, value: str) -> None:
        editor = self.editors[name]
        if isinstance(editor, QPlainTextEdit):
            editor.setPlainText(value)
        else:
            editor.setText(value)

    def show_selection(self, payload: dict) -> None:
        """Show the fields of the selected files: {"ids", "fields": {name: value or None
        when the files differ}, "pending": files with edits not written, "names"}."""
        self.file_ids = list(payload["ids"])
        n = len(self.file_ids)
        names = payload.get("names") or []
        if n == 0:
            self.heading.setText("No file selected")
        elif n == 1:
            self.heading.setText(f"<b>{printable(names[0]) if names else '1 file'}</b>")
        else:
            self.heading.setText(f"<b>{n} files</b>: changed fields are set on all of them")
        self._shown = {}
        for name in FIELDS:
            value = payload["fields"].get(name, "")
            editor = self.editors[name]
            self.set_text(name, value or "")
            editor.setPlaceholderText(SEVERAL if value is None else "")
            self._shown[name] = value or ""
            editor.setEnabled(n > 0)
        for button in (self.apply_button, self.write_button):
            button.setEnabled(n > 0)
        self.pending.setText(pending_text(payload.get("pending", 0), n))

    def show_suggestions(self, payload: dict) -> None:
        """The selected files' category suggestions: {"ids", "suggestions": {id: [{"catid",
        "category", "subcategory", "confidence"}]}}; shown for files without a CatID."""
        found = payload["suggestions"]
        ids = [i for i in payload["ids"] if i in found]
        uncategorised = not self._shown.get("catid")
        for button in self.suggest_buttons:
            button.setVisible(False)
        self.suggest_label.setText("")
        if not ids or not uncategorised:
            return
        if len(payload["ids"]) > 1:
            self.suggest_label.setText("Suggested categories (each file its own):")
            for rank, button in enumerate(self.suggest_buttons):
                button.setText(f"{rank + 1}: each file's {'best' if rank == 0 else f'#{rank + 1}'}")
                button.setVisible(True)
            return
        self.suggest_label.setText("Suggested:")
        for rank, (button, s) in enumerate(zip(self.suggest_buttons, found[ids[0]], strict=False)):
            name = f" {s['category']}/{s['subcategory']}" if s.get("category") else ""
            button.setText(f"{rank + 1}: {s['catid']}{name} ({s['confidence']:.0%})")
            button.setVisible(True)

    def accept(self, rank: int) -> None:
        """Take suggestion ``rank`` (0: the best) for the selected files."""
        if self.file_ids and self.suggest_buttons[rank].isVisible():
            self.accept_requested.emit(list(self.file_ids), rank)

    def changes(self) -> dict[str, str]:
        """The fields the user changed since the selection was shown."""
        return {name: self.text(name) for name in FIELDS if self.text(name) != self._shown[name]}

    def apply(self) -> None:
        changes = self.changes()
        if self.file_ids and changes:
            self.apply_requested.emit(list(self.file_ids), changes, self.append.isChecked())


def pending_text(pending: int, selected: int) -> str:
    """What the editor says of selected files whose edits are not written into them."""
    if not pending:
        return ""
    if selected == 1:
        return "This file has edits not written into it yet"
    verb = "has" if pending == 1 else "have"
    return f"{pending} of these {selected} files {verb} edits not written into them yet"
