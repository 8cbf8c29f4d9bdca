"""The preview of a metadata CSV import: every change (file, field, old, new), the rows
that matched no file and why, then Apply or Apply and write. GUI thread only."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.catalog.text import printable

# Rows of changes the table shows (a CSV of the whole library can change a million).
SHOWN_CHANGES = 5000


class ImportDialog(QDialog):
    """Shows Library.import_metadata's plan; ``choice`` is "apply", "write" or None."""

    def __init__(self, plan: dict, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import metadata")
        self.resize(900, 520)
        self.choice: str | None = None
        changes = plan["preview"]
        summary = QLabel(
            f"{plan['rows']} rows: {plan['matched']} matched a file, "
            f"{len(plan['unmatched'])} did not. {len(changes)} changes to {plan['files']} "
            "files." + (" Nothing to change." if not changes else "")
        )
        summary.setWordWrap(True)
        table = QTableWidget(min(len(changes), SHOWN_CHANGES), 4)
        table.setHorizontalHeaderLabels(["File", "Field", "Now", "From the CSV"])
        for r, change in enumerate(changes[:SHOWN_CHANGES]):
            for c, key in enumerate(("path", "field", "old", "new")):
                table.setItem(r, c, QTableWidgetItem(printable(change[key])))
        table.resizeColumnsToContents()
        notes = QPlainTextEdit()
        notes.setReadOnly(True)
        lines = [
            f"line {row['line']}: {row['name']}: {row['reason']}"
            for row in plan["unmatched"] + plan["invalid"]
        ]
        if plan["ignored"]:
            lines.append("columns that are no field (ignored): " + ", ".join(plan["ignored"]))
        notes.setPlainText(printable("\n".join(lines)) if lines else "Every row matched.")
        notes.setMaximumHeight(120)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.apply_button = self.buttons.addButton("Apply", QDialogButtonBox.ButtonRole.AcceptRole)
        self.write_button = self.buttons.addButton(
            "Apply and write to files", QDialogButtonBox.ButtonRole.AcceptRole
        )
        for button in (self.apply_button, self.write_button):
            button.setEnabled(bool(changes))
        self.apply_button.clicked.connect(lambda: self._choose("apply"))
        self.write_button.clicked.connect(lambda: self._choose("write"))
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(summary)
        layout.addWidget(table, 1)
        layout.addWidget(QLabel("Rows not imported:"))
        layout.addWidget(notes)
        layout.addWidget(self.buttons)

    def _choose(self, choice: str) -> None:
        self.choice = choice
        self.accept()
