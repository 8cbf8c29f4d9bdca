"""Learning an adapter from the library's captions and stored audio vectors (seeded,
deterministic): the contrastive heads, the optional reliability weights, the whole
training run with progress and cancel. On the thread that owns the catalog."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.adapt.adapter import (
    MAX_PAIRS,
    Adapter,
    AdaptOptions,
    AdaptProgress,
    sources_stamp,
)
from engine.adapt.captions import (
    build_captions,
    catalog_file_texts,
)
from engine.catalog.db import Catalog
from engine.catalog.vectors import VectorStore, normalise
from engine.config import DEFAULT_SIMILAR_SPACE
from engine.errors import Cancelled, NothingToLearn
from engine.scan.ucs import UcsTable


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
    audio_space: str = DEFAULT_SIMILAR_SPACE,
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
    described = len(pairs)
    if described > MAX_PAIRS:
        # The adapter's size and every text query's cost grow with its pairs: a large
        # library teaches through a seeded, even sample of its described files.
        keep = np.sort(np.random.default_rng(options.seed).choice(described, MAX_PAIRS, False))
        pairs = [pairs[i] for i in keep]
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
    lend = None
    if options.lend_weight and options.lend_neighbours:
        lend = lend_table(ids, vectors, mean, std, audio, options, cancel)
    stats = {
        "pairs": len(pairs), "described": described, "files": len(ids), "encoded": len(todo),
        "sources": sources_stamp(file_texts),
        "seconds": round(time.perf_counter() - began, 2), "loss": loss,
    }  # fmt: skip
    return Adapter(
        text_identity=text_identity, audio_space=audio_space, audio_identity=space["identity"],
        audio_generation=generation, options=options, file_ids=file_ids, captions=texts,
        text_vectors=text_vectors, audio_vectors=audio.astype(np.float16), weights=weights,
        mean=mean.astype(np.float32), std=std.astype(np.float32), heads=heads, stats=stats,
        lend=lend,
    )  # fmt: skip


# From this many captioned files on, their nearest ones are found through the search
# index's inverted file (engine/search/vector_index.py; recall in docs/measurements.md)
# rather than compared with every file.
LEND_EXACT_ROWS = 30_000
LEND_CHUNK = 65_536


def lend_table(
    ids: np.ndarray,
    vectors: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    audio: np.ndarray,
    options: AdaptOptions,
    cancel: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(sorted file ids, (n, k) rows of `audio`, (n, k) weights) of every embedded file's
    `options.lend_neighbours` nearest captioned files by sound (a captioned file is its
    own nearest); `audio` is the captioned files' standardised, normalised vectors. None
    when there are no captioned files to lend."""
    from engine.search.vector_index import build_index

    k = min(options.lend_neighbours, len(audio))
    if k < 1:
        return None
    rows = np.ascontiguousarray(audio, dtype=np.float32)
    index = build_index(np.arange(len(rows)), rows, ivf_threshold=LEND_EXACT_ROWS)
    order = np.argsort(ids, kind="stable")
    out_rows = np.zeros((len(ids), k), dtype=np.int32)
    out_weights = np.zeros((len(ids), k), dtype=np.float16)
    for start in range(0, len(order), LEND_CHUNK):
        if cancel is not None and cancel():
            raise Cancelled("learning text search was cancelled")
        part = order[start : start + LEND_CHUNK]
        query = normalise((vectors[part] - mean) / std).astype(np.float32)
        _, found = index.search(query, k)
        # Weighed by their exact cosines (an inverted file's are quantised); -1: fewer
        # than k found, which weigh nothing.
        sims = np.einsum("nd,nkd->nk", query, rows[np.maximum(found, 0)])
        sims = np.where(found >= 0, sims, -np.inf)
        s = options.lend_sharpness * sims
        w = np.exp(s - s.max(axis=1, keepdims=True))
        w = np.nan_to_num(w / w.sum(axis=1, keepdims=True))
        out_weights[start : start + len(part)] = w
        out_rows[start : start + len(part)] = np.maximum(found, 0)
    return ids[order].astype(np.int64), out_rows, out_weights


# -- querying ------------------------------------------------------------------------------
