"""The one object between the GUI thread and the engine.

Two engine threads, each with its own Library (SQLite connection):
- the *query* thread answers what the user waits on: search, find-similar, peaks,
  file details, tag/favorite edits, region exports;
- the *index* thread drives the indexing child process, the catalog's bulk writer.
So a running scan never delays a search. The GUI talks to them only through queued
signals; what comes back is re-emitted by EngineBridge under names for what happened.
The index thread only relays: scanning and embedding run in a child process
(engine/index_worker.py), so their GIL-heavy work never starves the GUI thread.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.library import Library, LibraryError
from engine.paths import resolve_library_dir
from engine.query import QueryError

ROOT = Path(__file__).resolve().parent.parent


class _QueryWorker(QObject):
    """Lives on the query thread; its slots run there one at a time."""

    results_ready = Signal(int, object)  # request id, {"query", "results", "kind"}
    request_failed = Signal(int, str)
    status_ready = Signal(object)
    overviews_ready = Signal(object)  # {file id: (mins, maxs)}
    detail_ready = Signal(object)
    clip_ready = Signal(object)  # {"source", "start", "end", "path"} or {"error"}
    message = Signal(str)

    def __init__(self, library_dir: str | None, spaces: tuple[str, ...] | None) -> None:
        super().__init__()
        self._library_dir = library_dir
        self._library: Library | None = None
        self._spaces = spaces

    @Slot()
    def start(self) -> None:
        self._library = Library(self._library_dir)
        self.status()

    @Slot()
    def status(self) -> None:
        lib = self._library
        assert lib is not None
        self.status_ready.emit(
            {
                "dir": str(lib.dir),
                "counts": lib.catalog.counts(),
                "folders": lib.folders(),
                "errors": lib.errors(),
            }
        )

    @Slot(int, str, int)
    def search(self, request_id: int, query: str, limit: int) -> None:
        assert self._library is not None
        try:
            results = self._library.search(query, limit=limit)
        except QueryError as exc:
            self.request_failed.emit(request_id, str(exc))
            return
        payload = {"query": query, "kind": "search", "results": [r.to_json() for r in results]}
        self.results_ready.emit(request_id, payload)

    @Slot(int, object)
    def similar(self, request_id: int, request: dict) -> None:
        assert self._library is not None
        try:
            results = self._library.similar(
                request["path"], start=request.get("start"), end=request.get("end"),
                limit=request.get("limit", 200),
                **({"space": request["space"]} if request.get("space") else {}),
            )  # fmt: skip
        except LibraryError as exc:
            self.request_failed.emit(request_id, str(exc))
            return
        payload = {
            "query": request["path"], "kind": "similar", "start": request.get("start"),
            "end": request.get("end"), "results": [r.to_json() for r in results],
        }  # fmt: skip
        self.results_ready.emit(request_id, payload)

    @Slot(object)
    def overviews(self, file_ids: list) -> None:
        assert self._library is not None
        self.overviews_ready.emit(self._library.overview_peaks(list(file_ids)))

    @Slot(int)
    def detail(self, file_id: int) -> None:
        assert self._library is not None
        row = self._library.detail(file_id)
        if row is not None:
            self.detail_ready.emit(row)

    @Slot(int, bool)
    def set_favorite(self, file_id: int, favorite: bool) -> None:
        assert self._library is not None
        self._library.catalog.set_favorite(file_id, favorite)
        self.detail(file_id)

    @Slot(int, object)
    def add_tags(self, file_id: int, tags: list) -> None:
        assert self._library is not None
        self._library.catalog.add_tags(file_id, list(tags))
        self.detail(file_id)

    @Slot(str)
    def remove_folder(self, path: str) -> None:
        assert self._library is not None
        try:
            removed = self._library.remove_folder(path)
            self.message.emit(f"Removed {path} ({removed} files forgotten)")
        except LibraryError as exc:
            self.message.emit(str(exc))
        self.status()

    @Slot(str, float, float)
    def export_clip(self, source: str, start: float, end: float) -> None:
        from engine.export import export_region

        try:
            path = export_region(source, start, end)
        except (OSError, ValueError, RuntimeError) as exc:
            self.clip_ready.emit({"error": str(exc)})
            return
        self.clip_ready.emit({"source": source, "start": start, "end": end, "path": str(path)})

    @Slot()
    def stop(self) -> None:
        if self._library is not None:
            self._library.close()
            self._library = None


class _IndexWorker(QObject):
    """Lives on the index thread: runs engine.index_worker in a child process and relays
    its progress. The child, not this process, does the decoding and the model work."""

    progressed = Signal(object)  # {"stage", "done", "total", "rate", "eta"}
    finished = Signal(object)  # summary dict
    failed = Signal(str)

    def __init__(self, library_dir: str | None, spaces: tuple[str, ...] | None) -> None:
        super().__init__()
        self._library_dir = library_dir
        self._spaces = spaces
        self.process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    @Slot(object, bool)
    def index(self, add_paths: list, embed: bool) -> None:
        library_dir = str(resolve_library_dir(self._library_dir))
        command = [sys.executable, "-m", "engine.index_worker", "--library", library_dir]
        if add_paths:
            command += ["--add", *add_paths]
        if not embed:
            command.append("--no-embed")
        for space in self._spaces or ():
            command += ["--space", space]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        with self._lock:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                cwd=str(ROOT), bufsize=1,
            )  # fmt: skip
        summary: dict | None = None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            event = message.pop("event", None)
            if event == "progress":
                self.progressed.emit(message)
            elif event == "finished":
                summary = message
            elif event == "error":
                summary = {"error": message.get("message", "indexing failed")}
        code = self.process.wait()
        with self._lock:
            self.process = None
        if summary is None:
            self.failed.emit(f"indexing stopped unexpectedly (exit code {code}); rescan to resume")
        elif "error" in summary:
            self.failed.emit(summary["error"])
        else:
            self.finished.emit(summary)

    def send(self, command: str) -> None:
        """Any thread: forward pause/resume/cancel to the running child, if any."""
        with self._lock:
            process = self.process
            if process is None or process.stdin is None:
                return
            try:
                process.stdin.write(command + "\n")
                process.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass

    def terminate(self, timeout: float = 10.0) -> None:
        """Any thread: ask the child to stop after its files in flight, then make sure."""
        self.send("cancel")
        with self._lock:
            process = self.process
        if process is None:
            return
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()


class EngineBridge(QObject):
    """Owned by the GUI thread. Call its methods from the GUI thread only."""

    results_ready = Signal(object)  # {"query", "kind", "results", ...}
    query_failed = Signal(str)
    status_changed = Signal(object)
    overviews_ready = Signal(object)
    detail_ready = Signal(object)
    clip_ready = Signal(object)
    message = Signal(str)
    index_progressed = Signal(object)
    index_finished = Signal(object)

    _search_requested = Signal(int, str, int)
    _similar_requested = Signal(int, object)
    _status_requested = Signal()
    _overviews_requested = Signal(object)
    _detail_requested = Signal(int)
    _favorite_requested = Signal(int, bool)
    _tags_requested = Signal(int, object)
    _remove_requested = Signal(str)
    _clip_requested = Signal(str, float, float)
    _index_requested = Signal(object, bool)
    _stop_requested = Signal()

    def __init__(
        self, library_dir: str | None = None, spaces: tuple[str, ...] | None = None
    ) -> None:
        super().__init__()
        # The query thread's Python work must hand the GIL back to the GUI thread quickly;
        # the default 5 ms switch interval let each Qt call wait that long (measured).
        sys.setswitchinterval(0.001)
        # Everything loaded so far lives for the whole session: keep it out of the cyclic
        # GC's full collections, which otherwise pause the GUI thread for tens of ms.
        gc.freeze()
        self.indexing = False
        self._latest = 0

        self._query_thread = QThread()
        self._query_thread.setObjectName("sonarium-query")
        self._query = _QueryWorker(library_dir, spaces)
        self._query.moveToThread(self._query_thread)
        self._query_thread.started.connect(self._query.start)
        # Workers must die on their own threads, before Python tears the bridge down.
        self._query_thread.finished.connect(self._query.deleteLater)
        for signal, slot in (
            (self._search_requested, self._query.search),
            (self._similar_requested, self._query.similar),
            (self._status_requested, self._query.status),
            (self._overviews_requested, self._query.overviews),
            (self._detail_requested, self._query.detail),
            (self._favorite_requested, self._query.set_favorite),
            (self._tags_requested, self._query.add_tags),
            (self._remove_requested, self._query.remove_folder),
            (self._clip_requested, self._query.export_clip),
            (self._stop_requested, self._query.stop),
        ):
            signal.connect(slot)
        self._query.results_ready.connect(self._on_results)
        self._query.request_failed.connect(self._on_failed)
        self._query.status_ready.connect(self.status_changed)
        self._query.overviews_ready.connect(self.overviews_ready)
        self._query.detail_ready.connect(self.detail_ready)
        self._query.clip_ready.connect(self.clip_ready)
        self._query.message.connect(self.message)

        self._index_thread = QThread()
        self._index_thread.setObjectName("sonarium-index")
        self._index = _IndexWorker(library_dir, spaces)
        self._index.moveToThread(self._index_thread)
        self._index_thread.finished.connect(self._index.deleteLater)
        self._index_requested.connect(self._index.index)
        self._index.progressed.connect(self.index_progressed)
        self._index.finished.connect(self._on_index_finished)
        self._index.failed.connect(self._on_index_failed)

        self._query_thread.start()
        self._index_thread.start()

    # -- queries (newest request wins) ------------------------------------------------

    def search(self, query: str, limit: int = 5000) -> None:
        self._latest += 1
        self._search_requested.emit(self._latest, query, limit)

    def similar(
        self, path: str, start: float | None = None, end: float | None = None,
        space: str | None = None,
    ) -> None:  # fmt: skip
        self._latest += 1
        request = {"path": path, "start": start, "end": end, "space": space}
        self._similar_requested.emit(self._latest, request)

    def _on_results(self, request_id: int, payload: dict) -> None:
        if request_id == self._latest:
            self.results_ready.emit(payload)

    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id == self._latest:
            self.query_failed.emit(message)

    # -- other requests ----------------------------------------------------------------

    def refresh_status(self) -> None:
        self._status_requested.emit()

    def request_overviews(self, file_ids: list[int]) -> None:
        self._overviews_requested.emit(list(file_ids))

    def request_detail(self, file_id: int) -> None:
        self._detail_requested.emit(file_id)

    def set_favorite(self, file_id: int, favorite: bool) -> None:
        self._favorite_requested.emit(file_id, favorite)

    def add_tags(self, file_id: int, tags: list[str]) -> None:
        self._tags_requested.emit(file_id, tags)

    def remove_folder(self, path: str) -> None:
        self._remove_requested.emit(path)

    def export_clip(self, source: str, start: float, end: float) -> None:
        self._clip_requested.emit(source, start, end)

    # -- indexing ----------------------------------------------------------------------

    def index(self, add_paths: list[str] | None = None, embed: bool = True) -> None:
        """Add folders (optional), rescan everything and embed; queued if one is running."""
        self.indexing = True
        self._index_requested.emit(list(add_paths or []), embed)

    def pause(self, paused: bool) -> None:
        self._index.send("pause" if paused else "resume")

    def cancel_index(self) -> None:
        self._index.send("cancel")

    def _on_index_finished(self, summary: dict) -> None:
        self.indexing = False
        self.index_finished.emit(summary)
        self.refresh_status()

    def _on_index_failed(self, message: str) -> None:
        self.indexing = False
        self.message.emit(message)
        self.index_finished.emit({"error": message})
        self.refresh_status()

    def shutdown(self) -> None:
        """Stop indexing, close the engine and stop its threads; safe to call twice."""
        if not self._query_thread.isRunning():
            return
        self._index.terminate()
        self._stop_requested.emit()
        for thread in (self._query_thread, self._index_thread):
            thread.quit()
        for thread in (self._query_thread, self._index_thread):
            thread.wait(30000)
