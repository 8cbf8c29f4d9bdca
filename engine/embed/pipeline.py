"""The embedding pipeline: decode workers → batched model → one catalog writer.

One decode of each file feeds every space that still needs it. Decoding runs on a small
pool of threads with a bounded number of files in flight; resampling and
each space's feature extraction (``prepare``) join it there when the space's model has
its own device (GPU), and otherwise run on the calling thread, with the model and the
catalog writes (the catalog's writer): a CPU model needs every core. Vectors are
committed per batch of files, so a kill loses at most one batch and the next run
continues with what is pending.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio
from threadpoolctl import ThreadpoolController

from engine.catalog.db import Catalog
from engine.catalog.vectors import VectorStore
from engine.models.embedding import EmbeddingSpace

log = logging.getLogger(__name__)

# Longer files are embedded from their first MAX_SECONDS only, which bounds memory
# (10 min of 48 kHz mono float32 is 115 MB).
MAX_SECONDS = 600.0


# soundfile subtypes read as integers (numpy dtype, scale to [-1, 1)); others as float32.
_READ_AS = {
    "PCM_16": ("int16", 2.0**-15),
    "PCM_24": ("int32", 2.0**-31),
    "PCM_32": ("int32", 2.0**-31),
}


def decode_mono(
    path: str | Path, start: float | None = None, end: float | None = None,
    max_seconds: float = MAX_SECONDS,
) -> tuple[np.ndarray, int]:  # fmt: skip
    """Mono float32 samples (channel mean) of [start, end) seconds, and the sample rate.

    Reads block by block, so only the mono result is ever held whole. Any thread.
    """
    with sf.SoundFile(str(path)) as f:
        rate = f.samplerate
        first = int(round((start or 0.0) * rate))
        last = f.frames if end is None else min(f.frames, int(round(end * rate)))
        last = min(last, first + int(max_seconds * rate))
        if first > 0:
            f.seek(min(first, f.frames))
        remaining = max(0, last - first)
        # Integer PCM is read as integers and scaled here: libsndfile's own conversion to
        # float is ~9x slower (7.6 ms against 0.8 ms for 30 s of 16-bit stereo) and gives
        # the same floats (it also multiplies by 2^-15 or 2^-31, exactly).
        dtype, scale = _READ_AS.get(f.subtype, ("float32", 1.0))
        # Downmix as a matrix-vector product: numpy's mean(axis=1) over interleaved
        # channels is ~30x slower (28.7 ms against 0.9 ms for 30 s of stereo).
        gains = np.full(f.channels, scale / f.channels, dtype=np.float32)
        parts = []
        while remaining > 0:
            block = f.read(min(remaining, 1 << 18), dtype=dtype, always_2d=True)
            if not len(block):
                break
            if block.shape[1] > 1:
                parts.append(block.astype(np.float32, copy=False) @ gains)
            elif scale != 1.0:
                parts.append(block[:, 0].astype(np.float32) * np.float32(scale))
            else:
                parts.append(block[:, 0].copy())
            remaining -= len(block)
    audio = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    if not np.isfinite(audio).all():  # only float files can hold NaN/inf; one cheap pass
        np.nan_to_num(audio, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
    return audio.astype(np.float32, copy=False), rate


class _SincResampler:
    """torchaudio's band-limited sinc resampler, applied as one matrix product.

    ``torchaudio.transforms.Resample`` convolves the input with its kernel at a stride of
    one input period; oneDNN runs that strided single-channel ``conv1d`` slowly. Cutting
    the padded input into its (overlapping) periods and multiplying them by the same
    kernel is the same arithmetic as one GEMM: 1.1 ms against 3.2 ms for 10 s from 44.1
    to 48 kHz, output within 1e-6 of torchaudio's (tests/test_similar.py).
    Immutable after construction; any thread.
    """

    def __init__(self, rate: int, target: int) -> None:
        reference = torchaudio.transforms.Resample(rate, target, dtype=torch.float32)
        # With few output phases (96 -> 48 kHz has one) the product is a slow strided
        # matrix-vector one, and torchaudio's convolution is faster: keep that.
        self.reference = reference if target // reference.gcd < 8 else None
        self.orig = rate // reference.gcd
        self.new = target // reference.gcd
        self.width = reference.width
        self.kernel_t = reference.kernel.detach()[:, 0].T.contiguous()  # (taps, new)

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        if self.reference is not None:
            return self.reference(audio)
        length = audio.shape[-1]
        padded = torch.nn.functional.pad(audio, (self.width, self.width + self.orig))
        periods = padded.unfold(0, self.kernel_t.shape[0], self.orig)  # (outputs, taps) view
        # The product copies its view: in chunks, that copy stays ~4 MB (not 250 MB for
        # ten minutes of 96 kHz audio).
        rows = max(1, (1 << 20) // self.kernel_t.shape[0])
        out = torch.cat([
            (periods[i : i + rows] @ self.kernel_t).reshape(-1)  # phase-interleaved
            for i in range(0, periods.shape[0], rows)
        ])  # fmt: skip
        return out[: -(-self.new * length // self.orig)]


@functools.lru_cache(maxsize=16)
def _resampler(rate: int, target: int) -> _SincResampler:
    """One resampler per rate pair: its kernel is computed once, not on every call."""
    return _SincResampler(rate, target)


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited resampling with torchaudio's sinc kernel (deterministic). Any thread:
    the cached resamplers only read their kernels."""
    if rate == target or len(audio) == 0:
        return audio
    with torch.inference_mode():
        out = _resampler(rate, target)(torch.from_numpy(np.ascontiguousarray(audio)))
    return out.numpy()


