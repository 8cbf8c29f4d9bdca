"""Text search over an audio-only space, learned from the library's own captions.

aisfx has no text tower, but a real library is half well named: its captions (see
engine/adapt/captions.py) are weak descriptions of their audio. An adapter joins the frozen
sentence encoder (engine/models/text_encoder.py) to the frozen audio space with what those
pairs teach, three ways whose scores are summed (each z-scored over a fixed sample of
the library, so they add on one scale):

- nearest-caption expansion: the query's nearest captions (cosine ** POWER weights)
  average their files' standardised audio into a query vector (the "centroid"), ranked
  through the space's FAISS index;
- a kernel over those same neighbours: a file scores by how close it is to *any* of
  them (log-sum-exp), which keeps tight clusters (one drum kit's snares) from being
  blurred by the average;
- contrastive heads: linear projections of text and audio into a shared space trained
  with a soft-label contrastive loss whose targets come from caption-caption similarity
  (files with similar names are not negatives), optionally weighted per pair by
  cross-modal consistency (reliability).

Which parts are on, and their weights, were chosen by `sonarium eval
--hide-names` on the shared corpus (numbers in README). Training is seeded and
deterministic; the adapter is derived data saved beside the catalog with both encoders'
identities and is never applied to vectors of another audio model.

Threads: `train_adapter` and `AdaptedTextSpace` run on the thread that owns the catalog.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from engine.adapt.captions import (
    FileText,
    build_captions,
    catalog_file_texts,
    knowledge_words,
    useful_words,
)
from engine.catalog.db import Catalog
from engine.catalog.vectors import VectorStore, normalise
from engine.errors import AdapterInvalid, Cancelled, ModelUnavailable, NothingToLearn
from engine.scan.ucs import UcsTable

ADAPTER_VERSION = "adapter-v1"
# Reference sample for z-scoring the parts (fixed: same seed, same library -> same rows).
REFERENCE_FILES = 1000
# Weight of a query's UCS knowledge words against the query itself (engine/adapt/captions.py).
KNOWLEDGE_WEIGHT = 0.5
# FAISS candidates per neighbour for the kernel part, from the heaviest neighbours.
NEIGHBOUR_CANDIDATES = 50
NEIGHBOUR_SEARCHES = 5


@dataclass(frozen=True)
class AdaptOptions:
    """How an adapter is trained and used. Defaults are the best measured combination."""

    neighbours: int = 20
    power: float = 3.0
    kernel_weight: float = 1.0
    kernel_tau: float = 0.1
    heads: bool = True
    heads_weight: float = 0.5
    soft_labels: bool = True
    reliability: bool = False
    knowledge: bool = True
    dim: int = 256
    steps: int = 300
    batch: int = 2048
    tau: float = 0.05
    label_tau: float = 0.05
    lr: float = 2e-3
    seed: int = 0
    min_pairs: int = 20

    def replace(self, **changes: Any) -> AdaptOptions:
        return AdaptOptions(**(asdict(self) | changes))


@dataclass
class AdaptProgress:
    stage: str  # "captions", "encoding", "training"
    done: int
    total: int

    # The names progress bars read from scan and embed snapshots.
    @property
    def files_done(self) -> int:
        return self.done

    @property
    def files_total(self) -> int:
        return self.total


@dataclass
class Adapter:
    """A trained adapter: captions, their text vectors, the heads and both identities."""

    text_identity: str
    audio_space: str
    audio_identity: str
    audio_generation: int
    options: AdaptOptions
    file_ids: np.ndarray  # (n,) int64: the captioned files it learned from
    captions: list[str]
    text_vectors: np.ndarray  # (n, 384) float32, L2-normalised
    # (n, dim) float16: the captioned files' standardised audio. Kept here, not looked up
    # by id, so an adapter also works on another library (--adapter).
    audio_vectors: np.ndarray
    weights: np.ndarray  # (n,) float32: per-pair reliability (ones when off)
    mean: np.ndarray  # audio standardisation over the library
    std: np.ndarray
    heads: dict[str, np.ndarray] | None = None  # wt, bt, wa, ba
    stats: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Write atomically (a crash leaves the old adapter or none, never half of one)."""
        meta = {
            "version": ADAPTER_VERSION, "text_identity": self.text_identity,
            "audio_space": self.audio_space, "audio_identity": self.audio_identity,
            "audio_generation": self.audio_generation, "options": asdict(self.options),
            "stats": self.stats,
        }  # fmt: skip
        arrays: dict[str, Any] = {
            "meta": np.array(json.dumps(meta)), "file_ids": self.file_ids,
            "captions": np.array(self.captions, dtype=str),
            "text_vectors": self.text_vectors.astype(np.float16),
            "weights": self.weights, "mean": self.mean, "std": self.std,
            "audio_vectors": self.audio_vectors.astype(np.float16),
        }  # fmt: skip
        for key, value in (self.heads or {}).items():
            arrays["head_" + key] = value
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Adapter:
        """Read an adapter file (numpy arrays only, never pickles); ValueError if unusable."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("version") != ADAPTER_VERSION:
                    raise AdapterInvalid(f"made by another version ({meta.get('version')!r})")
                known = {f.name for f in fields(AdaptOptions)}
                options = AdaptOptions(**{k: v for k, v in meta["options"].items() if k in known})
                heads = {k[5:]: data[k] for k in data.files if k.startswith("head_")} or None
                return cls(
                    text_identity=meta["text_identity"], audio_space=meta["audio_space"],
                    audio_identity=meta["audio_identity"],
                    audio_generation=int(meta["audio_generation"]), options=options,
                    file_ids=data["file_ids"].astype(np.int64),
                    captions=[str(c) for c in data["captions"]],
                    text_vectors=data["text_vectors"].astype(np.float32),
                    audio_vectors=data["audio_vectors"].astype(np.float16),
                    weights=data["weights"].astype(np.float32), mean=data["mean"],
                    std=data["std"], heads=heads, stats=meta.get("stats", {}),
                )  # fmt: skip
        except (OSError, KeyError, ValueError, TypeError) as exc:
            # numpy says ValueError for pickled content, which is never loaded.
            raise AdapterInvalid(f"{path}: not a Sonarium adapter ({exc})") from exc

    def vocabulary(self) -> set[str]:
        return {w for caption in self.captions for w in useful_words(caption)}


def adapter_path(library_dir: Path, audio_space: str = "aisfx") -> Path:
    return library_dir / f"{audio_space}.adapter.npz"


def sources_stamp(texts: list[FileText]) -> str:
    """A hash of everything captions are made from (names, folders, tags, descriptions)."""
    import hashlib

    digest = hashlib.sha1()
    for f in texts:
        digest.update(repr(f).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


def read_meta(path: Path) -> dict[str, Any] | None:
    """An adapter file's identities and stamps without its arrays (None if unreadable)."""
    try:
        with np.load(path, allow_pickle=False) as data:  # members load lazily
            return json.loads(str(data["meta"]))
    except (OSError, KeyError, ValueError):
        return None


