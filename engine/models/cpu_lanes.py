"""Model lanes on CPU: several threads that each run torch with a share of the cores.

A CPU model forward of small batches parallelises poorly across cores: every operator is
an OpenMP region whose threads meet at a barrier, and when anything else runs (decoding,
resampling, the writer) one of them is preempted and the others wait for it. Two forwards
side by side on one thread each keep both cores busy without barriers, and leave the
scheduler free to slot the other work in between (measured in docs/measurements.md,
model lanes).

torch's intra-op thread count is per thread (OpenMP's), but ``torch.set_num_threads``
also sets the default that each thread copies on its first torch call; the constructor
restores that default, so only the lanes run with their share.

numpy's own BLAS is the other pool of threads here (engine/models/blas.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


def lane_count(device: str) -> int:
    """How many lanes a model on ``device`` should use: two on a CPU with at least two
    cores, else one (a GPU runs one stream of batches; lanes there would only contend)."""
    if str(device) != "cpu":
        return 1
    return 2 if (os.cpu_count() or 1) >= 2 and torch.get_num_threads() >= 2 else 1


class CpuLanes:
    """``lanes`` threads with ``torch.get_num_threads() // lanes`` intra-op threads each.

    The lanes run what :meth:`map` gives them and nothing else; calls from two threads
    (any threads) share them. :meth:`close` stops them.
    """

    def __init__(self, lanes: int) -> None:
        total = torch.get_num_threads()
        self.lanes = max(1, lanes)
        self.threads_each = max(1, total // self.lanes)
        ready = threading.Barrier(self.lanes + 1)

        def start() -> None:
            # A thread's first torch call copies the default into it: make that happen
            # first, so the default restored below can't later replace this lane's share.
            torch.get_num_threads()
            torch.set_num_threads(self.threads_each)
            ready.wait(timeout=60)

        self._pool = ThreadPoolExecutor(self.lanes, thread_name_prefix="sonarium-lane")
        try:
            # Each of these blocks until all have started, so each runs on its own thread.
            started = [self._pool.submit(start) for _ in range(self.lanes)]
            ready.wait(timeout=60)
            for future in started:
                future.result()
        finally:
            # Restore the default for threads created from now on (and this thread's own).
            torch.set_num_threads(total)

    def map(self, fn: Callable[[T], R], parts: Sequence[T]) -> list[R]:
        """``[fn(part) for part in parts]``, the parts run on the lanes side by side."""
        return list(self._pool.map(fn, parts))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def split_even(items: Sequence[T], parts: int) -> list[Sequence[T]]:
    """``items`` cut into ``parts`` contiguous runs whose lengths differ by at most one
    (fewer runs when there are fewer items); in order."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return out


class InLanes:
    """Mixin for spaces whose model runs its batches in CPU lanes."""

    device: str
    _lanes: CpuLanes | None = None
    _lanes_lock = threading.Lock()

    batch_size: int

    def _model_lanes(self) -> CpuLanes | None:
        """The lanes, made on first use; None on a GPU or a 1-core CPU. Any thread."""
        with self._lanes_lock:
            if self._lanes is None and lane_count(self.device) > 1:
                self._lanes = CpuLanes(lane_count(self.device))
            return self._lanes

    def _in_lanes(self, fn: Callable[[Sequence[T]], R], items: Sequence[T]) -> list[R]:
        """``fn`` over an even share of ``items`` per lane, side by side; over all of them
        on this thread when there are no lanes or at most one batch. Results in order."""
        lanes = self._model_lanes()
        if lanes is None or len(items) <= self.batch_size:
            return [fn(items)]
        return lanes.map(fn, split_even(items, lanes.lanes))
