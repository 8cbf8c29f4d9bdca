"""Answering text queries through an adapter over one audio space's stored vectors
(nearest-caption expansion, the kernel and the heads, z-scored and summed; with base
knowledge also the categories, engine/adapt/categories.py), and blending the library's
own adapter with the base knowledge. On the thread that owns the catalog."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from engine.adapt.adapter import Adapter
from engine.adapt.captions import (
    knowledge_words,
)
from engine.adapt.categories import CategoryKnowledge
from engine.adapt.classes import ClassKnowledge
from engine.catalog.db import Catalog
from engine.catalog.vectors import VectorStore, nearest_rows, normalise
from engine.errors import ModelUnavailable
from engine.scan.ucs import UcsTable

# Reference sample for z-scoring the parts (fixed: same seed, same library -> same rows).
REFERENCE_FILES = 1000
# Weight of a query's UCS knowledge words against the query itself (engine/adapt/captions.py).
KNOWLEDGE_WEIGHT = 0.5
# FAISS candidates per neighbour for the kernel part, from the heaviest neighbours.
NEIGHBOUR_CANDIDATES = 50
NEIGHBOUR_SEARCHES = 5
# Weight of the category part against the whole file-level score (each z-scored).
CATEGORY_WEIGHT = 1.0
# Weight of the audio model's own classifiers against the score with categories (each
# z-scored): chosen on a split of the training corpus (docs/measurements.md).
CLASSES_WEIGHT = 0.25
# Files whose category log-probabilities are kept between queries (752 floats each).
LOG_PROB_CACHE_FILES = 50_000
# Vectors sampled to standardise a library by its own statistics (base knowledge).
STATISTICS_SAMPLE = 20_000


# A text query's parts: centroid, neighbours' audio vectors, their weights, head query,
# category distribution, class-category weights.
_QueryParts = tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None
]


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
        *,
        categories: CategoryKnowledge | None = None,
        classes: ClassKnowledge | None = None,
        own_statistics: bool = False,
    ) -> None:
        """`categories` adds category-level knowledge, `classes` (with categories) the
        audio model's own classifiers; `own_statistics` standardises the library's
        vectors by its own mean and spread instead of the adapter's (an adapter learned
        on another library: base knowledge)."""
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
        if categories is not None and (
            categories.audio_identity != space["identity"]
            or categories.text_identity != adapter.text_identity
        ):
            raise ModelUnavailable("the category knowledge was learned for other models")
        if classes is not None and (
            categories is None
            or classes.audio_identity != space["identity"]
            or classes.catids != categories.catids
        ):
            raise ModelUnavailable("the class knowledge was learned for other models")
        self.categories = categories
        self.classes = classes
        self.space_id = space["id"]
        self._cache: dict[str, _QueryParts] = {}
        # Query text -> its sentence vector; a blend shares one between its two spaces.
        self.encoded: dict[str, np.ndarray] = {}
        self._reference: tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        # Captions lent by neighbours: the library's own adapter only (base knowledge has
        # no table; one from elsewhere had its table dropped by Library.use_adapter).
        self._lend_weight = float(adapter.options.lend_weight)
        self._lends = (
            adapter.lend is not None
            and len(adapter.lend[0]) > 0
            and self._lend_weight > 0
            and not own_statistics
        )
        self._caption_sims: dict[str, np.ndarray] = {}
        self._stats_cache: dict[tuple[str, int], list[tuple[float, float]]] = {}
        self._log_prob_cache: dict[int, np.ndarray] = {}
        self._log_prob_generation = -1
        self._reference_log_probs: tuple[int, np.ndarray] | None = None
        self._class_cache: dict[int, np.ndarray] = {}
        self._reference_classes: tuple[int, np.ndarray] | None = None
        self._mean, self._std = adapter.mean, adapter.std
        # The files of this library whose words taught the adapter (None: base knowledge
        # learned elsewhere, whose file ids are another catalog's, cannot tell).
        self._taught = None if own_statistics else np.sort(adapter.file_ids)
        if own_statistics:
            self._mean, self._std = self._library_statistics()

    def _sample(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, raw vectors) of a fixed, seeded sample of up to `size` of the library's
        files (same seed, same library -> same rows)."""
        ids = self._store.embedded_ids(self.space_id)
        rng = np.random.default_rng(0)
        pick = np.sort(rng.choice(len(ids), size=min(len(ids), size), replace=False))
        return self._vectors(ids[pick])

    def _library_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread of the library's vectors: the search index's, over all of them
        (already in memory), else of a fixed sample (reading 20,000 vectors at random
        was 0.25 s of the first query at a million files)."""
        known = getattr(self.index, "statistics", None)
        found = known(self.name) if known is not None else None
        if found is not None:
            return found[0].astype(np.float32), found[1].astype(np.float32)
        raw = self._sample(STATISTICS_SAMPLE)[1]
        if len(raw) < 2:
            return self.adapter.mean, self.adapter.std
        return raw.mean(0).astype(np.float32), (raw.std(0) + 1e-6).astype(np.float32)

    # Query embedding (cached: typing the same words again costs nothing).
    def _query(self, text: str) -> _QueryParts:
        """(centroid, neighbour audio (k, d), neighbour weights (k,)) of a text query."""
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        from engine.models.text_encoder import shared_encoder

        encoder = self._encoder or shared_encoder()
        q = self.encoded.get(text)
        if q is None:
            if len(self.encoded) > 512:
                self.encoded.clear()
            q = self.encoded[text] = encoder.encode([text])[0]
        knows = getattr(encoder, "knows_word", None)
        extra = knowledge_words(text, self.ucs, self._vocabulary, knows)
        if extra:
            # Blended, not appended to the text: the query's own meaning stays first
            # (appending measured worse: it pulled "laughter" towards crowds).
            q = normalise((q + KNOWLEDGE_WEIGHT * encoder.encode([extra])[0]).reshape(1, -1))[0]
        a = self.adapter
        sims = a.text_vectors @ q
        if self._lends:
            if len(self._caption_sims) >= 16:
                self._caption_sims.clear()  # (pairs,) each: a few, not 512 of them
            self._caption_sims[text] = sims
        k = min(a.options.neighbours, len(sims))
        top = nearest_rows(sims, k)
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
        distribution = class_weights = None
        if self.categories is not None:
            distribution = self.categories.query_distribution(q)
            if self.classes is not None:
                class_weights = self.classes.query_weights(self.categories.text_distribution(q))
        entry = (centroid, neighbours, w, head_query, distribution, class_weights)
        if len(self._cache) > 512:
            self._cache.clear()
        self._cache[text] = entry
        return entry

    def _vectors(self, file_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._store.file_vectors(self.space_id, [int(f) for f in file_ids])

    def _standardise(self, raw: np.ndarray) -> np.ndarray:
        if len(raw) == 0:
            return np.zeros((0, len(self._mean)), dtype=np.float32)
        return normalise((raw - self._mean) / self._std)

    def _parts(self, audio: np.ndarray, query: tuple) -> list[tuple[float, np.ndarray]]:
        """(weight, scores of `audio`) of each file-level part that is switched on."""
        centroid, neighbours, w, head_query, _, _ = query
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

    def _reference_audio(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A fixed sample of the library's files, (ids, raw vectors, standardised), for
        z-scoring the parts."""
        generation = self._store.generation(self.space_id)
        if self._reference is None or self._reference[0] != generation:
            ids, raw = self._sample(REFERENCE_FILES)
            self._reference = (generation, (ids, raw, self._standardise(raw)))
        return self._reference[1]

    def _lent(self, text: str, ids: np.ndarray) -> np.ndarray | None:
        """Each file's score by the captions its nearest described files lend it (the
        query's cosine to each, weighted by how close they sound); a file embedded since
        the adapter learned gets the mean over every caption. None when off."""
        if not self._lends:
            return None
        sims = self._caption_sims.get(text)
        if sims is None:
            self._cache.pop(text, None)
            self._query(text)
            sims = self._caption_sims[text]
        assert self.adapter.lend is not None
        lend_ids, rows, weights = self.adapter.lend
        at = np.minimum(np.searchsorted(lend_ids, ids), len(lend_ids) - 1)
        found = lend_ids[at] == ids
        out = np.full(len(ids), float(sims.mean()), dtype=np.float64)
        picked = at[found]
        out[found] = (weights[picked].astype(np.float32) * sims[rows[picked]]).sum(axis=1)
        return out

    def score(
        self,
        text: str,
        file_ids: list[int],
        fetched: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> dict[int, float]:
        """Combined score of each of `file_ids` (that has a vector) for the query;
        `fetched` is their (ids, raw vectors) when the caller has read them already."""
        query = self._query(text)
        ids, raw = fetched or self._vectors(np.array(file_ids, dtype=np.int64))
        if len(ids) == 0:
            return {}
        total = self._total(ids, raw, self._standardise(raw), text, query)
        return {int(f): float(s) for f, s in zip(ids, total, strict=True)}

    def category_log_probs(self, file_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids that have vectors, (n, c) log P(category | sound)) over the category
        knowledge's CatIDs (`categories.catids`); the space must have categories."""
        ids, raw = self._vectors(np.array(file_ids, dtype=np.int64))
        if len(ids) == 0:
            return ids, np.zeros((0, 0), dtype=np.float32)
        return ids, self._log_probs(ids, self._standardise(raw))

    def _log_probs(self, ids: np.ndarray, audio: np.ndarray) -> np.ndarray:
        """Category log-probabilities of these files, cached: they depend on the file alone,
        so typing the next letter reuses most of them."""
        assert self.categories is not None
        return self._cached_rows(self._log_prob_cache, ids, audio, self.categories.log_probs)

    def _class_log_probs(self, ids: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """The classifiers' category log-probabilities of these files (raw vectors), cached."""
        assert self.classes is not None
        return self._cached_rows(self._class_cache, ids, raw, self.classes.log_probs)

    def _cached_rows(
        self,
        cache: dict[int, np.ndarray],
        ids: np.ndarray,
        audio: np.ndarray,
        compute: Callable[[np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """Rows of `compute(audio)` per file, through `cache` (emptied when the vectors
        change)."""
        generation = self._store.generation(self.space_id)
        if self._log_prob_generation != generation:
            self._log_prob_cache.clear()
            self._class_cache.clear()
            self._log_prob_generation = generation
        rows = [cache.get(int(f)) for f in ids]
        todo = [i for i, row in enumerate(rows) if row is None]
        if todo:
            fresh = compute(audio[todo]).astype(np.float32)
            # Made room for after the rows are read: a full cache is emptied, never left
            # without rows this call still needs.
            if len(cache) + len(todo) > LOG_PROB_CACHE_FILES:
                cache.clear()
            for i, row in zip(todo, fresh, strict=True):
                rows[i] = cache[int(ids[i])] = row
        filled = [row for row in rows if row is not None]  # every row, now
        return np.stack(filled) if filled else np.zeros((0, 0), dtype=np.float32)

    def _reference_stats(self, text: str, query: _QueryParts) -> list[tuple[float, float]]:
        """(mean, std) on the reference sample of each part, of their weighted sum, and
        with categories of the category part and of the final sum; cached per query."""
        generation = self._store.generation(self.space_id)
        key = (text, generation)
        cached = self._stats_cache.get(key)
        if cached is not None:
            return cached
        reference_ids, raw_reference, reference = self._reference_audio()
        stats: list[tuple[float, float]] = []

        def z(values: np.ndarray) -> np.ndarray:
            mu, sd = float(values.mean()), float(values.std()) + 1e-9
            stats.append((mu, sd))
            return (values - mu) / sd

        category = None
        if self.categories is not None and query[4] is not None:
            if self._reference_log_probs is None or self._reference_log_probs[0] != generation:
                self._reference_log_probs = (generation, self.categories.log_probs(reference))
            category = self._reference_log_probs[1] @ query[4]
        classes = None
        if self.classes is not None and query[5] is not None:
            if self._reference_classes is None or self._reference_classes[0] != generation:
                self._reference_classes = (generation, self.classes.log_probs(raw_reference))
            classes = self._reference_classes[1] @ query[5]
        lent = self._lent(text, reference_ids)
        self._combine(self._parts(reference, query), category, classes, z, lent, self._lend_weight)
        if len(self._stats_cache) > 512:
            self._stats_cache.clear()
        self._stats_cache[key] = stats
        return stats

    def _total(
        self, ids: np.ndarray, raw: np.ndarray, audio: np.ndarray, text: str, query: _QueryParts
    ) -> np.ndarray:
        """Scores of `audio`, z-scored on the reference sample (so spaces can be blended)."""
        stats = iter(self._reference_stats(text, query))

        def z(values: np.ndarray) -> np.ndarray:
            mu, sd = next(stats)
            return (values - mu) / sd

        category = None
        if self.categories is not None and query[4] is not None:
            category = self._log_probs(ids, audio) @ query[4]
        classes = None
        if self.classes is not None and query[5] is not None:
            classes = self._class_log_probs(ids, raw) @ query[5]
        lent = self._lent(text, ids)
        parts = self._parts(audio, query)
        return self._combine(parts, category, classes, z, lent, self._lend_weight)

    @staticmethod
    def _combine(
        parts: list[tuple[float, np.ndarray]],
        category: np.ndarray | None,
        classes: np.ndarray | None,
        z: Callable[[np.ndarray], np.ndarray],
        lent: np.ndarray | None = None,
        lend_weight: float = 0.0,
    ) -> np.ndarray:
        """The weighted sum of the z-scored parts, z-scored, plus the z-scored score of
        lent captions, z-scored again, plus the z-scored category score, z-scored again,
        plus the z-scored class score, z-scored again. One sequence of z() calls for the
        reference sample (which records the statistics) and for the files scored (which
        apply them in order)."""
        total = np.zeros(len(parts[0][1]), dtype=np.float64)
        for weight, part in parts:
            total += weight * z(part)
        total = z(total)
        if lent is not None:
            total = z(total + lend_weight * z(lent))
        if category is not None:
            total = z(total + CATEGORY_WEIGHT * z(category))
            if classes is not None:
                total = z(total + CLASSES_WEIGHT * z(classes))
        return total

    def candidate_rows(self, text: str) -> np.ndarray:
        """What a text query looks up in the FAISS index: its centroid first (its nearest
        files are the candidates), then the heaviest neighbours (kernel matches the
        centroid misses) and, with categories, the audio the query's categories were
        taught with (each NEIGHBOUR_CANDIDATES nearest files)."""
        centroid, neighbours, weights, _, distribution, _ = self._query(text)
        heaviest = neighbours[np.argsort(-weights, kind="stable")[:NEIGHBOUR_SEARCHES]]
        rows = np.vstack([centroid.reshape(1, -1), heaviest])
        if self.categories is not None and distribution is not None:
            rows = np.vstack([rows, self.categories.prototype(distribution).reshape(1, -1)])
        return rows

    def candidates(self, text: str, k: int) -> set[int]:
        """Files worth scoring for a text query, from one FAISS pass over the index."""
        return candidates_of(self.index, self.name, [self.candidate_rows(text)], k)

    def rank(self, text: str, k: int) -> list[tuple[int, float]]:
        """The best `k` files for a text query, (file id, combined score), best first:
        every candidate scored exactly."""
        scores = self.score(text, sorted(self.candidates(text, k)))
        return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def described(self, file_ids: np.ndarray) -> np.ndarray | None:
        """Which of `file_ids` have words of their own that taught this adapter (a
        caption: a usable name, description or tags); None for base knowledge, which
        cannot tell. Above MAX_PAIRS described files the adapter learned from a sample,
        and the rest read as undescribed."""
        if self._taught is None:
            return None
        at = np.searchsorted(self._taught, file_ids)
        inside = at < len(self._taught)
        found = np.zeros(len(file_ids), dtype=bool)
        found[inside] = self._taught[at[inside]] == file_ids[inside]
        return found

    def embed_text(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._query(t)[0] for t in texts])

    def to_window_space(self, vector: np.ndarray) -> np.ndarray:
        """A standardised query vector expressed like the stored (raw) window vectors."""
        return normalise((vector * self._std + self._mean).reshape(1, -1))[0]


class BlendedTextSpace:
    """The library's own adapter and the base knowledge, blended by `own_weight`.

    Both spaces score on the same z-scale, so the blend is a weighted sum; candidates are
    the union of both rankings. Moments and windows follow the library's own adapter.
    Runs on the thread that owns the catalog.
    """

    query_is_standardized = True

    def __init__(self, own: AdaptedTextSpace, base: AdaptedTextSpace, own_weight: float) -> None:
        self.own, self.base, self.own_weight = own, base, own_weight
        self.name = own.name
        base.encoded = own.encoded  # one encoding per query text

    def score(self, text: str, file_ids: list[int]) -> dict[int, float]:
        # Same space, same files: the vectors are read once for both.
        fetched = self.own._vectors(np.array(file_ids, dtype=np.int64))
        own = self.own.score(text, file_ids, fetched)
        base = self.base.score(text, file_ids, fetched)
        w = self.own_weight
        return {f: w * s + (1 - w) * base.get(f, 0.0) for f, s in own.items()}

    def rank(self, text: str, k: int) -> list[tuple[int, float]]:
        # Both spaces' rows in one pass over the index (a pass reads all of it).
        rows = [self.own.candidate_rows(text), self.base.candidate_rows(text)]
        candidates = candidates_of(self.own.index, self.name, rows, k)
        scores = self.score(text, sorted(candidates))
        return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def described(self, file_ids: np.ndarray) -> np.ndarray | None:
        return self.own.described(file_ids)

    def embed_text(self, texts: list[str]) -> np.ndarray:
        return self.own.embed_text(texts)

    def to_window_space(self, vector: np.ndarray) -> np.ndarray:
        return self.own.to_window_space(vector)


def candidates_of(index: Any, space: str, rows: list[np.ndarray], k: int) -> set[int]:
    """The union, over `rows` (each a candidate_rows()), of the first row's `k` nearest
    files and the other rows' NEIGHBOUR_CANDIDATES nearest, in one FAISS call."""
    hits = index.query_many(space, np.vstack(rows), max(k, NEIGHBOUR_CANDIDATES), standardized=True)
    found: set[int] = set()
    row = 0
    for part in rows:
        found.update(fid for fid, _ in hits[row][:k])
        for neighbour in hits[row + 1 : row + len(part)]:
            found.update(fid for fid, _ in neighbour[:NEIGHBOUR_CANDIDATES])
        row += len(part)
    return found
