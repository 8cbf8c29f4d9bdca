"""Incremental, resumable, cancellable folder scanning.

The thread that calls :meth:`Scanner.scan` is the catalog's one writer for the duration
of the scan; reading files (decode, peaks, levels, fingerprint, metadata) runs in a pool
of worker processes, or of threads for a handful of files. Each file's row, peaks and
search text are committed in one transaction as soon as the file is done, so a kill
loses at most the files in flight and the next scan resumes where this one stopped. A
file that crashes its worker process (a decoder bug) becomes an error row; the scan
goes on.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from engine.catalog.db import Catalog
from engine.catalog.paths import os_path, shown, to_catalog
from engine.config import AUDIO_SUFFIXES, scan_jobs
from engine.scan.analyze import (
    Analysis,
    FileChanged,
    FileVanished,
    analyze,
    fingerprint,
    rounded_level,
)
from engine.scan.ucs import UcsTable

log = logging.getLogger(__name__)

# Files are read in worker processes when there are at least this many to read: a
# decoder crash then costs one file, not the scan, and reading scales past the GIL on
# many cores (on two, processes and threads are about as fast: docs/measurements.md).
# Fewer are read on threads, which start at once where a worker process takes about a
# second to start.
PROCESS_MIN_FILES = 64
CRASHED = "reading this file crashed the decoder (its worker process died); rescan to retry"


@dataclass
class ScanProgress:
    """A snapshot of a running scan, passed to progress callbacks."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    elapsed: float
    current: str = ""

    @property
    def files_per_second(self) -> float:
        return self.files_done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def bytes_per_second(self) -> float:
        return self.bytes_done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        rate = self.bytes_per_second
        if rate <= 0 or self.files_done == 0:
            return None
        return max(0.0, (self.bytes_total - self.bytes_done) / rate)


@dataclass
class ScanReport:
    """What a scan changed, for the CLI's summary and for tests."""

    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    errors: int = 0
    vanished: int = 0
    offline_kept: int = 0  # not found, their folder gone: kept as offline
    measured: int = 0  # unchanged files whose loudness was measured (scanned before m008)
    cancelled: bool = False
    elapsed: float = 0.0
    files_seen: int = 0
    bytes_read: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def touched(self) -> int:
        return self.added + self.updated + self.moved + self.removed


@dataclass
class _Listed:
    path: str  # catalog form (engine.catalog.paths)
    root_id: int
    size: int
    mtime_ns: int


def walk_audio(
    root: Path, warnings: list[str], unreadable: list[str] | None = None
) -> Iterator[tuple[str, os.stat_result]]:
    """Audio files under `root`, following symlinks but never looping. Paths are as the
    OS gives them (os.fsdecode: undecodable bytes as lone surrogates).

    Hidden entries (".*", including macOS "._" resource forks) are skipped. Folders (and
    entries) that cannot be read right now are warned about and their paths appended to
    `unreadable`: what the catalog knows under them is not known to be gone (a network
    share that hiccups), so the caller keeps it.
    """
    unreadable = unreadable if unreadable is not None else []
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
        except OSError as exc:
            warnings.append(f"cannot read folder {_said(folder)}, kept its files: {_why(exc)}")
            unreadable.append(str(folder))
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            continue  # a symlink loop or a second link to a folder already walked
        seen_dirs.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            warnings.append(f"cannot read folder {_said(folder)}, kept its files: {_why(exc)}")
            unreadable.append(str(folder))
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                est = entry.stat(follow_symlinks=True)
            except FileNotFoundError:
                continue  # dangling symlink, or gone since listing
            except OSError as exc:  # there but unreadable now: not known to be gone
                warnings.append(f"cannot read {_said(entry.path)}, kept it: {_why(exc)}")
                unreadable.append(entry.path)
                continue
            if stat.S_ISDIR(est.st_mode):
                if entry.is_symlink() and not _inside(Path(entry.path), root):
                    # One link to "/" would walk the whole filesystem into the library.
                    warnings.append(
                        f"skipped {_said(entry.path)}: a link to a folder outside the library "
                        f"folder (add that folder to the library to index it)"
                    )
                    continue
                subdirs.append(Path(entry.path))
            elif stat.S_ISREG(est.st_mode) and Path(entry.name).suffix.lower() in AUDIO_SUFFIXES:
                fkey = (est.st_dev, est.st_ino)
                if fkey in seen_files:
                    continue
                seen_files.add(fkey)
                yield entry.path, est
        stack.extend(reversed(subdirs))


