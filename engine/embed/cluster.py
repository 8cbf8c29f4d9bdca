"""Embedding on a Ray cluster: decoding and the models run in a pool of Ray Data actors
(batch inference, each actor holding every space's model, on CPU or GPU), and the
vectors stream back to this process, the library's one catalog writer.

Imported only when indexing is given a cluster (`--cluster ray[:ADDRESS]`): without one,
nothing of Ray is loaded. The workers read the files themselves, so the library must be
mounted where they run; a path map (`--path-map /Volumes/SFX=/mnt/sfx`) says where, and
every node is checked to read a file of each folder before anything starts.

Each file's vectors are stored as they come back, in their own transaction, so killing
this process loses only the files in flight and the next run embeds what is still
pending; storing replaces a file's vectors, so nothing is ever stored twice. Ray retries
the batches of a worker that dies; a run Ray gives up on is resumed here, from the
catalog's pending files. Runs on the thread that owns the catalog.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.catalog.db import Catalog
from engine.catalog.vectors import VectorStore, to_blob
from engine.embed.pipeline import EmbedProgress, EmbedReport, _Decoded, _prepare
from engine.errors import ClusterUnusable, LibraryError

log = logging.getLogger(__name__)

# Files per batch an actor embeds at once, and per round the driver hands Ray (a round's
# files are what a crash of Ray itself can cost before the run resumes from the catalog).
BATCH_FILES = 16
ROUND_FILES = 4096
# Times a round is started again after Ray gave up on it (a node lost for good).
ROUND_ATTEMPTS = 3


def parse_cluster(spec: str) -> str | None:
    """The Ray address of `--cluster ray[:ADDRESS]` (None: start or join a local Ray)."""
    kind, _, address = spec.partition(":")
    if kind != "ray":
        raise LibraryError(f"unknown cluster '{spec}': use ray or ray:ADDRESS (e.g. ray:auto)")
    return address or None


@dataclass(frozen=True)
class PathMap:
    """Where the library's folders are for the cluster's workers: (here, there) prefixes."""

    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, specs: list[str] | tuple[str, ...]) -> PathMap:
        pairs = []
        for spec in specs:
            here, sep, there = spec.partition("=")
            if not sep or not here or not there:
                raise LibraryError(
                    f"a path map is LOCAL=WORKER (e.g. /Volumes/SFX=/mnt/sfx), not '{spec}'"
                )
            pairs.append((here.rstrip("/") or "/", there.rstrip("/") or "/"))
        # Longest first: /Volumes/SFX/Foley maps before /Volumes/SFX.
        return cls(tuple(sorted(pairs, key=lambda p: -len(p[0]))))

    def to_worker(self, path: str) -> str:
        for here, there in self.pairs:
            if path == here or path.startswith(here.rstrip("/") + "/"):
                return there + path[len(here) :] if here != "/" else there + path
        return path


def _readable(paths: list[str]) -> list[str]:
    """Of `paths`, those this process cannot open for reading (runs on a cluster node)."""
    bad = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError:
            bad.append(path)
    return bad


def check_paths(ray: Any, samples: list[str]) -> None:
    """ClusterUnusable unless every alive node of the cluster can read every sample."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0)(_readable)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    answers = [
        (node, probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            node["NodeID"], soft=False)).remote(samples))
        for node in nodes
    ]  # fmt: skip
    for node, answer in answers:
        bad = ray.get(answer, timeout=120)
        if bad:
            raise ClusterUnusable(
                f"the cluster's node {node.get('NodeManagerAddress', '?')} cannot read "
                f"{bad[0]}{f' (and {len(bad) - 1} more)' if len(bad) > 1 else ''}: mount "
                "the library on every node, or say where it is there with --path-map "
                "LOCAL=WORKER (e.g. --path-map /Volumes/SFX=/mnt/sfx)"
            )


