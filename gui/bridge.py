"""The one object between the GUI thread and the engine.

Two engine threads, each with its own Library (SQLite connection):
- the *query* thread answers what the user waits on: search, find-similar, peaks,
  file details, tag/favorite edits, region exports;
- the *index* thread drives the indexing child process (engine/index_worker.py), so the
  GIL-heavy decoding and model work of a scan never starves the GUI thread.
So a running scan never delays a search.

Python payloads cross threads through thread-safe queues; the only cross-thread signals
carry no arguments and just say "look in the queue". PySide6 6.12 corrupted reference
counts of Python objects sent through queued signals (seen here as segfaults and
"none_dealloc" at exit), and a queue is also cheaper. EngineBridge drains results on the
GUI thread and re-emits them under names for what happened.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine import config
from engine.catalog.paths import resolve_library_dir
from engine.config import RESULT_PAGE
from engine.errors import LibraryError, NotIndexed, SonariumError
from engine.library import Library

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger(__name__)
# Requests whose first argument is a request id the window waits on: a failure of one of
# these is answered as "failed" for that id, so the window never waits forever.
_WAITED_ON = ("search", "similar", "paths")


def failure_message(what: str, exc: BaseException) -> str:
    """What the user reads when a request fails: the engine's own words for the errors it
    means to raise, else what failed and the error (details go to the log)."""
    if isinstance(exc, NotIndexed):
        return f"{exc} (Rescan in the library panel)"
    if isinstance(exc, SonariumError):
        return str(exc)
    return f"{what} failed: {type(exc).__name__}: {exc}"


class _Mailbox(QObject):
    """A queue of (name, args) plus an argument-less signal that says it has mail."""

    posted = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.items: queue.SimpleQueue[tuple[str, tuple]] = queue.SimpleQueue()

    def post(self, name: str, *args: Any) -> None:
        self.items.put((name, args))
        self.posted.emit()

    def drain(self) -> list[tuple[str, tuple]]:
        out = []
        while True:
            try:
                out.append(self.items.get_nowait())
            except queue.Empty:
                return out


# Requests done on the curating thread (the rest go to the query thread).
_CURATING = {"write", "import", "rename", "undo_rename", "collection", "clip", "export_sounds",
             "loudness", "duplicates", "remove_duplicates", "view", "render"}  # fmt: skip
# How often a long write says how far it is.
PROGRESS_EVERY_S = 1.0


class _QueryWorker(QObject):
    """Lives on the query thread. Requests arrive in `inbox`; answers go to `outbox`."""

    def __init__(
        self, library_dir: str | None, inbox: _Mailbox, outbox: _Mailbox, device: str = "auto"
    ) -> None:
        super().__init__()
        self._library_dir = library_dir
        self._device = device
        self._library: Library | None = None
        self.inbox = inbox
        self.outbox = outbox
        self.suggests = True  # answer edits with fresh category suggestions
        self.stopped = threading.Event()
        self._frozen_models = False

    @Slot()
    def process(self) -> None:
        """Handle every queued request, each answered even when it fails (one failure
        never drops the rest of the batch); runs on the query thread."""
        batch = self.inbox.drain()
        # Only the newest waited-on request of a batch is answered: the window shows only
        # the answer to its latest one, and typing fast must not queue stale searches.
        waited = [i for i, (name, _) in enumerate(batch) if name in _WAITED_ON]
        stale = set(waited[:-1])
        for i, (name, args) in enumerate(batch):
            if i in stale:
                continue
            if name == "stop":
                self.stop()
                continue
            try:
                if self._library is None:
                    self._library = Library(self._library_dir)
                    # Learning runs in the indexing process; searches don't wait for it.
                    self._library.adapt_on_demand = False
                getattr(self, "do_" + name)(*args)
                self._freeze_models()
            except Exception as exc:
                if not isinstance(exc, SonariumError):
                    log.exception("%s request failed", name)
                message = failure_message(name.capitalize(), exc)
                if name in _WAITED_ON:
                    self.outbox.post("failed", args[0], message)
                elif name == "clip":
                    self.outbox.post("clip", {"error": message})
                else:
                    self.outbox.post("message", message)

    def _freeze_models(self) -> None:
        """Once the engine's query models are loaded (torch, faiss: the first text search
        or find-similar loads them), move everything alive into the GC's permanent
        generation too, as the bridge did at start: full collections over those objects
        otherwise pause every thread, the GUI's included, for 60-75 ms."""
        if not self._frozen_models and "engine.search.hybrid" in sys.modules:
            gc.freeze()
            self._frozen_models = True

    def do_status(self) -> None:
        lib = self._library
        assert lib is not None
        self.outbox.post(
            "status",
            {
                "dir": str(lib.dir),
                "counts": lib.counts(),
                "folders": lib.folders(),
                "errors": lib.errors(),
                "collections": lib.collections(),
                "favorites": lib.catalog.favorites_count(),
            },
        )

    def do_warm(self) -> None:
        """Load what a text query needs (the sentence encoder, the adapter, the search
        index) before the first one is typed, so it answers at once."""
        assert self._library is not None
        started = time.perf_counter()
        try:
            self._library.warm()
        finally:
            log.info("query models ready in %.1f s", time.perf_counter() - started)

    def do_check(self) -> None:
        assert self._library is not None
        self.outbox.post("checked", self._library.check())

    def do_search(self, request_id: int, query: str, limit: int, offset: int = 0) -> None:
        """One page of results: `limit` of them from `offset`; a full page may have more."""
        assert self._library is not None
        results = self._library.search(query, limit=limit, offset=offset)
        payload = {
            "query": query, "kind": "search", "offset": offset,
            "more": len(results) >= limit, "results": [r.to_json() for r in results],
        }  # fmt: skip
        self.outbox.post("results", request_id, payload)

    def do_similar(self, request_id: int, request: dict) -> None:
        assert self._library is not None
        results = self._library.similar(
            request["path"], start=request.get("start"), end=request.get("end"),
            limit=request.get("limit", 200), device=self._device,
            **({"space": request["space"]} if request.get("space") else {}),
        )  # fmt: skip
        payload = {
            "query": request["path"], "kind": "similar", "start": request.get("start"),
            "end": request.get("end"), "results": [r.to_json() for r in results],
        }  # fmt: skip
        self.outbox.post("results", request_id, payload)

    def do_render(self, source: str) -> None:
        from engine.audio.export import render_file

        paths = render_file(source, self._fields(source))
        if paths:
            self.outbox.post("rendered", source, [str(p) for p in paths])

    def do_paths(self, request_id: int, paths: list, label: str) -> None:
        assert self._library is not None
        results = self._library.results_for_paths(list(paths))
        payload = {"query": label, "kind": "paths", "results": [r.to_json() for r in results]}
        self.outbox.post("results", request_id, payload)

    def do_subfolders(self, folder: str) -> None:
        assert self._library is not None
        self.outbox.post("subfolders", folder, self._library.subfolders(folder))

    def do_overviews(self, file_ids: list) -> None:
        assert self._library is not None
        self.outbox.post("overviews", self._library.overview_peaks(list(file_ids)))

    def do_detail(self, file_id: int) -> None:
        assert self._library is not None
        row = self._library.detail(file_id)
        if row is not None:
            self.outbox.post("detail", row)

    def do_favorite(self, file_id: int, favorite: bool) -> None:
        assert self._library is not None
        self._library.set_favorite(file_id, favorite)
        self.do_detail(file_id)

    def do_tags(self, file_id: int, tags: list) -> None:
        assert self._library is not None
        self._library.add_tags(file_id, list(tags))
        self.do_detail(file_id)

    def do_collect(self, name: str, file_ids: list, add: bool) -> None:
        assert self._library is not None
        try:
            if add:
                self._library.add_to_collection(name, list(file_ids))
                self.outbox.post("message", f"Added {len(file_ids)} to {name}")
            else:
                removed = self._library.remove_from_collection(name, list(file_ids))
                self.outbox.post("message", f"Took {removed} out of {name}")
        finally:
            self.do_status()
        for file_id in file_ids:
            self.do_detail(file_id)

    def do_collection(self, action: str, args: list) -> None:
        """create (name), rename (old, new) or export (name, folder) a collection."""
        assert self._library is not None
        try:
            if action == "create":
                self._library.create_collection(args[0])
                self.outbox.post("message", f"Made the collection {args[0]}")
            elif action == "rename":
                self._library.rename_collection(args[0], args[1])
                self.outbox.post("message", f"Renamed {args[0]} to {args[1]}")
            elif action == "export":
                result = self._library.export_collection(args[0], args[1])
                text = f"Copied {len(result['copied'])} files of {args[0]} into {args[1]}"
                if result["failed"]:
                    text += f"; {len(result['failed'])} not: {result['failed'][0]['error']}"
                self.outbox.post("message", text)
                self.outbox.post("collection_exported", result)
        finally:
            self.do_status()

    def do_categories(self) -> None:
        assert self._library is not None
        self.outbox.post("categories", self._library.ucs_categories())

    def do_delete_collection(self, name: str) -> None:
        assert self._library is not None
        try:
            self._library.delete_collection(name)
            self.outbox.post("message", f"Deleted the collection {name} (its files stay)")
        finally:
            self.do_status()

    # How many selected files the editor reads fields of (a larger selection is edited
    # all the same: its fields show as several values).
    METADATA_READ_LIMIT = 2000

    def do_metadata(self, file_ids: list) -> None:
        """The editable fields of the selected files: a field's value, or None where the
        files differ; "pending": how many have edits not written into them."""
        assert self._library is not None
        ids = list(file_ids)
        fields: dict[str, str | None] = {}
        names: list[str] = []
        pending = 0
        for file_id in ids[: self.METADATA_READ_LIMIT]:
            try:
                meta = self._library.metadata(file_id)
            except LibraryError:
                continue  # removed from the library meanwhile
            names.append(os.path.basename(meta["path"]))
            pending += meta["pending_write"]
            for name, value in meta["fields"].items():
                if name not in fields:
                    fields[name] = value
                elif fields[name] != value:
                    fields[name] = None
        if len(ids) > self.METADATA_READ_LIMIT:
            fields = dict.fromkeys(fields)
        self.outbox.post("metadata", {"ids": ids, "fields": fields, "pending": pending,
                                      "names": names})  # fmt: skip

    def do_edit(self, file_ids: list, changes: dict, append: bool) -> None:
        assert self._library is not None
        try:
            result = self._library.edit(list(file_ids), dict(changes), append=append)
            if result["batch"] is None:
                self.outbox.post("message", "Nothing changed (the files already say so)")
            else:
                text = f"Changed {result['changes']} fields of {result['files']} files"
                if "write" in result:
                    text += "; " + _written_text(result["write"])
                self.outbox.post("message", text)
        finally:
            self._after_edit(file_ids)

    def do_write(self, file_ids: list) -> None:
        assert self._library is not None
        last = [0.0]

        def progress(done: int, total: int, _path: str) -> None:
            now = time.monotonic()
            if total > 1 and done < total and now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                self.outbox.post("message", f"Writing metadata into files: {done} of {total}")

        try:
            report = self._library.write_metadata(list(file_ids) or None, progress=progress)
            self.outbox.post("message", _written_text(report))
            self.outbox.post("written", report)
        finally:
            self._after_edit(file_ids)

    def do_undo(self, file_ids: list, redo: bool) -> None:
        assert self._library is not None
        try:
            result = self._library.redo_edit() if redo else self._library.undo_edit()
            verb = "Redid" if redo else "Undid"
            self.outbox.post(
                "message",
                f"Nothing to {verb[:-2].lower()}" if result is None else
                f"{verb} {result['changes']} changes to {result['files']} files",
            )  # fmt: skip
        finally:
            self._after_edit(file_ids)

    def do_export(self, path: str, file_ids: list) -> None:
        assert self._library is not None
        rows = self._library.export_metadata(path, files=list(file_ids) or None)
        self.outbox.post("message", f"Exported the metadata of {rows} files to {path}")

    def do_import(self, path: str, apply: bool, write: bool, file_ids: list) -> None:
        """The plan of a CSV import (posted as "import_plan"), or with ``apply`` the
        import made (and with ``write`` written into the files)."""
        assert self._library is not None
        try:
            plan = self._library.import_metadata(path, apply=apply, write=write)
            plan["path"] = path
            if not apply:
                self.outbox.post("import_plan", plan)
                return
            text = f"Imported {len(plan['preview'])} changes to {plan['files']} files"
            if "write" in plan:
                text += "; " + _written_text(plan["write"])
            self.outbox.post("message", text)
        finally:
            if apply:
                self._after_edit(file_ids)

    # Selections larger than this get no suggestions on selecting (Edit menu: all of them).
    SUGGEST_ON_SELECT = 50

    def do_suggest(self, file_ids: list) -> None:
        """Category suggestions for the selected files (posted as "suggestions"); none
        when the library cannot make them yet."""
        assert self._library is not None
        ids = list(file_ids)[: self.SUGGEST_ON_SELECT]
        try:
            found = self._library.suggest_categories(ids) if ids else {}
        except NotIndexed:
            found = {}
        self.outbox.post("suggestions", {"ids": list(file_ids), "suggestions": found})

    def do_accept(self, file_ids: list, rank: int, min_confidence: float) -> None:
        """Set each file's CatID to its suggestion number ``rank`` (0: the best), where it
        is at least ``min_confidence`` sure; every file without a CatID when none given."""
        assert self._library is not None
        try:
            found = self._library.suggest_categories(list(file_ids) or None)
            chosen = {
                f: s[rank] for f, s in found.items()
                if len(s) > rank and s[rank]["confidence"] >= min_confidence
            }  # fmt: skip
            result = self._library.accept_suggestions(chosen)
            self.outbox.post(
                "message", f"Set the category of {result['files']} files from suggestions"
            )
        finally:
            self._after_edit(file_ids)

    def do_rename(self, file_ids: list, apply: bool, creator: str, source: str) -> None:
        """A UCS rename's plan (posted as "rename_plan"), or with ``apply`` the renames."""
        assert self._library is not None
        out = self._library.rename_ucs(
            list(file_ids), apply=apply, creator=creator or None, source=source or None
        )
        if not apply:
            self.outbox.post("rename_plan", out["plan"])
            return
        result = out["result"]
        text = f"Renamed {result['renamed']} files to UCS names"
        if result["failed"]:
            text += f"; {len(result['failed'])} not: {result['failed'][0]['error']}"
        self.outbox.post("message", text)
        self.outbox.post("renamed", result)

    def do_undo_rename(self) -> None:
        assert self._library is not None
        result = self._library.undo_rename()
        if result is None:
            self.outbox.post("message", "No rename to undo")
            return
        self.outbox.post("message", f"Gave {result['renamed']} files back their names")
        self.outbox.post("renamed", result)

    def _after_edit(self, file_ids: list) -> None:
        self.do_metadata(file_ids)
        if self.suggests:
            self.do_suggest(file_ids)
        self.do_categories()
        for file_id in list(file_ids)[:1]:
            self.do_detail(file_id)

    def do_remove(self, path: str) -> None:
        assert self._library is not None
        try:
            removed = self._library.remove_folder(path)
            self.outbox.post("message", f"Removed {path} ({removed} files forgotten)")
        finally:
            self.do_status()

    def do_clip(self, source: str, start: float, end: float) -> None:
        from engine.audio.export import render_clip

        # A failure is answered by process().
        paths = render_clip(source, start, end, self._fields(source))
        self.outbox.post(
            "clip", {"source": source, "start": start, "end": end, "path": str(paths[0]),
                     "paths": [str(p) for p in paths]},
        )  # fmt: skip

    def do_view(
        self, path: str, start: float, end: float, columns: int, rows: int, peaks: bool,
        spectrogram: bool, per_channel: bool,
    ) -> None:  # fmt: skip
        from engine.audio import views

        answer: dict = {"path": path, "start": start, "end": end, "columns": columns,
                        "rows": rows, "per_channel": per_channel}  # fmt: skip
        if peaks:
            answer["mins"], answer["maxs"] = views.range_peaks(
                path, start, end, columns, per_channel
            )
        if spectrogram:
            answer["spectrogram"] = views.spectrogram(path, start, end, columns, rows)
        self.outbox.post("view", answer)

    def do_duplicates(self, near: bool) -> None:
        assert self._library is not None
        self._near_duplicates = near
        groups = self._library.duplicates(near=near, space=config.value("similar_space"))
        self.outbox.post("duplicates", [g.to_json() for g in groups])

    def do_remove_duplicates(self, file_ids: list, trash: bool) -> None:
        assert self._library is not None
        try:
            if trash:
                report = self._library.trash(list(file_ids))
                text = f"Moved {len(report['trashed'])} files to the trash"
                if report["failed"]:
                    failed = report["failed"][0]
                    text += f"; {len(report['failed'])} not ({failed['path']}: {failed['error']})"
            else:
                removed = self._library.remove_from_library(list(file_ids))
                text = f"Removed {len(removed)} files from the library"
            self.outbox.post("message", text)
        finally:
            self.do_duplicates(getattr(self, "_near_duplicates", False))
            self.do_status()

    def do_loudness(self, source: str, start: float, end: float) -> None:
        from engine.audio.loudness import measure

        levels = measure(source, start, end).to_json()
        self.outbox.post("loudness", {"source": source, "start": start, "end": end, **levels})

    def _fields(self, path: str) -> dict | None:
        """The catalog's metadata of a library file (the user's edits over the file's
        own), for the renders made of it; None: not in the library (the file's own)."""
        from engine.curate.batch import file_values

        assert self._library is not None
        row = self._library.catalog.file_by_path(path)
        return None if row is None else file_values(self._library.catalog, row["id"])

    def do_export_sounds(self, paths: list, folder: str, pattern: str = "") -> None:
        import soundfile as sf

        from engine.audio.transfer import Transfer, pattern_name, render
        from engine.catalog.paths import os_path

        t = Transfer.from_settings()
        written, failed = 0, []
        for n, path in enumerate(paths, start=1):
            try:
                name = None
                if pattern:
                    rate = t.rate or int(sf.info(os_path(path)).samplerate)
                    name = pattern_name(pattern, Path(path), None, None, t, rate, n)
                rendered = render(path, Path(folder), t, name=name, fields=self._fields(path))
                written += len(rendered.paths)
            except (OSError, ValueError, RuntimeError) as exc:
                failed.append(f"{Path(path).name}: {exc}")
        text = f"Exported {written} files to {folder}"
        if failed:
            text += f"; {len(failed)} not exported ({failed[0]})"
        self.outbox.post("message", text)

    def stop(self) -> None:
        if self._library is not None:
            self._library.close()
            self._library = None
        self.stopped.set()