def is_stale(meta: dict[str, Any] | None, catalog: Catalog) -> bool:
    """True when the library changed since the adapter with this `read_meta` was trained
    (or there is none)."""
    if meta is None or meta.get("version") != ADAPTER_VERSION:
        return True
    store = VectorStore(catalog)
    space = store.space(meta["audio_space"])
    if space is None:
        return False  # nothing to learn from
    return (
        space["identity"] != meta["audio_identity"]
        or store.generation(space["id"]) != meta["audio_generation"]
        or meta.get("stats", {}).get("sources") != sources_stamp(catalog_file_texts(catalog))
    )


# -- training ------------------------------------------------------------------------------


def reliability_weights(text: np.ndarray, audio: np.ndarray, k: int = 10) -> np.ndarray:
    """Per-pair weight from cross-modal consistency, in [0.3, 1.5].

    A pair whose caption's nearest captions belong to files that also *sound* like it is
    consistent; one whose caption neighbours sound unlike it is probably mislabelled. A
    caption with no close neighbours has no evidence either way and keeps weight 1.
    """
    import faiss

    n = len(text)
    k = min(k, n - 1)
    if k < 1:
        return np.ones(n, dtype=np.float32)
    index = faiss.IndexFlatIP(text.shape[1])
    index.add(np.ascontiguousarray(text, dtype=np.float32))
    sims, nbrs = index.search(np.ascontiguousarray(text, dtype=np.float32), k + 1)
    sims, nbrs = sims[:, 1:], nbrs[:, 1:]
    strength = np.clip(sims - 0.5, 0, None) ** 2
    evidence = strength.sum(1)
    audio_sims = np.einsum("nd,nkd->nk", audio, audio[nbrs])
    # Baseline: how close the file sounds to the library in general (a sample of it).
    rng = np.random.default_rng(0)
    sample = audio[rng.choice(n, size=min(n, 500), replace=False)]
    baseline = (audio @ sample.T).mean(1)
    agree = (strength * audio_sims).sum(1) / np.maximum(evidence, 1e-9) - baseline
    has = evidence > 0.05
    if has.sum() < 2:
        return np.ones(n, dtype=np.float32)
    z = (agree - np.median(agree[has])) / (agree[has].std() + 1e-9)
    confidence = evidence / (evidence + 0.1)
    return np.clip(1 + confidence * 0.3 * z, 0.3, 1.5).astype(np.float32)