class EmbedActor:
    """One Ray Data actor: every space's model, embedding batches of files. Runs in a
    Ray worker process; its batches arrive one at a time."""

    def __init__(self, space_names: list[str], device: str) -> None:
        from engine.models.blas import numpy_blas
        from engine.models.spaces import make_space

        numpy_blas().limit(limits=1)  # the model uses the actor's cores, not numpy
        self.spaces = [make_space(name, device) for name in space_names]
        self.identities = {space.name: space.identity() for space in self.spaces}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from engine.audio.decode import decode_mono

        items: list[_Decoded] = []
        for file_id, path in zip(batch["file_id"], batch["path"], strict=True):
            try:
                audio, rate = decode_mono(str(path))
            except Exception as exc:  # unreadable there (changed, removed, not mounted)
                items.append(_Decoded(int(file_id), str(path), 0.0, f"cannot decode: {exc}"))
                continue
            if len(audio) == 0:
                items.append(_Decoded(int(file_id), str(path), 0.0, "no audio frames"))
                continue
            items.append(_Decoded(int(file_id), str(path), len(audio) / rate, None, audio, rate))
        wanted = [set(str(s).split(",")) for s in batch["spaces"]]
        out: dict[str, list[Any]] = {
            "file_id": [d.file_id for d in items],
            "audio_seconds": [d.audio_seconds for d in items],
            "error": [d.error or "" for d in items],
            "spaces": [str(s) for s in batch["spaces"]],
        }
        for space in self.spaces:
            seconds: dict[str, float] = {}
            good = []
            for d, names in zip(items, wanted, strict=True):
                if space.name in names and d.error is None:
                    _prepare(d, space, seconds)
                    if space.name in d.inputs:
                        good.append(d)
            vectors: dict[int, Any] = {}
            if good:
                inputs = [d.inputs.pop(space.name) for d in good]
                try:
                    embed = getattr(space, "embed_prepared", None) or space.embed
                    vectors = dict(zip((d.file_id for d in good), embed(inputs), strict=True))
                except Exception as exc:
                    for d in good:
                        d.space_errors[space.name] = f"{space.name} model failed: {exc}"
            out[f"{space.name}:identity"] = [self.identities[space.name]] * len(items)
            out[f"{space.name}:vector"], out[f"{space.name}:windows"] = [], []
            out[f"{space.name}:error"] = []
            for d in items:
                emb = vectors.get(d.file_id)
                out[f"{space.name}:error"].append(d.space_errors.get(space.name, ""))
                out[f"{space.name}:vector"].append(b"" if emb is None else to_blob(emb.vector))
                out[f"{space.name}:windows"].append(b"" if emb is None else _windows_blob(emb))
        return {key: np.array(values, dtype=object) for key, values in out.items()}


def _windows_blob(embedding: Any) -> bytes:
    """A file's windows as bytes: count, then (start, end) float64 pairs, then float16 rows."""
    windows = embedding.windows
    if not windows:
        return b""
    times = np.array([(s, e) for s, e, _ in windows], dtype=np.float64)
    rows = np.stack([np.asarray(v, dtype=np.float32) for _, _, v in windows])
    head = np.array([len(windows), rows.shape[1]], dtype=np.int64)
    return head.tobytes() + times.tobytes() + rows.astype(np.float16).tobytes()


def windows_from_blob(blob: bytes) -> list[tuple[float, float, np.ndarray]]:
    """The windows _windows_blob wrote; ValueError for bytes that are not such a blob."""
    if not blob:
        return []
    count, dim = (int(v) for v in np.frombuffer(blob[:16], dtype=np.int64))
    if count <= 0 or dim <= 0 or len(blob) != 16 + count * 16 + count * dim * 2:
        raise ValueError("window vectors from a worker are damaged")
    times = np.frombuffer(blob[16 : 16 + count * 16], dtype=np.float64).reshape(count, 2)
    rows = np.frombuffer(blob[16 + count * 16 :], dtype=np.float16).reshape(count, dim)
    return [(float(s), float(e), rows[i].astype(np.float32)) for i, (s, e) in enumerate(times)]


