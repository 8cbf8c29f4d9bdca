"""The one object between the GUI thread and the engine thread.

The engine (a Library, which owns a SQLite connection) lives on its own QThread; the
GUI talks to it only through queued signals, so the GUI thread never waits on disk,
decoding or the database.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.library import Library
from engine.query import QueryError


class _EngineWorker(QObject):
    """Lives on the engine thread. Its slots run there, one at a time."""

    results_ready = Signal(int, str, object)  # request id, query, list[dict]
    query_failed = Signal(int, str, str)  # request id, query, message
    status_changed = Signal(object)

    def __init__(self, library_dir: str | None) -> None:
        super().__init__()
        self._library_dir = library_dir
        self._library: Library | None = None

    @Slot()
    def start(self) -> None:
        self._library = Library(self._library_dir)
        self.status_changed.emit({"dir": str(self._library.dir), **self._library.catalog.counts()})

    @Slot(int, str, int)
    def search(self, request_id: int, query: str, limit: int) -> None:
        assert self._library is not None
        try:
            results = self._library.search(query, limit=limit)
        except QueryError as exc:
            self.query_failed.emit(request_id, query, str(exc))
            return
        self.results_ready.emit(request_id, query, [r.to_json() for r in results])

    @Slot()
    def stop(self) -> None:
        if self._library is not None:
            self._library.close()
            self._library = None


class EngineBridge(QObject):
    """Owned by the GUI thread. Call its methods from the GUI thread only."""

    results_ready = Signal(str, object)
    query_failed = Signal(str, str)
    status_changed = Signal(object)
    _search_requested = Signal(int, str, int)
    _stop_requested = Signal()

    def __init__(self, library_dir: str | None = None) -> None:
        super().__init__()
        self._thread = QThread()
        self._thread.setObjectName("sonarium-engine")
        self._worker = _EngineWorker(library_dir)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.start)
        # The worker must die on its own thread, before Python tears the bridge down.
        self._thread.finished.connect(self._worker.deleteLater)
        self._search_requested.connect(self._worker.search)
        self._stop_requested.connect(self._worker.stop)
        self._worker.results_ready.connect(self._on_results)
        self._worker.query_failed.connect(self._on_failed)
        self._worker.status_changed.connect(self.status_changed)
        self._latest = 0
        self._thread.start()

    def search(self, query: str, limit: int = 500) -> None:
        """Ask for results; only the newest request's answer is delivered."""
        self._latest += 1
        self._search_requested.emit(self._latest, query, limit)

    def _on_results(self, request_id: int, query: str, results: list) -> None:
        if request_id == self._latest:
            self.results_ready.emit(query, results)

    def _on_failed(self, request_id: int, query: str, message: str) -> None:
        if request_id == self._latest:
            self.query_failed.emit(query, message)

    def shutdown(self) -> None:
        """Close the engine and stop its thread; safe to call twice."""
        if not self._thread.isRunning():
            return
        self._stop_requested.emit()
        self._thread.quit()
        self._thread.wait(5000)