def train_heads(
    text: np.ndarray,
    audio: np.ndarray,
    weights: np.ndarray,
    options: AdaptOptions,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> tuple[dict[str, np.ndarray], float]:
    """Linear text and audio heads trained with a (soft-label) contrastive loss.

    Targets: softmax of caption-caption cosine / label_tau within the batch (soft), or
    the identity (plain InfoNCE). Minibatches of `batch` pairs drawn with a seeded
    generator; everything runs on CPU in float32, so the same inputs give the same heads.
    """
    import torch
    from torch.nn import functional

    generator = torch.Generator().manual_seed(options.seed)
    t_all = torch.from_numpy(np.ascontiguousarray(text, dtype=np.float32))
    a_all = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    w_all = torch.from_numpy(np.ascontiguousarray(weights, dtype=np.float32))
    n = len(t_all)

    def init(rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        bound = 1.0 / rows**0.5
        w = (torch.rand(rows, options.dim, generator=generator) * 2 - 1) * bound
        b = (torch.rand(options.dim, generator=generator) * 2 - 1) * bound
        return w.requires_grad_(), b.requires_grad_()

    wt, bt = init(t_all.shape[1])
    wa, ba = init(a_all.shape[1])
    params = [wt, bt, wa, ba]
    opt = torch.optim.Adam(params, lr=options.lr, weight_decay=1e-4)
    loss_value = float("nan")
    with torch.enable_grad():
        for step in range(options.steps):
            if cancel is not None and cancel():
                break
            if n > options.batch:
                rows = torch.randperm(n, generator=generator)[: options.batch]
                t, a, w = t_all[rows], a_all[rows], w_all[rows]
            else:
                t, a, w = t_all, a_all, w_all
            g = functional.normalize(t @ wt + bt, dim=1)
            f = functional.normalize(a @ wa + ba, dim=1)
            logits = g @ f.T / options.tau
            if options.soft_labels:
                target = torch.softmax((t @ t.T) / options.label_tau, dim=1)
            else:
                target = torch.eye(len(t))
            per_pair = -(target * functional.log_softmax(logits, 1)).sum(1)
            per_pair = per_pair - (target.T * functional.log_softmax(logits.T, 1)).sum(1)
            loss = (per_pair * w).sum() / w.sum() / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_value = float(loss.detach())
            if progress is not None:
                progress(step + 1, options.steps)
    names = ("wt", "bt", "wa", "ba")
    heads = {k: v.detach().numpy().copy() for k, v in zip(names, params, strict=True)}
    return heads, loss_value


def train_adapter(
    catalog: Catalog,
    audio_space: str = "aisfx",
    options: AdaptOptions | None = None,
    *,
    ucs: UcsTable | None = None,
    hidden: set[int] | None = None,
    previous: Adapter | None = None,
    progress: Callable[[AdaptProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    encoder: Any = None,
) -> Adapter:
    """Learn an adapter from the catalog's captions and the space's stored vectors.

    `hidden` files give no caption (the eval's --hide-names protocol). Caption vectors of
    `previous` are reused when the encoder is the same, so retraining after library
    changes encodes only new captions. Raises NothingToLearn when the space has no
    vectors or too few files are described to learn from, Cancelled when cancelled.
    """
    from engine.models.text_encoder import encoder_identity, shared_encoder

    options = options or AdaptOptions()
    began = time.perf_counter()
    store = VectorStore(catalog)
    space = store.space(audio_space)
    if space is None or store.embedded_count(space["id"]) == 0:
        raise NothingToLearn(
            f"no sounds are embedded in the '{audio_space}' space yet: scan the library first"
        )
    generation = store.generation(space["id"])
    ids, vectors = store.all_file_vectors(space["id"])
    mean, std = vectors.mean(axis=0), vectors.std(axis=0) + 1e-6
    if progress:
        progress(AdaptProgress("captions", 0, 1))
    file_texts = catalog_file_texts(catalog, hidden)
    captions = build_captions(file_texts, ucs, options.knowledge)
    row_of = {int(fid): i for i, fid in enumerate(ids)}
    pairs = [(fid, text) for fid, text in captions.items() if fid in row_of]
    if len(pairs) < options.min_pairs:
        raise NothingToLearn(
            f"only {len(pairs)} files are described by their names, descriptions or tags; "
            f"text search over sound needs at least {options.min_pairs}"
        )
    file_ids = np.array([fid for fid, _ in pairs], dtype=np.int64)
    texts = [text for _, text in pairs]
    text_identity = encoder_identity()
    known: dict[str, np.ndarray] = {}
    if previous is not None and previous.text_identity == text_identity:
        known = dict(zip(previous.captions, previous.text_vectors, strict=True))
    todo = sorted({t for t in texts if t not in known})
    encoder = encoder or shared_encoder()
    chunk = 256
    for start in range(0, len(todo), chunk):
        if cancel is not None and cancel():
            raise Cancelled("learning text search was cancelled")
        part = todo[start : start + chunk]
        known.update(zip(part, encoder.encode(part), strict=True))
        if progress:
            progress(AdaptProgress("encoding", min(start + chunk, len(todo)), len(todo)))
    text_vectors = np.stack([known[t] for t in texts]).astype(np.float32)
    audio = normalise((vectors[[row_of[int(f)] for f in file_ids]] - mean) / std)
    weights = (
        reliability_weights(text_vectors, audio)
        if options.reliability
        else np.ones(len(texts), dtype=np.float32)
    )
    heads, loss = None, None
    if options.heads:

        def step(done: int, total: int) -> None:
            if progress:
                progress(AdaptProgress("training", done, total))

        heads, loss = train_heads(text_vectors, audio, weights, options, step, cancel)
        if cancel is not None and cancel():
            raise Cancelled("learning text search was cancelled")
    stats = {
        "pairs": len(pairs), "files": len(ids), "encoded": len(todo),
        "sources": sources_stamp(file_texts),
        "seconds": round(time.perf_counter() - began, 2), "loss": loss,
    }  # fmt: skip
    return Adapter(
        text_identity=text_identity, audio_space=audio_space, audio_identity=space["identity"],
        audio_generation=generation, options=options, file_ids=file_ids, captions=texts,
        text_vectors=text_vectors, audio_vectors=audio.astype(np.float16), weights=weights,
        mean=mean.astype(np.float32), std=std.astype(np.float32), heads=heads, stats=stats,
    )  # fmt: skip


# -- querying ------------------------------------------------------------------------------


# A text query's parts: centroid, neighbours' audio vectors, their weights, head query.
_QueryParts = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]


class AdaptedTextSpace:
    """Text queries answered through an adapter, over one audio space's stored vectors.

    `rank(text, k)` gives the best files with their combined score; `embed_text` gives
    the query's centroid in the space's standardised coordinates (used for moments).
    Runs on the thread that owns the catalog.
    """

    query_is_standardized = True

    def __init__(
        self,
        catalog: Catalog,
        index: Any,
        adapter: Adapter,
        ucs: UcsTable | None = None,
        encoder: Any = None,
    ) -> None:
        from engine.models.text_encoder import encoder_identity

        self.catalog = catalog
        self.index = index  # engine.search.similar.SimilarIndex
        self.adapter = adapter
        self.name = adapter.audio_space
        self.ucs = ucs if adapter.options.knowledge else None
        self._encoder = encoder
        self._vocabulary = adapter.vocabulary()
        self._store = VectorStore(catalog)
        space = self._store.space(self.name)
        if space is None:
            raise ModelUnavailable(f"no '{self.name}' vectors in this library")
        if space["identity"] != adapter.audio_identity:
            raise ModelUnavailable(
                "the adapter was trained on vectors of another audio model "
                f"({adapter.audio_identity}); learn text search again"
            )
        if adapter.text_identity != encoder_identity():
            raise ModelUnavailable("the adapter was trained with another text encoder")
        self.space_id = space["id"]
        self._cache: dict[str, _QueryParts] = {}
        self._reference: tuple[int, np.ndarray] | None = None

    # Query embedding (cached: typing the same words again costs nothing).
    def _query(self, text: str) -> _QueryParts:
        """(centroid, neighbour audio (k, d), neighbour weights (k,)) of a text query."""
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        from engine.models.text_encoder import shared_encoder

        encoder = self._encoder or shared_encoder()
        q = encoder.encode([text])[0]
        knows = getattr(encoder, "knows_word", None)
        extra = knowledge_words(text, self.ucs, self._vocabulary, knows)
        if extra:
            # Blended, not appended to the text: the query's own meaning stays first
            # (appending measured worse: it pulled "laughter" towards crowds).
            q = normalise((q + KNOWLEDGE_WEIGHT * encoder.encode([extra])[0]).reshape(1, -1))[0]
        a = self.adapter
        sims = a.text_vectors @ q
        k = min(a.options.neighbours, len(sims))
        top = np.argsort(-sims, kind="stable")[:k]
        w = np.clip(sims[top], 0, None) ** a.options.power * a.weights[top]
        if not np.any(w > 0):
            w = np.zeros(k, dtype=np.float32)
            w[0] = 1.0
        neighbours = a.audio_vectors[top].astype(np.float32)
        w = w.astype(np.float32)
        centroid = normalise((w[:, None] * neighbours).sum(0).reshape(1, -1))[0]
        head_query = None
        if a.heads is not None:
            head_query = normalise((q @ a.heads["wt"] + a.heads["bt"]).reshape(1, -1))[0]
        entry = (centroid, neighbours, w, head_query)
        if len(self._cache) > 512:
            self._cache.clear()
        self._cache[text] = entry
        return entry

    def _vectors(self, file_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._store.file_vectors(self.space_id, [int(f) for f in file_ids])

    def _standardise(self, raw: np.ndarray) -> np.ndarray:
        if len(raw) == 0:
            return np.zeros((0, len(self.adapter.mean)), dtype=np.float32)
        return normalise((raw - self.adapter.mean) / self.adapter.std)

    def _parts(self, audio: np.ndarray, query: tuple) -> list[tuple[float, np.ndarray]]:
        """(weight, scores of `audio`) of each part that is switched on."""
        centroid, neighbours, w, head_query = query
        o = self.adapter.options
        parts = [(1.0, audio @ centroid)]
        if o.kernel_weight and len(neighbours):
            sims = audio @ neighbours.T
            kernel = np.log((np.exp((sims - 1) / o.kernel_tau) * w).sum(1) + 1e-30)
            parts.append((o.kernel_weight, kernel))
        if o.heads and head_query is not None and self.adapter.heads is not None:
            h = self.adapter.heads
            parts.append((o.heads_weight, normalise(audio @ h["wa"] + h["ba"]) @ head_query))
        return parts

    def _reference_audio(self) -> np.ndarray:
        """A fixed sample of the library's standardised vectors, for z-scoring the parts."""
        generation = self._store.generation(self.space_id)
        if self._reference is None or self._reference[0] != generation:
            ids = np.array(
                [
                    r[0]
                    for r in self.catalog.conn.execute(
                        "SELECT file_id FROM file_vectors WHERE space_id = ? ORDER BY file_id",
                        (self.space_id,),
                    )
                ]  # fmt: skip
            )
            rng = np.random.default_rng(0)
            pick = np.sort(rng.choice(len(ids), size=min(len(ids), REFERENCE_FILES), replace=False))
            _, raw = self._vectors(ids[pick])
            self._reference = (generation, self._standardise(raw))
        return self._reference[1]

    def score(self, text: str, file_ids: list[int]) -> dict[int, float]:
        """Combined score of each of `file_ids` (that has a vector) for the query."""
        query = self._query(text)
        ids, raw = self._vectors(np.array(file_ids, dtype=np.int64))
        if len(ids) == 0:
            return {}
        reference = self._parts(self._reference_audio(), query)
        parts = self._parts(self._standardise(raw), query)
        total = np.zeros(len(ids), dtype=np.float64)
        for (weight, part), (_, ref) in zip(parts, reference, strict=True):
            total += weight * (part - ref.mean()) / (ref.std() + 1e-9)
        return {int(f): float(s) for f, s in zip(ids, total, strict=True)}

    def rank(self, text: str, k: int) -> list[tuple[int, float]]:
        """The best `k` files for a text query, (file id, combined score), best first.

        Candidates come from the FAISS index: the centroid's nearest files and each
        neighbour's nearest files; all candidates are then scored exactly.
        """
        centroid, neighbours, weights, _ = self._query(text)
        # The centroid's nearest files and the heaviest neighbours' nearest files (kernel
        # matches the centroid misses), in one FAISS pass over the index.
        heaviest = neighbours[np.argsort(-weights, kind="stable")[:NEIGHBOUR_SEARCHES]]
        rows = np.vstack([centroid.reshape(1, -1), heaviest])
        hits = self.index.query_many(
            self.name, rows, max(k, NEIGHBOUR_CANDIDATES), standardized=True
        )
        candidates = {fid for fid, _ in hits[0][:k]}
        for row in hits[1:]:
            candidates.update(fid for fid, _ in row[:NEIGHBOUR_CANDIDATES])
        scores = self.score(text, sorted(candidates))
        return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def embed_text(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._query(t)[0] for t in texts])

    def to_window_space(self, vector: np.ndarray) -> np.ndarray:
        """A standardised query vector expressed like the stored (raw) window vectors."""
        return normalise((vector * self.adapter.std + self.adapter.mean).reshape(1, -1))[0]