def _numpy_blas() -> ThreadpoolController:
    """The BLAS libraries loaded in this process other than torch's own (a torch build
    may load one, e.g. OpenBLAS on ARM): numpy's. Any thread."""
    controller = ThreadpoolController()
    torch_dir = Path(torch.__file__).resolve().parent
    torch_dirs = (torch_dir, torch_dir.parent / "torch.libs")
    paths = [
        lib.filepath
        for lib in controller.lib_controllers
        if lib.user_api == "blas"
        and not any(Path(lib.filepath).resolve().is_relative_to(d) for d in torch_dirs)
    ]
    return controller.select(filepath=paths)


def _prepare_on_workers(space: EmbeddingSpace) -> bool:
    """Whether a space's resampling and ``prepare`` belong on the decode workers: only when
    its model has its own device. On CPU the model needs both cores, and this work on the
    workers measured slower than on the embedding thread (it preempts the model's
    threads): CLAP 0.79x the bare model against 0.85x (bench/clap_bench.py); with the
    model in lanes, resampling on the workers gave 0.85x the lanes' bare pass against
    0.89x (10 alternating pairs)."""
    return str(getattr(space, "device", "cpu")) not in ("cpu", "mps")


def _prepare(item: _Decoded, space: EmbeddingSpace, seconds: dict[str, float]) -> None:
    """Resample ``item``'s audio to the space's rate (once per rate) and run the space's
    ``prepare`` on it, into ``item.inputs``; a failure becomes the file's error. Adds the
    time taken to ``seconds``. Called by a decode worker or the embedding thread."""
    t1 = time.perf_counter()
    clip = item.clips.get(space.sample_rate)
    if clip is None:
        clip = item.clips[space.sample_rate] = resample(item.audio, item.rate, space.sample_rate)
    t2 = time.perf_counter()
    prepare = getattr(space, "prepare", None)
    try:
        item.inputs[space.name] = prepare(clip) if prepare else clip
    except Exception as exc:
        log.exception("preparing %s for %s failed", item.path, space.name)
        item.error = f"{space.name} features failed: {exc}"
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
    error: str | None
    audio: np.ndarray | None = None  # decoded mono samples, until every space has its input
    rate: int = 0
    # Per space name: the clip at the space's rate, or what its ``prepare`` made of it.
    inputs: dict[str, object] = field(default_factory=dict)
    clips: dict[int, np.ndarray] = field(default_factory=dict)  # resampled, by rate
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
        # Measured on CLAP's pipeline, alternating (8 pairs, bench files): median wall
        # 2.59 s against 3.18 s, and 0.94x against 0.85x the bare model in lanes.
        with _numpy_blas().limit(limits=1):
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
                if not d.error and space.name not in d.inputs and d.audio is not None:
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
                    d.error = f"{space.name} model failed: {exc}"
            t2 = time.perf_counter()
            for d, emb in zip(good, embeddings, strict=True):
                if emb is None:
                    continue
                self.store.store(space_ids[space.name], d.file_id, emb.vector, emb.windows)
            for d in items:
                if d.error:
                    self.store.store_error(space_ids[space.name], d.file_id, d.error)
            t3 = time.perf_counter()
            report.stage_seconds["model"] += t2 - t1
            report.stage_seconds["store"] += t3 - t2
        for d in batch:
            d.audio, d.clips = None, {}
            if d.error:
                report.failed += 1
                report.errors.append(f"{d.path}: {d.error}")
            else:
                report.files += 1
                report.audio_seconds += d.audio_seconds
        return len(batch)