def _written_text(report: dict) -> str:
    """A write report as the status bar says it."""
    text = f"Wrote metadata into {len(report['written'])} files"
    if report["failed"]:
        text += f"; {len(report['failed'])} not written: {report['failed'][0]['error']}"
    return text


class _IndexWorker(QObject):
    """Lives on the index thread: runs engine.index_worker in a child process and relays
    its progress to `outbox`. The child, not this process, decodes and runs models."""

    def __init__(
        self, library_dir: str | None, spaces: tuple[str, ...] | None, inbox: _Mailbox,
        outbox: _Mailbox, device: str = "auto",
    ) -> None:  # fmt: skip
        super().__init__()
        self._library_dir = library_dir
        self._spaces = spaces
        self._device = device
        self.inbox = inbox
        self.outbox = outbox
        self.process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    @Slot()
    def run_queued(self) -> None:
        for _name, (add_paths, embed, flags) in self.inbox.drain():
            try:
                self.index(add_paths, embed, flags)
            except Exception as exc:  # e.g. the child could not start: say so, never hang
                log.exception("indexing failed")
                with self._lock:
                    process, self.process = self.process, None
                if process is not None and process.poll() is None:
                    process.kill()  # no one reads its output any more
                    process.wait()
                self.outbox.post("index_finished", {"error": failure_message("Indexing", exc)})

    def index(self, add_paths: list, embed: bool, flags: tuple[str, ...] = ()) -> None:
        library_dir = str(resolve_library_dir(self._library_dir))
        command = [sys.executable, "-m", "engine.index_worker", "--library", library_dir]
        if add_paths:
            command += ["--add", *add_paths]
        if not embed:
            command.append("--no-embed")
        command += list(flags)  # --retry-errors, --forget-missing
        for space in self._spaces or ():
            command += ["--space", space]
        command += ["--device", self._device]
        pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        with self._lock:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                env={**os.environ, "PYTHONPATH": pythonpath}, cwd=str(ROOT), bufsize=1,
            )  # fmt: skip
        summary: dict | None = None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue  # not one of the worker's events (a stray print)
            event = message.pop("event", None)
            if event == "progress":
                self.outbox.post("progress", message)
            elif event == "finished":
                summary = message
            elif event == "error":
                summary = {"error": message.get("message", "indexing failed")}
        code = self.process.wait()
        with self._lock:
            self.process = None
        if summary is None:
            summary = {"error": f"indexing stopped unexpectedly (exit {code}); rescan to resume"}
        self.outbox.post("index_finished", summary)

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

    def terminate(self, timeout: float = 3.0) -> None:
        """Any thread: ask the child to stop after its files in flight, then make sure.

        Killing it is safe: each file is one transaction, the next scan resumes."""
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
    loudness_ready = Signal(object)  # a region's levels (do_loudness)
    duplicates_found = Signal(object)  # [Group.to_json()] (do_duplicates)
    view_ready = Signal(object)  # peaks and spectrogram of a stretch (do_view)
    subfolders_ready = Signal(str, object)  # folder, [(path, files)] (do_subfolders)
    rendered = Signal(str, object)  # source, [rendered paths] for dragging it (do_render)
    metadata_ready = Signal(object)  # the selected files' fields (do_metadata)
    import_planned = Signal(object)  # what a CSV import would change (do_import)
    rename_planned = Signal(object)  # a UCS rename's plan (do_rename)
    suggestions_ready = Signal(object)  # {"ids", "suggestions": {id: [...]}} (do_suggest)
    categories_ready = Signal(object)  # Library.ucs_categories()
    collection_exported = Signal(object)  # {"copied", "failed"}
    renamed = Signal(object)  # files were renamed (or back): their paths changed
    written = Signal(object)  # a write_metadata report
    checked = Signal(object)  # Library.check()'s result
    message = Signal(str)
    index_progressed = Signal(object)
    index_finished = Signal(object)

    def __init__(
        self,
        library_dir: str | None = None,
        spaces: tuple[str, ...] | None = None,
        device: str = "auto",
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
        self._running = True

        self._query_in, self._query_out = _Mailbox(), _Mailbox()
        self._index_in, self._index_out = _Mailbox(), _Mailbox()
        self._query_thread = QThread()
        self._query_thread.setObjectName("sonarium-query")
        self._query = _QueryWorker(library_dir, self._query_in, self._query_out, device)
        self._query.moveToThread(self._query_thread)
        self._query_in.posted.connect(self._query.process)
        # Workers must die on their own threads, before Python tears the bridge down.
        self._query_thread.finished.connect(self._query.deleteLater)

        # Long curating jobs (writing metadata into files, CSV imports, renaming, copying
        # a collection out) run on their own thread with their own Library: searching
        # and auditioning never wait for a batch of ten thousand writes.
        self._curate_in, self._curate_out = _Mailbox(), _Mailbox()
        self._curate_thread = QThread()
        self._curate_thread.setObjectName("sonarium-curate")
        self._curate = _QueryWorker(library_dir, self._curate_in, self._curate_out, device)
        self._curate.suggests = False  # suggestions need the text models: the query thread's
        self._curate.moveToThread(self._curate_thread)
        self._curate_in.posted.connect(self._curate.process)
        self._curate_thread.finished.connect(self._curate.deleteLater)

        self._index_thread = QThread()
        self._index_thread.setObjectName("sonarium-index")
        self._index = _IndexWorker(library_dir, spaces, self._index_in, self._index_out, device)
        self._index.moveToThread(self._index_thread)
        self._index_in.posted.connect(self._index.run_queued)
        self._index_thread.finished.connect(self._index.deleteLater)

        self._query_out.posted.connect(self._drain)
        self._curate_out.posted.connect(self._drain)
        self._index_out.posted.connect(self._drain)
        self._handlers: dict[str, Callable[..., None]] = {
            "results": self._on_results,
            "failed": self._on_failed,
            "status": self.status_changed.emit,
            "overviews": self.overviews_ready.emit,
            "detail": self.detail_ready.emit,
            "clip": self.clip_ready.emit,
            "loudness": self.loudness_ready.emit,
            "duplicates": self.duplicates_found.emit,
            "view": self.view_ready.emit,
            "subfolders": self.subfolders_ready.emit,
            "rendered": self.rendered.emit,
            "metadata": self.metadata_ready.emit,
            "import_plan": self.import_planned.emit,
            "rename_plan": self.rename_planned.emit,
            "suggestions": self.suggestions_ready.emit,
            "categories": self.categories_ready.emit,
            "collection_exported": self.collection_exported.emit,
            "renamed": self.renamed.emit,
            "written": self.written.emit,
            "checked": self.checked.emit,
            "message": self.message.emit,
            "progress": self.index_progressed.emit,
            "index_finished": self._on_index_finished,
        }
        self._query_thread.start()
        self._curate_thread.start()
        self._index_thread.start()
        self.refresh_status()
        self.request_categories()
        self._ask("warm")  # in the background: the window shows meanwhile

    def _drain(self) -> None:
        for box in (self._query_out, self._curate_out, self._index_out):
            for name, args in box.drain():
                try:
                    self._handlers[name](*args)
                except Exception:  # one bad answer must not drop the others drained with it
                    log.exception("handling %s failed", name)

    def _ask(self, name: str, *args: Any) -> None:
        if self._running:
            box = self._curate_in if name in _CURATING else self._query_in
            box.post(name, *args)

    # -- queries (newest request wins) ------------------------------------------------

    def search(self, query: str, limit: int | None = None) -> None:
        """The first page (RESULT_PAGE results unless `limit`) of a search."""
        self._latest += 1
        self._ask("search", self._latest, query, limit or RESULT_PAGE)

    def search_more(self, query: str, offset: int) -> None:
        """The next page of the latest search (answered only while no newer request was
        made: a new search or find-similar supersedes it)."""
        self._ask("search", self._latest, query, RESULT_PAGE, offset)

    def similar(
        self, path: str, start: float | None = None, end: float | None = None,
        space: str | None = None,
    ) -> None:  # fmt: skip
        self._latest += 1
        self._ask("similar", self._latest, {"path": path, "start": start, "end": end,
                                            "space": space})  # fmt: skip

    def _on_results(self, request_id: int, payload: dict) -> None:
        if request_id == self._latest:
            self.results_ready.emit(payload)

    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id == self._latest:
            self.query_failed.emit(message)

    # -- other requests ----------------------------------------------------------------

    def refresh_status(self) -> None:
        self._ask("status")

    def check_library(self) -> None:
        """Verify the catalog and its side files on the query thread; `checked` answers."""
        self._ask("check")

    def request_overviews(self, file_ids: list[int]) -> None:
        self._ask("overviews", list(file_ids))

    def request_detail(self, file_id: int) -> None:
        self._ask("detail", file_id)

    def set_favorite(self, file_id: int, favorite: bool) -> None:
        self._ask("favorite", file_id, favorite)

    def add_tags(self, file_id: int, tags: list[str]) -> None:
        self._ask("tags", file_id, list(tags))

    def remove_folder(self, path: str) -> None:
        self._ask("remove", path)

    def add_to_collection(self, name: str, file_ids: list[int]) -> None:
        self._ask("collect", name, list(file_ids), True)

    def remove_from_collection(self, name: str, file_ids: list[int]) -> None:
        self._ask("collect", name, list(file_ids), False)

    def delete_collection(self, name: str) -> None:
        self._ask("delete_collection", name)

    def create_collection(self, name: str) -> None:
        self._ask("collection", "create", [name])

    def rename_collection(self, name: str, new_name: str) -> None:
        self._ask("collection", "rename", [name, new_name])

    def export_collection(self, name: str, folder: str) -> None:
        """Copy a collection's files into a folder (answered by collection_exported)."""
        self._ask("collection", "export", [name, folder])

    def request_categories(self) -> None:
        self._ask("categories")

    def request_metadata(self, file_ids: list[int]) -> None:
        self._ask("metadata", list(file_ids))

    def edit(self, file_ids: list[int], changes: dict[str, str], append: bool = False) -> None:
        """Set fields on files in the catalog (one undoable batch); answered by a message
        and the files' fields again."""
        self._ask("edit", list(file_ids), dict(changes), append)

    def write_metadata(self, file_ids: list[int]) -> None:
        """Write the files' metadata into them (every pending file when empty)."""
        self._ask("write", list(file_ids))

    def render_for_drag(self, source: str) -> None:
        """The whole file rendered with the transfer settings, ready to drag (rendered)."""
        self._ask("render", source)

    def show_paths(self, paths: list[str], label: str) -> None:
        """These files as the results (recently auditioned), in that order."""
        self._latest += 1
        self._ask("paths", self._latest, list(paths), label)

    def request_subfolders(self, folder: str) -> None:
        self._ask("subfolders", folder)

    def request_view(
        self, path: str, start: float, end: float, columns: int, rows: int, peaks: bool,
        spectrogram: bool, per_channel: bool,
    ) -> None:  # fmt: skip
        """Peaks (per channel) and/or a spectrogram of [start, end) of `path` (view_ready)."""
        self._ask("view", path, start, end, columns, rows, peaks, spectrogram, per_channel)

    def find_duplicates(self, near: bool) -> None:
        """Groups of duplicate sounds (duplicates_found)."""
        self._ask("duplicates", bool(near))

    def remove_duplicates(self, file_ids: list[int], trash: bool) -> None:
        """Forget the files (and keep scans from adding them again), or move them to the
        trash; then the duplicates are looked for again."""
        self._ask("remove_duplicates", list(file_ids), bool(trash))

    def measure_loudness(self, source: str, start: float, end: float) -> None:
        """Integrated loudness and true peak of [start, end) of `source` (loudness_ready)."""
        self._ask("loudness", source, start, end)

    def export_sounds(self, paths: list[str], folder: str, pattern: str = "") -> None:
        """Render the files into `folder` with the transfer settings, named by `pattern`
        (engine.audio.transfer.pattern_name; empty: the source's name)."""
        self._ask("export_sounds", list(paths), folder, pattern)

    def export_metadata(self, path: str, file_ids: list[int]) -> None:
        """Write a CSV of the files' metadata (the whole library when none)."""
        self._ask("export", path, list(file_ids))

    def import_metadata(
        self, path: str, apply: bool = False, write: bool = False,
        file_ids: list[int] | None = None,
    ) -> None:  # fmt: skip
        """Plan a CSV import (answered by import_planned), or make it with ``apply``."""
        self._ask("import", path, apply, write, list(file_ids or []))

    def request_suggestions(self, file_ids: list[int]) -> None:
        self._ask("suggest", list(file_ids))

    def accept_suggestion(
        self, file_ids: list[int], rank: int = 0, min_confidence: float = 0.0
    ) -> None:
        """Set the files' CatIDs from their suggestions (every uncategorised file when
        ``file_ids`` is empty)."""
        self._ask("accept", list(file_ids), rank, min_confidence)

    def rename_ucs(
        self, file_ids: list[int], apply: bool = False, creator: str = "", source: str = ""
    ) -> None:
        """Plan (answered by rename_planned) or, with ``apply``, do a UCS rename."""
        self._ask("rename", list(file_ids), apply, creator, source)

    def undo_rename(self) -> None:
        self._ask("undo_rename")

    def undo_edit(self, file_ids: list[int]) -> None:
        self._ask("undo", list(file_ids), False)

    def redo_edit(self, file_ids: list[int]) -> None:
        self._ask("undo", list(file_ids), True)

    def export_clip(self, source: str, start: float, end: float) -> None:
        self._ask("clip", source, start, end)

    # -- indexing ----------------------------------------------------------------------

    def index(
        self,
        add_paths: list[str] | None = None,
        embed: bool = True,
        retry_errors: bool = False,
        forget_missing: bool = False,
    ) -> None:
        """Add folders (optional), rescan everything and embed; queued if one is running.
        ``retry_errors``: read and embed again the files that failed; ``forget_missing``:
        forget files whose folders are gone (else kept offline)."""
        self.indexing = True
        flags = (("--retry-errors",) if retry_errors else ()) + (
            ("--forget-missing",) if forget_missing else ()
        )
        self._index_in.post("index", list(add_paths or []), embed, flags)

    def pause(self, paused: bool) -> None:
        self._index.send("pause" if paused else "resume")

    def cancel_index(self) -> None:
        self._index.send("cancel")

    def _on_index_finished(self, summary: dict) -> None:
        self.indexing = False
        if "error" in summary:
            self.message.emit(summary["error"])
        self.index_finished.emit(summary)
        self.refresh_status()
        self.request_categories()

    def shutdown(self) -> None:
        """Stop indexing, close the engine and stop its threads; safe to call twice."""
        if not self._running:
            return
        self._running = False
        self._index.terminate()
        self._query_in.post("stop")
        self._curate_in.post("stop")
        # The Library (SQLite connection, FAISS index, models) must be torn down by the
        # thread that made it, before that thread's event loop ends. A write in flight
        # finishes its file first (each file is whole or untouched either way).
        self._query.stopped.wait(30)
        self._curate.stopped.wait(30)
        threads = (self._query_thread, self._curate_thread, self._index_thread)
        for thread in threads:
            thread.quit()
        for thread in threads:
            thread.wait(30000)
