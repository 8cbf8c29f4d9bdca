"""Search latency over 10k, 100k and 1M file vectors, with and without text embedding.

    python bench/search_bench.py [--sizes 10000 100000 1000000] [--queries 200]

Prints one JSON object. For each size, synthetic L2-normalised 512-d float32 vectors
(clustered: points scattered around ~2 sqrt(n) random unit centres) are indexed with the
product's engine.search.vector_index.build_index (IndexFlatIP below IVF_THRESHOLD, IVF-SQ8
above), and reported are the build time, the process RSS after the build, and p50/p95
latency of engine.search.vector_index.search (k=100) over --queries queries drawn from the same
distribution (not in the index).

End to end adds the text encoder: a full-size, randomly initialised CLAP
(laion/clap-htsat-unfused's architecture, bench/clap_bench.py) loaded through the
product's ClapSpace(folder); ClapSpace.embed_text is timed once per distinct query text and
its per-query time is added to that query's search time. The product caches recent texts,
so a repeated query pays only the cache lookup: reported separately. The real BPE
tokenizer can't be downloaded; the saved one is byte-level (one token per byte, longer
sequences than BPE), so a second text timing feeds get_text_features random token ids of
a BPE-like length (words + 2) as the realistic estimate.

For the largest size (IVF) also recall@10 (and @100) of the product's search against exact
inner-product search (numpy matmul in chunks) on --recall-queries queries.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.clap_bench import make_model_folder, quiet_model_logs  # noqa: E402
from engine.models.clap.space import ClapSpace  # noqa: E402
from engine.search.vector_index import IVF_THRESHOLD, build_index, search  # noqa: E402

DIM = 512
K = 100

_SOUNDS = ["door", "footsteps", "rain", "thunder", "glass", "engine", "dog", "crowd",
           "wind", "whoosh", "explosion", "bird", "water", "metal", "fire", "keyboard",
           "car", "gunshot", "heartbeat", "bell"]  # fmt: skip
_QUALITIES = ["slam", "creak", "distant", "heavy", "soft", "close", "loud", "muffled",
              "interior", "exterior"]  # fmt: skip


def query_texts(count: int) -> list[str]:
    """Distinct short SFX-style queries of 2-4 words ("heavy rain", "soft door take 3")."""
    texts = [f"{q} {s}" for s in _SOUNDS for q in _QUALITIES]
    i = 0
    while len(texts) < count:
        texts.append(f"{_QUALITIES[i % 10]} {_SOUNDS[i % 20]} take {i}")
        i += 1
    return texts[:count]


def rss_mb() -> float:
    """Current resident set size (Linux /proc), in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {
        "p50": round(float(np.percentile(a, 50)), 3),
        "p95": round(float(np.percentile(a, 95)), 3),
        "mean": round(float(a.mean()), 3),
    }