class ClusterEmbedder:
    """Embeds every pending file of the catalog on a Ray cluster (see the module doc)."""

    def __init__(
        self,
        catalog: Catalog,
        spaces: list[Any],
        *,
        address: str | None = None,
        path_map: PathMap | None = None,
        device: str = "auto",
        progress: Callable[[EmbedProgress], None] | None = None,
        cancel: threading.Event | None = None,
        workers: int | None = None,
        cpus_per_worker: float = 1.0,
        gpus_per_worker: float = 0.0,
    ) -> None:
        """`spaces` are built here only for their names, identities and sizes (no model
        is loaded); the actors build their own and must agree. `workers`: actors in the
        pool (default: the cluster's CPUs over cpus_per_worker)."""
        self.catalog = catalog
        self.store = VectorStore(catalog)
        self.spaces = spaces
        self.address = address
        self.path_map = path_map or PathMap()
        self.device = device
        self.progress = progress
        self.cancel = cancel or threading.Event()
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker

    def _pending(self, space_ids: dict[str, int]) -> dict[int, tuple[str, list[str]]]:
        """file id -> (path, the spaces it still needs)."""
        todo: dict[int, tuple[str, list[str]]] = {}
        for space in self.spaces:
            for row in self.store.pending(space_ids[space.name]):
                todo.setdefault(row["id"], (row["path"], []))[1].append(space.name)
        return todo

    def run(self) -> EmbedReport:
        import ray

        started = time.monotonic()
        report = EmbedReport()
        identities = {s.name: s.identity() for s in self.spaces}  # aisfx's hashes its file
        space_ids = {
            s.name: self.store.ensure_space(s.name, identities[s.name], s.dim) for s in self.spaces
        }
        todo = self._pending(space_ids)
        total = len(todo)
        if not todo:
            report.elapsed = time.monotonic() - started
            return report
        ours = not ray.is_initialized()
        if ours:
            ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False,
                     configure_logging=False)  # fmt: skip
        try:
            check_paths(ray, self._samples(todo))
            done = 0
            attempts = 0
            while todo and not self.cancel.is_set():
                try:
                    for rows in self._rounds(ray, todo):
                        done += self._store(rows, space_ids, identities, report)
                        if self.progress:
                            self.progress(EmbedProgress(done, total, report.audio_seconds,
                                                        time.monotonic() - started))  # fmt: skip
                        if self.cancel.is_set():
                            break
                    attempts = 0
                except ray.exceptions.RayError as exc:
                    attempts += 1
                    if attempts >= ROUND_ATTEMPTS:
                        message = f"the cluster failed {attempts} times: {exc}"
                        raise ClusterUnusable(message) from exc
                    log.warning("the cluster lost work (%s); going on with what is pending", exc)
                todo = self._pending(space_ids)
            report.cancelled = self.cancel.is_set() and bool(todo)
        finally:
            if ours:
                ray.shutdown()
        report.elapsed = time.monotonic() - started
        return report

    def _samples(self, todo: dict[int, tuple[str, list[str]]]) -> list[str]:
        """A file of each folder root the pending files are under, as the workers see it."""
        roots = [r["path"] for r in self.catalog.roots()]
        samples: dict[str, str] = {}
        for path, _ in todo.values():
            inside = (r for r in roots if path.startswith(r.rstrip("/") + "/"))
            root = next(inside, os.path.dirname(path))
            samples.setdefault(root, self.path_map.to_worker(path))
        return list(samples.values())

    def _rounds(self, ray: Any, todo: dict[int, tuple[str, list[str]]]) -> Iterator[dict]:
        """Batches of results, streamed, for every file of `todo`, ROUND_FILES at a time."""
        ids = sorted(todo)
        context = ray.data.DataContext.get_current()
        # Progress is reported like a local run's (EmbedProgress), not by Ray's own bars.
        context.enable_progress_bars = False
        context.enable_operator_progress_bars = False
        for name in ("ray.data", "ray"):
            logging.getLogger(name).setLevel(logging.WARNING)
        cpus = ray.cluster_resources().get("CPU", 1.0)
        workers = self.workers or max(1, int(cpus // max(self.cpus_per_worker, 0.01)))
        for first in range(0, len(ids), ROUND_FILES):
            part = ids[first : first + ROUND_FILES]
            items = [
                {"file_id": i, "path": self.path_map.to_worker(todo[i][0]),
                 "spaces": ",".join(todo[i][1])}
                for i in part
            ]  # fmt: skip
            data = ray.data.from_items(items, override_num_blocks=max(1, len(part) // BATCH_FILES))
            embedded = data.map_batches(
                EmbedActor,
                fn_constructor_kwargs={"space_names": [s.name for s in self.spaces],
                                       "device": self.device},
                batch_size=BATCH_FILES, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(
                    size=min(workers, max(1, len(part) // BATCH_FILES))
                ),
                # Ray Data restarts a lost actor and retries its batches by default.
                num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker or None,
            )  # fmt: skip
            yield from embedded.iter_batches(batch_size=BATCH_FILES, batch_format="numpy")
            if self.cancel.is_set():
                return

    def _store(
        self,
        rows: dict[str, np.ndarray],
        space_ids: dict[str, int],
        identities: dict[str, str],
        report: EmbedReport,
    ) -> int:
        """Store one batch of results (each file in its own transaction); files done."""
        from engine.catalog.vectors import from_blob

        for i, file_id in enumerate(int(f) for f in rows["file_id"]):
            failed = []
            file_error = str(rows["error"][i])
            needed = str(rows["spaces"][i]).split(",")
            for space in self.spaces:
                name = space.name
                if name not in needed:
                    continue
                error = file_error or str(rows[f"{name}:error"][i])
                blob = rows[f"{name}:vector"][i]
                if not error and str(rows[f"{name}:identity"][i]) != identities[name]:
                    # Never mix vector spaces: a worker with another model is refused.
                    raise ClusterUnusable(
                        f"the cluster's {name} model is not this machine's "
                        f"({rows[f'{name}:identity'][i]} there, {identities[name]} here): "
                        "install the same Sonarium on every node"
                    )
                if not error and not blob:
                    error = f"{name}: the worker returned no vectors"
                if error:
                    self.store.store_error(space_ids[name], file_id, error)
                    failed.append(error)
                    continue
                windows = windows_from_blob(bytes(rows[f"{name}:windows"][i]))
                self.store.store(space_ids[name], file_id, from_blob(bytes(blob)), windows)
            if failed:
                report.failed += 1
                report.errors.append(f"{file_id}: {'; '.join(failed)}")
            else:
                report.files += 1
                report.audio_seconds += float(rows["audio_seconds"][i])
        return len(rows["file_id"])
