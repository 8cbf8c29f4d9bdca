"""The main window: a search field and a results table (the full browser comes later)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QLabel,
    QLineEdit,
    QMainWindow,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.bridge import EngineBridge

COLUMNS = ("Name", "Duration", "Rate", "Ch", "Format", "Folder")


class MainWindow(QMainWindow):
    """Must be created and used on the GUI thread."""

    def __init__(self, bridge: EngineBridge) -> None:
        super().__init__()
        self.bridge = bridge
        self.setWindowTitle("Sonarium")
        self.resize(1000, 640)
        self.search_field = QLineEdit(
            placeholderText="Search sounds (e.g. explosion dur:<2 format:wav)"
        )
        self.search_field.setClearButtonEnabled(True)
        self.results = QTableWidget(0, len(COLUMNS))
        self.results.setHorizontalHeaderLabels(COLUMNS)
        self.results.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.results.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.results.horizontalHeader().setStretchLastSection(True)
        self.status = QLabel("Opening library…")
        self.result_paths: list[str] = []
        layout = QVBoxLayout()
        layout.addWidget(self.search_field)
        layout.addWidget(self.results)
        layout.addWidget(self.status)
        central = QWidget()
        central.setLayout(layout)
        self.setCentralWidget(central)

        # Live search: wait for a pause in typing before asking the engine.
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(150)
        self._debounce.timeout.connect(self._search_now)
        self.search_field.textChanged.connect(self._debounce.start)
        bridge.results_ready.connect(self.show_results)
        bridge.query_failed.connect(self._show_query_error)
        bridge.status_changed.connect(self._show_status)
        self.search_field.setFocus(Qt.FocusReason.OtherFocusReason)

    def _search_now(self) -> None:
        self.bridge.search(self.search_field.text())

    def _show_query_error(self, _query: str, message: str) -> None:
        self.status.setText(message)

    def _show_status(self, status: dict) -> None:
        self.status.setText(
            f"{status['indexed']} sounds in {status['dir']}"
            + (f" ({status['errors']} unreadable)" if status["errors"] else "")
        )
        self.bridge.search(self.search_field.text())

    def show_results(self, query: str, results: list) -> None:
        # Paths are kept here rather than as item data: storing Python strings through
        # QTableWidgetItem.setData crashes PySide6 6.12 at interpreter exit (refcount bug).
        self.result_paths = [r["path"] for r in results]
        self.results.setRowCount(len(results))
        for row, r in enumerate(results):
            values = (
                r["name"], f"{r['duration']:.2f}s", f"{r['sample_rate'] / 1000:g}k",
                str(r["channels"]), r["format"], r["folder"],
            )  # fmt: skip
            for col, value in enumerate(values):
                self.results.setItem(row, col, QTableWidgetItem(value))
        self.status.setText(f"{len(results)} results" + (f" for “{query}”" if query else ""))

    def closeEvent(self, event) -> None:
        self.bridge.shutdown()
        super().closeEvent(event)