class Clusters:
    """A fixed mixture of isotropic clusters on the unit sphere to sample vectors from."""

    def __init__(self, count: int, dim: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((count, dim), dtype=np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        # Per-dimension spread 0.03-0.06: cosine to the centre ~0.85 down to ~0.6.
        self.spread = rng.uniform(0.03, 0.06, size=count).astype(np.float32)
        self.weights = rng.dirichlet(np.full(count, 2.0))

    def sample(self, n: int, seed: int, chunk: int = 65_536) -> np.ndarray:
        """(n, dim) float32 unit rows, generated in chunks (peak = result + one chunk)."""
        rng = np.random.default_rng(seed)
        out = np.empty((n, self.centres.shape[1]), dtype=np.float32)
        for first in range(0, n, chunk):
            m = min(chunk, n - first)
            which = rng.choice(len(self.centres), size=m, p=self.weights)
            part = rng.standard_normal((m, self.centres.shape[1]), dtype=np.float32)
            part *= self.spread[which, None]
            part += self.centres[which]
            part /= np.linalg.norm(part, axis=1, keepdims=True)
            out[first : first + m] = part
        return out


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int, chunk: int = 131_072):
    """Row indices of the exact top-k inner products per query (numpy, chunked)."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    for first in range(0, len(vectors), chunk):
        scores = queries @ vectors[first : first + chunk].T  # (q, chunk)
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], 1)
        best_rows = np.concatenate([best_rows, top + first], 1)
        keep = np.argsort(-best_scores, axis=1)[:, :k]
        best_scores = np.take_along_axis(best_scores, keep, 1)
        best_rows = np.take_along_axis(best_rows, keep, 1)
    return best_rows


def text_latencies(space: ClapSpace, texts: list[str]) -> dict:
    """Per-text milliseconds: product embed_text uncached and cached, and a BPE-length
    forward (random ids, words + 2 tokens) as the realistic uncached estimate."""
    loaded = space._load()
    model, tokenizer = loaded.model, loaded.tokenizer
    space.embed_text(["warm up the text tower"])  # first call allocates
    uncached, cached, bpe = [], [], []
    for text in texts:
        t0 = time.perf_counter()
        space.embed_text([text])
        uncached.append((time.perf_counter() - t0) * 1000)
    for text in texts:
        t0 = time.perf_counter()
        space.embed_text([text])
        cached.append((time.perf_counter() - t0) * 1000)
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.text_config.vocab_size
    for text in texts:
        ids = torch.randint(3, vocab, (1, len(text.split()) + 2), generator=gen)
        ids[0, 0], ids[0, -1] = 0, 2  # <s> ... </s>
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.get_text_features(input_ids=ids, attention_mask=torch.ones_like(ids))
        vec = out if isinstance(out, torch.Tensor) else out.pooler_output
        torch.nn.functional.normalize(vec.float(), dim=-1).numpy()
        bpe.append((time.perf_counter() - t0) * 1000)
    byte_tokens = [len(tokenizer(t)["input_ids"]) for t in texts]
    return {"uncached": uncached, "cached": cached, "bpe_length": bpe, "tokens": byte_tokens}


class TrainTimer:
    """Times the IVF index's train while active, to split an IVF build into train / add."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._original = faiss.IndexIVFScalarQuantizer.train

    def __enter__(self) -> TrainTimer:
        original = self._original

        def timed(index, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(index, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0

        faiss.IndexIVFScalarQuantizer.train = timed
        return self

    def __exit__(self, *exc: object) -> None:
        faiss.IndexIVFScalarQuantizer.train = self._original


def bench_size(
    n: int, queries_count: int, recall_queries: int, text: dict, seed: int
) -> dict:  # fmt: skip
    clusters = Clusters(int(2 * np.sqrt(n)), DIM, seed)
    rss_before = rss_mb()
    t0 = time.perf_counter()
    vectors = clusters.sample(n, seed + 1)
    generate_s = time.perf_counter() - t0
    queries = clusters.sample(queries_count, seed + 2)
    ids = np.arange(1, n + 1, dtype=np.int64)

    with TrainTimer() as train:
        t0 = time.perf_counter()
        index = build_index(ids, vectors)
        build_s = time.perf_counter() - t0
    rss_after = rss_mb()
    base = faiss.downcast_index(index.index if hasattr(index, "index") else index)
    kind = type(base).__name__
    info = {"index": kind}
    if isinstance(base, faiss.IndexIVF):
        info.update(
            nlist=int(base.nlist),
            nprobe=int(base.nprobe),
            kmeans_iterations=int(base.cp.niter),
            train_points=int(min(n, base.nlist * 64)),
            train_seconds=round(train.seconds, 2),
            add_seconds=round(build_s - train.seconds, 2),
        )

    for q in queries[:5]:  # warm-up
        search(index, q, K)
    search_ms = []
    for q in queries:
        t0 = time.perf_counter()
        found, _ = search(index, q, K)
        search_ms.append((time.perf_counter() - t0) * 1000)
        assert len(found) == K

    m = len(search_ms)
    end_to_end = {
        name: percentiles([a + b for a, b in zip(search_ms, text[name][:m], strict=True)])
        for name in ("uncached", "bpe_length", "cached")
    }
    result = {
        "vectors": n,
        **info,
        "clusters": len(clusters.centres),
        "generate_seconds": round(generate_s, 2),
        "build_seconds": round(build_s, 2),
        "rss_megabytes_before_vectors": round(rss_before, 1),
        "rss_megabytes_after_build": round(rss_after, 1),
        "vectors_megabytes": round(vectors.nbytes / 2**20, 1),
        "search_ms_k100": percentiles(search_ms),
        "end_to_end_ms": {
            "text_uncached_product_byte_tokenizer": end_to_end["uncached"],
            "text_uncached_bpe_length_estimate": end_to_end["bpe_length"],
            "text_cached_repeat_query": end_to_end["cached"],
        },
    }
    if isinstance(base, faiss.IndexIVF) and recall_queries:
        rq = queries[:recall_queries]
        t0 = time.perf_counter()
        exact = exact_top(vectors, rq, K) + 1  # rows -> ids
        exact_s = time.perf_counter() - t0
        recall = {}
        for k in (10, K):
            hits = [
                len(set(search(index, q, k)[0].tolist()) & set(e[:k].tolist())) / k
                for q, e in zip(rq, exact, strict=True)
            ]
            recall[f"recall_at_{k}"] = round(float(np.mean(hits)), 4)
        result.update(
            recall,
            recall_queries=len(rq),
            recall_reference="exact inner product, numpy matmul in chunks",
            exact_numpy_seconds_for_all_recall_queries=round(exact_s, 2),
        )
    del index, vectors
    gc.collect()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--recall-queries", type=int, default=50)
    args = parser.parse_args()
    quiet_model_logs()
    bench_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="sonarium-search-bench-"))
    try:
        folder = work / "clap-random"
        folder.mkdir()
        make_model_folder(folder)
        space = ClapSpace(str(folder), device="cpu")
        texts = query_texts(args.queries)
        text = text_latencies(space, texts)
        rss_with_model = rss_mb()

        sizes = []
        for i, n in enumerate(args.sizes):
            sizes.append(bench_size(n, args.queries, args.recall_queries, text, seed=10 * i))
        result = {
            "benchmark": "search_latency",
            "dim": DIM,
            "k": K,
            "queries": args.queries,
            "ivf_threshold": IVF_THRESHOLD,
            "faiss_threads": faiss.omp_get_max_threads(),
            "torch_threads": torch.get_num_threads(),
            "text_model": "random full-size CLAP text tower (RoBERTa-base + 512-d projection) "
            "via ClapSpace(folder).embed_text",
            "text_ms": {
                "uncached_product_byte_tokenizer": percentiles(text["uncached"]),
                "byte_tokenizer_tokens_mean": round(float(np.mean(text["tokens"])), 1),
                "uncached_bpe_length_estimate": percentiles(text["bpe_length"]),
                "cached_repeat_query": percentiles(text["cached"]),
            },
            "text_note": "each query's text time is measured once per distinct text and "
            "added to its search time for every size; the product caches the last 1024 "
            "texts, so a repeated query pays the cached time",
            "rss_megabytes_with_model": round(rss_with_model, 1),
            "sizes": sizes,
            "peak_rss_megabytes": round(peak_rss_mb(), 1),
            "total_bench_seconds": round(time.perf_counter() - bench_start, 1),
        }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