def _said(os_path_: str | Path) -> str:
    """An OS path for a warning: undecodable bytes as \\xNN."""
    return shown(to_catalog(str(os_path_)))


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` resolves to ``root`` or a folder under it (links followed)."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # unresolvable (a loop): not inside
        return False


class Scanner:
    """Scans registered root folders into a catalog. Create and use on one thread."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        ucs_table: UcsTable | None = None,
        workers: int | None = None,
        progress: Callable[[ScanProgress], None] | None = None,
        cancel: threading.Event | None = None,
        pause: threading.Event | None = None,
        retry_errors: bool = False,
        forget_missing: bool = False,
        processes: bool | None = None,
    ) -> None:
        self.catalog = catalog
        # Worker processes (True), threads (False) or by the number of files (None).
        self.processes = processes
        # Forget the rows of files whose folders are gone, instead of keeping them offline.
        self.forget_missing = forget_missing
        # Read error rows again even when the file looks unchanged (a permission fixed,
        # a share back, a new libsndfile): chmod and remounts leave size and mtime alone.
        self.retry_errors = retry_errors
        self.ucs_table = ucs_table
        self.workers = workers or scan_jobs()
        self.progress = progress
        self.cancel = cancel or threading.Event()
        # Set = paused. Checked between files, so pausing waits for the files in flight.
        self.pause = pause or threading.Event()

    def scan(self, roots: list[str] | None = None) -> ScanReport:
        """Bring the catalog up to date with the given root paths (default: all roots)."""
        started = time.monotonic()
        report = ScanReport()
        all_roots = {r["path"]: r["id"] for r in self.catalog.roots()}
        selected = {p: all_roots[p] for p in (roots or all_roots) if p in all_roots}

        listed: list[_Listed] = []
        unreadable: list[str] = []
        known: dict[str, tuple[int, int, int, str | None]] = {}
        read_roots: list[int] = []
        for root_path, root_id in selected.items():
            root = Path(os_path(root_path))
            if not root.is_dir():
                # Keep the rows of an unplugged drive instead of deleting the whole root.
                report.warnings.append(
                    f"folder is offline (missing or unreadable), kept its files: {shown(root_path)}"
                )
                self.catalog.set_offline(root_id)
                continue
            read_roots.append(root_id)
            known.update(self.catalog.known_files(root_id))
            for path, st in walk_audio(root, report.warnings, unreadable):
                listed.append(_Listed(to_catalog(path), root_id, st.st_size, st.st_mtime_ns))
        # Files the user removed from the library (duplicates) stay out of it.
        left_out = self.catalog.excluded_paths()
        if left_out:
            listed = [item for item in listed if item.path not in left_out]
        report.files_seen = len(listed)

        listed_paths = {item.path for item in listed}
        # Only files under folders that were read are known to be gone; rows under an
        # unreadable folder (a network share's hiccup) keep their tags and favorites.
        unread = {to_catalog(u) for u in unreadable}
        under = tuple(u.rstrip(os.sep) + os.sep for u in unread)
        # Not listed: under a folder that could not be read (offline), in a folder that is
        # no longer there (offline too: an unmounted share's mount point, a drive letter;
        # a renamed folder's files are matched as moves below), or gone from a folder
        # that is there (really gone: the row goes).
        missing: dict[str, tuple[int, int, int, str | None]] = {}
        vanished: dict[str, tuple[int, int, int, str | None]] = {}
        offline: list[int] = []
        folder_there: dict[str, bool] = {}
        for p, v in known.items():
            if p in listed_paths:
                continue
            if p in unread or (under and p.startswith(under)):
                offline.append(v[0])
                continue
            folder = os.path.dirname(p)
            if folder not in folder_there:
                folder_there[folder] = os.path.isdir(os_path(folder))
            if folder_there[folder] or self.forget_missing:
                missing[p] = v
            else:
                vanished[p] = v
        todo: list[_Listed] = []
        new: list[_Listed] = []
        retry = self._error_paths() if self.retry_errors else set()
        unmeasured = self.catalog.unmeasured_files()
        measure: list[_Listed] = []
        for item in listed:
            row = known.get(item.path)
            if row is None:
                new.append(item)
            elif (row[1], row[2]) == (item.size, item.mtime_ns) and item.path not in retry:
                report.unchanged += 1
                if item.path in unmeasured:
                    measure.append(item)
            else:
                todo.append(item)

        candidates = {**missing, **vanished}
        todo.extend(self._apply_moves(new, candidates, report))
        gone = [v[0] for p, v in candidates.items() if p in missing]
        if gone:
            self.catalog.delete_files(gone)
            report.removed += len(gone)
        kept = [v[0] for p, v in candidates.items() if p in vanished]
        if kept:
            report.offline_kept = len(kept)
            report.warnings.append(
                f"kept {len(kept)} files whose folders are gone, as offline (reconnect the "
                "drive or share to bring them back; forget them with a rescan that forgets "
                "missing files)"
            )
        for root_id in read_roots:
            self.catalog.set_offline(root_id, offline + kept)

        self._analyze_all(todo, known, report, started)
        if measure and not report.cancelled:
            self._measure_all(measure, report)
        if not report.cancelled:
            for root_id in selected.values():
                self.catalog.mark_root_scanned(root_id)
        report.elapsed = time.monotonic() - started
        return report

    def _error_paths(self) -> set[str]:
        rows = self.catalog.conn.execute("SELECT path FROM files WHERE status = 'error'")
        return {r[0] for r in rows}

    def _apply_moves(
        self,
        new: list[_Listed],
        missing: dict[str, tuple[int, int, int, str | None]],
        report: ScanReport,
    ) -> list[_Listed]:
        """Re-point rows of missing files at new files with the same fingerprint.

        Returns the new files that are not moves. Matched entries leave `missing`.
        """
        if not missing or not new:
            return new
        by_key: dict[tuple[int, str], str] = {}
        for path, (_, size, _, fp) in missing.items():
            if fp:
                by_key.setdefault((size, fp), path)
        sizes = {k[0] for k in by_key}
        rest = []
        for item in new:
            if item.size not in sizes:
                rest.append(item)
                continue
            try:
                fp = fingerprint(item.path, item.size)
            except OSError:
                rest.append(item)
                continue
            old = by_key.pop((item.size, fp), None)
            if old is None:
                rest.append(item)
                continue
            file_id = missing.pop(old)[0]
            self.catalog.move_file(file_id, item.path, item.root_id, item.size, item.mtime_ns)
            report.moved += 1
        return rest

    def _analyze_all(
        self,
        todo: list[_Listed],
        known: dict[str, tuple[int, int, int, str | None]],
        report: ScanReport,
        started: float,
    ) -> None:
        total_bytes = sum(i.size for i in todo)
        done = 0
        done_bytes = 0
        scan_started = time.monotonic()
        processes = self.processes
        if processes is None:
            processes = self.workers > 1 and len(todo) >= PROCESS_MIN_FILES

        def finish(item: _Listed, result: Analysis | None) -> None:
            nonlocal done, done_bytes
            self._store(item, result, known, report)
            done += 1
            done_bytes += item.size
            if self.progress:
                self.progress(
                    ScanProgress(
                        done, len(todo), done_bytes, total_bytes,
                        time.monotonic() - scan_started, item.path,
                    )
                )  # fmt: skip

        pending: dict[Future[Analysis | None], _Listed] = {}
        queue = iter(todo)
        exhausted = False
        pool = self._pool(processes, self.workers)
        try:
            while True:
                broken: list[_Listed] = []  # in flight when a worker process died
                while not exhausted and len(pending) < self.workers * 2:
                    if self.cancel.is_set():
                        exhausted = True
                        report.cancelled = True
                        break
                    if self.pause.is_set():
                        break
                    item = next(queue, None)
                    if item is None:
                        exhausted = True
                        break
                    try:
                        pending[self._submit(pool, processes, item)] = item
                    except BrokenProcessPool:  # a worker died since the last answer
                        broken.append(item)
                        break
                if pending and not broken:
                    finished, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    for future in finished:
                        if isinstance(future.exception(), BrokenProcessPool):
                            broken.append(pending.pop(future))
                        else:
                            finish(pending.pop(future), future.result())
                if broken:
                    # A worker died (a decoder crash) and every file in flight failed with
                    # it: read each alone in a fresh process to find the one that kills it.
                    broken.extend(pending.values())
                    pending.clear()
                    pool.shutdown(wait=True)
                    for item in broken:
                        finish(item, self._read_alone(item))
                    pool = self._pool(processes, self.workers)
                    continue
                if not pending:
                    if exhausted:
                        break
                    self.cancel.wait(0.05)  # paused with nothing in flight
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        report.bytes_read = done_bytes

    def _measure_all(self, items: list[_Listed], report: ScanReport) -> None:
        """Loudness of unchanged files scanned before it was measured (migration m008),
        in the scan's workers; their rows, peaks and vectors are left as they are. A file
        that cannot be measured now is tried again by the next scan."""
        processes = self.processes
        if processes is None:
            processes = self.workers > 1 and len(items) >= PROCESS_MIN_FILES
        pool = self._pool(processes, self.workers)
        queue = iter(items)
        pending: dict[Future[tuple[float | None, float | None]], _Listed] = {}
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self.workers * 2:
                    if self.cancel.is_set():
                        report.cancelled = exhausted = True
                        break
                    item = next(queue, None)
                    if item is None:
                        exhausted = True
                        break
                    pending[pool.submit(measure_levels, item.path)] = item
                if not pending:
                    break
                finished, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in finished:
                    item = pending.pop(future)
                    try:
                        lufs, true_peak = future.result()
                    except Exception as exc:  # a worker died, or the file is gone meanwhile
                        log.warning("cannot measure the loudness of %s: %s", item.path, exc)
                        continue
                    self.catalog.set_loudness(item.path, lufs, true_peak)
                    report.measured += 1
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _pool(self, processes: bool, workers: int) -> Executor:
        if processes:
            # spawn: a fork of a process with threads (Qt, torch, SQLite) is not safe.
            return ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker, initargs=(self.ucs_table,),
            )  # fmt: skip
        return ThreadPoolExecutor(workers, thread_name_prefix="sonarium-scan")

    def _submit(self, pool: Executor, processes: bool, item: _Listed) -> Future[Analysis | None]:
        if processes:
            return pool.submit(_read_in_worker, item)
        return pool.submit(read_file, item, self.ucs_table)

    def _read_alone(self, item: _Listed) -> Analysis | None:
        """`item` read in a process of its own: its error row if that process dies too."""
        pool = self._pool(True, 1)
        try:
            return pool.submit(_read_in_worker, item).result()
        except BrokenProcessPool:
            log.error("reading %s crashed its worker process", item.path)
            return _error_analysis(item, CRASHED)
        finally:
            pool.shutdown(wait=True)

    def _store(
        self,
        item: _Listed,
        result: Analysis | None,
        known: dict[str, tuple[int, int, int, str | None]],
        report: ScanReport,
    ) -> None:
        if result is None:
            report.vanished += 1
            if item.path in known:
                self.catalog.delete_files([known[item.path][0]])
            return
        if self.catalog.write_file(result.record, result.peaks) is None:
            return  # its folder was removed from the library while we read the file
        if result.record["status"] == "error":
            report.errors += 1
        if item.path in known:
            report.updated += 1
        else:
            report.added += 1


def read_file(item: _Listed, ucs_table: UcsTable | None) -> Analysis | None:
    """Read one listed file: its Analysis (an error row for an unreadable file), or None
    when it vanished. Runs on a worker thread or in a worker process."""
    path = item.path
    for _attempt in range(2):
        try:
            return analyze(path, item.root_id, ucs_table)
        except FileVanished:
            return None
        except FileChanged:
            continue
        except Exception as exc:  # a bug must cost one file, not the scan
            log.exception("unexpected error reading %s", path)
            return _error_analysis(item, f"internal error while reading: {exc!r}")
    # Rewritten twice while we read it: record that, with the stat we listed, so the
    # next scan sees a different size/mtime and reads it again.
    return _error_analysis(item, "file kept changing while being read; rescan to retry")


# A worker process's UCS table, given once when it starts rather than with every file.
_worker_ucs: UcsTable | None = None


def _start_worker(ucs_table: UcsTable | None) -> None:
    """Runs first in each worker process."""
    global _worker_ucs
    _worker_ucs = ucs_table
    # Ctrl+C is for the scanning process, which cancels and stops the pool itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One BLAS thread per worker: the workers already fill the cores.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    # A worker must not outlive its scan: when the scanning process is killed (SIGKILL,
    # a crash) nothing tells the pool, and orphans would hold the terminal's pipes and
    # the files they read. Its sentinel becomes ready when the parent is gone.
    parent = multiprocessing.parent_process()
    if parent is not None:
        sentinel = parent.sentinel
        threading.Thread(
            target=_exit_with_parent, args=(sentinel,), name="sonarium-orphan", daemon=True
        ).start()


def _exit_with_parent(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(0)


def measure_levels(path: str) -> tuple[float | None, float | None]:
    """(integrated LUFS, true peak dBTP) of a file, None for silence, as the scan measures
    them (engine.scan.analyze). Any thread or worker process."""
    from engine.audio.loudness import measure

    levels = measure(path, quick=True)
    return rounded_level(levels.integrated_lufs), rounded_level(levels.true_peak_dbtp)


def _read_in_worker(item: _Listed) -> Analysis | None:
    return read_file(item, _worker_ucs)


def _error_analysis(item: _Listed, message: str) -> Analysis:
    p = Path(item.path)
    return Analysis(
        {
            "root_id": item.root_id, "path": item.path, "folder": str(p.parent), "name": p.name,
            "size": item.size, "mtime_ns": item.mtime_ns, "scanned_at": time.time(),
            "status": "error", "error": message,
        }
    )  # fmt: skip
