"""The embedding pipeline: decode workers → batched model → one catalog writer.

One decode of each file feeds every space that still needs it. Decoding runs on a small
pool of threads with a bounded number of files in flight; resampling and
each space's feature extraction (``prepare``) join it there when the space's model has
its own device (GPU), and otherwise run on the calling thread, with the model and the
catalog writes (the catalog's writer): a CPU model needs every core. Each file's
vectors are stored in their own transaction as soon as its batch is embedded, so a kill
loses at most the batch in flight and the next run continues with what is pending.
Errors are per space: a file one model fails on is still embedded by the others, and
is retried by that model only when the file changes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.audio.decode import decode_mono
from engine.audio.resample import resample
from engine.catalog.db import Catalog
from engine.catalog.vectors import VectorStore
from engine.models.blas import numpy_blas
from engine.models.embedding import EmbeddingSpace

log = logging.getLogger(__name__)


def _prepare_on_workers(space: EmbeddingSpace) -> bool:
    """Whether a space's resampling and ``prepare`` belong on the decode workers: only when
    its model has its own device. On CPU the model needs both cores, and this work on the
    workers measured slower than on the embedding thread: it preempts the model's
    threads (docs/measurements.md)."""
    return str(getattr(space, "device", "cpu")) not in ("cpu", "mps")


def _prepare(item: _Decoded, space: EmbeddingSpace, seconds: dict[str, float]) -> None:
    """Resample ``item``'s audio to the space's rate (once per rate) and run the space's
    ``prepare`` on it, into ``item.inputs``; a failure becomes the file's error. Adds the
    time taken to ``seconds``. Called by a decode worker or the embedding thread."""
    t1 = time.perf_counter()
    clip = item.clips.get(space.sample_rate)
    if clip is None:
        assert item.audio is not None  # callers prepare only decoded items
        try:
            clip = resample(item.audio, item.rate, space.sample_rate)
        except Exception as exc:  # e.g. MemoryError: this file fails, the batch goes on
            log.exception("resampling %s for %s failed", item.path, space.name)
            item.space_errors[space.name] = (
                f"cannot resample from {item.rate} Hz to {space.sample_rate} Hz: {exc!r}"
            )
            return
        item.clips[space.sample_rate] = clip
    t2 = time.perf_counter()
    prepare = getattr(space, "prepare", None)
    try:
        item.inputs[space.name] = prepare(clip) if prepare else clip
    except Exception as exc:
        log.exception("preparing %s for %s failed", item.path, space.name)
        item.space_errors[space.name] = f"{space.name} features failed: {exc}"
    seconds["resample"] = seconds.get("resample", 0.0) + t2 - t1
    seconds["features"] = seconds.get("features", 0.0) + time.perf_counter() - t2


@dataclass
class EmbedProgress:
    files_done: int
    files_total: int
    audio_seconds: float
    elapsed: float

    @property
    def files_per_second(self) -> float:
        return self.files_done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        rate = self.files_per_second
        return (self.files_total - self.files_done) / rate if rate > 0 else None


@dataclass
class EmbedReport:
    files: int = 0
    failed: int = 0
    audio_seconds: float = 0.0
    elapsed: float = 0.0
    cancelled: bool = False
    # Seconds spent per stage. decode runs on the decode workers (summed over them, so
    # it may exceed elapsed), as do resample and features for spaces whose model has its
    # own device (else they run on the embedding thread); model and store run there.
    stage_seconds: dict[str, float] = field(
        default_factory=lambda: {
            "decode": 0.0, "resample": 0.0, "features": 0.0, "model": 0.0, "store": 0.0
        }
    )  # fmt: skip
    errors: list[str] = field(default_factory=list)


@dataclass
class _Decoded:
    file_id: int
    path: str
    audio_seconds: float
    error: str | None  # the file itself could not be read: every space records it
    audio: np.ndarray | None = None  # decoded mono samples, until every space has its input
    rate: int = 0
    # Per space name: the clip at the space's rate, or what its ``prepare`` made of it.
    inputs: dict[str, Any] = field(default_factory=dict)
    clips: dict[int, np.ndarray] = field(default_factory=dict)  # resampled, by rate
    # One space's failure on this file, by space name: the other spaces still embed it.
    space_errors: dict[str, str] = field(default_factory=dict)
    # Worker seconds per stage: decode, resample, features.
    seconds: dict[str, float] = field(default_factory=dict)


class Embedder:
    """Embeds every pending file of the catalog into the given spaces."""

    def __init__(
        self,
        catalog: Catalog,
        spaces: list[EmbeddingSpace],
        *,
        progress: Callable[[EmbedProgress], None] | None = None,
        cancel: threading.Event | None = None,
        pause: threading.Event | None = None,
        workers: int | None = None,
        batch_files: int = 16,
    ) -> None:
        self.catalog = catalog
        self.store = VectorStore(catalog)
        self.spaces = spaces
        self.progress = progress
        self.cancel = cancel or threading.Event()
        # Set = paused: no new files are decoded until it clears (checked between files).
        self.pause = pause or threading.Event()
        self.workers = workers or min(2, os.cpu_count() or 1)
        self.batch_files = batch_files

    def run(self) -> EmbedReport:
        """Embed every pending file; returns what was done. The calling thread is the
        embedding thread (the model and the catalog writes run on it)."""
        # numpy's OpenBLAS parallelises the decoders' downmix and then spins its idle
        # threads for a while after each call, which takes a core from the model: one
        # BLAS thread while embedding (threadpoolctl; process-wide, restored after).
        # (Measured: docs/measurements.md, one BLAS thread while embedding.)
        with numpy_blas().limit(limits=1):
            return self._run()

    def _run(self) -> EmbedReport:
        started = time.monotonic()
        report = EmbedReport()
        space_ids = {
            s.name: self.store.ensure_space(s.name, s.identity(), s.dim) for s in self.spaces
        }
        needs: dict[int, list[EmbeddingSpace]] = {}
        rows: dict[int, dict] = {}
        for space in self.spaces:
            for row in self.store.pending(space_ids[space.name]):
                needs.setdefault(row["id"], []).append(space)
                rows[row["id"]] = row
        todo = sorted(rows)
        total = len(todo)
        batch: list[_Decoded] = []
        done = 0

        def decode(file_id: int) -> _Decoded:
            """Decode, resample and (for spaces that can) make features: a worker's job."""
            path = rows[file_id]["path"]
            t0 = time.perf_counter()
            try:
                audio, rate = decode_mono(path)
            except Exception as exc:  # unreadable now (changed/removed since the scan)
                return _Decoded(file_id, path, 0.0, f"cannot decode: {exc}")
            if len(audio) == 0:
                return _Decoded(file_id, path, 0.0, "no audio frames")
            item = _Decoded(file_id, path, len(audio) / rate, None, audio, rate)
            item.seconds = {"decode": time.perf_counter() - t0, "resample": 0.0, "features": 0.0}
            for space in needs[file_id]:
                if _prepare_on_workers(space):
                    _prepare(item, space, item.seconds)
            return item

        with ThreadPoolExecutor(self.workers, thread_name_prefix="sonarium-decode") as pool:
            pending: list[Future[_Decoded]] = []
            queue = iter(todo)
            while True:
                # Bounded read-ahead: at most two batches decoded but not yet embedded.
                while self.pause.is_set() and not self.cancel.is_set() and not pending:
                    self.cancel.wait(0.05)
                while (
                    len(pending) < self.batch_files * 2
                    and not self.cancel.is_set()
                    and not self.pause.is_set()
                ):
                    file_id = next(queue, None)
                    if file_id is None:
                        break
                    pending.append(pool.submit(decode, file_id))
                if not pending:
                    break
                item = pending.pop(0).result()
                for stage, seconds in item.seconds.items():
                    report.stage_seconds[stage] = report.stage_seconds.get(stage, 0.0) + seconds
                batch.append(item)
                if len(batch) >= self.batch_files or not pending:
                    done += self._embed_batch(batch, needs, space_ids, report)
                    batch = []
                    if self.progress:
                        self.progress(
                            EmbedProgress(done, total, report.audio_seconds,
                                          time.monotonic() - started)
                        )  # fmt: skip
                if self.cancel.is_set():
                    for future in pending:
                        future.cancel()
                    report.cancelled = bool(pending) or done < total
                    break
        report.elapsed = time.monotonic() - started
        return report

    def _embed_batch(
        self,
        batch: list[_Decoded],
        needs: dict[int, list[EmbeddingSpace]],
        space_ids: dict[str, int],
        report: EmbedReport,
    ) -> int:
        for space in self.spaces:
            items = [d for d in batch if space in needs[d.file_id]]
            for d in items:
                if (
                    not d.error
                    and space.name not in d.inputs
                    and space.name not in d.space_errors
                    and d.audio is not None
                ):
                    _prepare(d, space, report.stage_seconds)
            good = [d for d in items if space.name in d.inputs and not d.error]
            inputs = [d.inputs.pop(space.name) for d in good]
            t1 = time.perf_counter()
            try:
                if not inputs:
                    embeddings = []
                elif hasattr(space, "embed_prepared"):
                    embeddings = space.embed_prepared(inputs)
                else:
                    embeddings = space.embed(inputs)
            except Exception as exc:
                log.exception("embedding failed for a batch in %s", space.name)
                embeddings = [None] * len(good)
                for d in good:
                    d.space_errors[space.name] = f"{space.name} model failed: {exc}"
            t2 = time.perf_counter()
            for d, emb in zip(good, embeddings, strict=True):
                if emb is None:
                    continue
                self.store.store(space_ids[space.name], d.file_id, emb.vector, emb.windows)
            for d in items:
                error = d.error or d.space_errors.get(space.name)
                if error:
                    self.store.store_error(space_ids[space.name], d.file_id, error)
            t3 = time.perf_counter()
            report.stage_seconds["model"] += t2 - t1
            report.stage_seconds["store"] += t3 - t2
        for d in batch:
            d.audio, d.clips = None, {}
            error = d.error or "; ".join(d.space_errors.values())
            if error:
                report.failed += 1
                report.errors.append(f"{d.path}: {error}")
            else:
                report.files += 1
                report.audio_seconds += d.audio_seconds
        return len(batch)
