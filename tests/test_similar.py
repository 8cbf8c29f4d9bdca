import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine.audio.decode import decode_mono
from engine.catalog.vectors import VectorStore, normalise
from engine.embed.pipeline import Embedder
from engine.eval.metrics import (
    average_precision_at,
    evaluate_by_example,
    evaluate_text,
    hit_at,
    precision_at,
)
from engine.models.mfcc import MfccSpace
from engine.search.vector_index import build_index, search
from tests.audio_factory import noise, tone, write
from tests.conftest import ROOT
from tests.fakes import FakeSpace, dc


@pytest.fixture
def fake_library(tmp_path, library):
    root = tmp_path / "s"
    write(root / "a0.wav", dc(2, 0.0), 8000)  # direction 0
    write(root / "a1.wav", dc(3, 0.01), 8000)  # direction 0
    write(root / "b0.wav", dc(1, 0.1), 8000)  # direction 1
    write(root / "c0.wav", dc(1, 0.2), 8000)  # direction 2
    library.add_folders([root])
    library.scan(workers=1)
    return root


def test_embedder_stores_vectors_and_resumes(library, fake_library):
    space = FakeSpace()
    report = Embedder(library.catalog, [space], batch_files=2).run()
    assert (report.files, report.failed) == (4, 0)
    assert set(report.stage_seconds) == {"decode", "resample", "features", "model", "store"}
    store = VectorStore(library.catalog)
    sid = store.space("fake")["id"]
    assert store.counts(sid) == {"embedded": 4, "failed": 0, "pending": 0}
    a1 = library.catalog.file_by_path(str(fake_library / "a1.wav"))["id"]
    w = store.windows(sid, a1)
    assert list(w.starts) == [0.0, 1.0, 2.0]
    # Stored as float16: unit length within half-precision rounding.
    assert np.allclose(np.linalg.norm(w.vectors, axis=1), 1, atol=1e-3)
    # Nothing pending: a second run embeds nothing.
    again = Embedder(library.catalog, [space]).run()
    assert again.files == 0
    # A new identity (model or preprocessing changed) drops and re-embeds everything.
    assert Embedder(library.catalog, [FakeSpace("fake:v2")]).run().files == 4


class PreparingSpace(FakeSpace):
    """FakeSpace split in two, recording which thread runs each half."""

    name = "prep"

    def __init__(self, identity="prep:v1", fail_on=None, device="cpu"):
        super().__init__(identity)
        self.device = device
        self.prepare_threads, self.embed_threads = set(), set()
        self.fail_on = fail_on

    def prepare(self, clip):
        import threading

        self.prepare_threads.add(threading.current_thread().name)
        if self.fail_on is not None and len(clip) == self.fail_on:
            raise RuntimeError("bad features")
        return ("prepared", clip)

    def embed_prepared(self, items):
        import threading

        self.embed_threads.add(threading.current_thread().name)
        assert all(tag == "prepared" for tag, _ in items)
        return FakeSpace.embed(self, [clip for _, clip in items])


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_prepare_runs_where_the_model_leaves_room_and_gives_what_embed_gives(
    library, fake_library, device
):  # fmt: skip
    """A model on CPU needs every core: its prepare runs on the embedding thread. A model
    with its own device (a fake "cuda" here) gets its features from the decode workers."""
    import threading

    plain, split = FakeSpace(), PreparingSpace(device=device)
    report = Embedder(library.catalog, [plain, split], batch_files=2).run()
    assert (report.files, report.failed) == (4, 0)
    here = threading.current_thread().name
    if device == "cpu":
        assert split.prepare_threads == {here}
    else:
        assert split.prepare_threads and all(
            name.startswith("sonarium-decode") for name in split.prepare_threads
        )  # fmt: skip
    assert split.embed_threads == {here}
    store = VectorStore(library.catalog)
    a, b = store.space("fake")["id"], store.space("prep")["id"]
    for row in library.catalog.query("SELECT id FROM files"):
        assert np.array_equal(store.file_vector(a, row["id"]), store.file_vector(b, row["id"]))
        wa, wb = store.windows(a, row["id"]), store.windows(b, row["id"])
        assert np.array_equal(wa.vectors, wb.vectors)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_a_failing_prepare_is_a_per_file_error(library, fake_library, device):
    space = PreparingSpace(fail_on=3 * 8000, device=device)  # a1.wav, the only 3-s file
    report = Embedder(library.catalog, [space]).run()
    assert (report.files, report.failed) == (3, 1)
    assert "prep features failed: bad features" in report.errors[0]
    store = VectorStore(library.catalog)
    assert store.counts(store.space("prep")["id"]) == {"embedded": 3, "failed": 1, "pending": 0}


class FailingModel(FakeSpace):
    """A space whose model fails on every batch holding a 3-second clip."""

    name = "failing"

    def embed(self, clips):
        if any(len(c) == 3 * self.sample_rate for c in clips):
            raise RuntimeError("model broke")
        return super().embed(clips)


@pytest.mark.parametrize("failing", ["prepare", "model"])
def test_one_spaces_failure_on_a_file_leaves_the_other_spaces_alone(library, fake_library, failing):
    broken = PreparingSpace(fail_on=3 * 8000) if failing == "prepare" else FailingModel()
    healthy = FakeSpace()
    report = Embedder(library.catalog, [broken, healthy], batch_files=1).run()
    assert report.failed == 1
    store = VectorStore(library.catalog)
    assert store.counts(store.space(broken.name)["id"])["failed"] == 1
    # The other space embedded every file, the one the broken space failed on too...
    assert store.counts(store.space("fake")["id"]) == {"embedded": 4, "failed": 0, "pending": 0}
    # ...and nothing is left pending for it: the next run retries nothing.
    again = Embedder(library.catalog, [broken, healthy]).run()
    assert (again.files, again.failed) == (0, 0)


def test_a_file_that_cannot_be_resampled_fails_alone(library, fake_library, monkeypatch):
    """E.g. a MemoryError resampling one odd file: that file gets an error row in that
    space, the rest of its batch is embedded."""
    import engine.embed.pipeline as pipeline

    real = pipeline.resample

    def resample_or_fail(audio, rate, target):
        if len(audio) == 3 * rate:  # a1.wav, the only 3-s file
            raise MemoryError("cannot allocate 740 GiB")
        return real(audio, rate, target)

    class Resampling(FakeSpace):
        sample_rate = 16000

    monkeypatch.setattr(pipeline, "resample", resample_or_fail)
    report = Embedder(library.catalog, [Resampling()], batch_files=16).run()
    assert (report.files, report.failed) == (3, 1)
    assert "cannot resample from 8000 Hz to 16000 Hz: MemoryError" in report.errors[0]
    store = VectorStore(library.catalog)
    assert store.counts(store.space("fake")["id"]) == {"embedded": 3, "failed": 1, "pending": 0}


def test_embedding_runs_with_one_blas_thread_and_restores_it(library, fake_library):
    """OpenBLAS's idle threads spin after each call and take a core from the model, so
    the pipeline limits BLAS to one thread while it runs, and only then."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def threads(api: str) -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == api}

    seen = []

    class Recording(FakeSpace):
        def embed(self, clips):
            seen.append((threads("blas"), torch.get_num_threads()))
            return super().embed(clips)

    with threadpool_limits(limits=2, user_api="blas"):
        before = threads("blas")
        assert Embedder(library.catalog, [Recording()]).run().files == 4
        assert threads("blas") == before
    assert before == {2}  # numpy's BLAS is there and was set to 2 for this test
    # torch's own threads (OpenMP) are left alone.
    assert seen and all(pair == ({1}, torch.get_num_threads()) for pair in seen)


def test_the_blas_limit_leaves_a_blas_inside_torch_alone(monkeypatch):
    import engine.models.blas as lanes

    torch_dir = Path(torch.__file__).resolve().parent
    libs = [
        SimpleNamespace(user_api="blas", filepath="/opt/numpy.libs/libscipy_openblas.so"),
        SimpleNamespace(user_api="blas", filepath=str(torch_dir / "lib/libopenblas.so")),
        SimpleNamespace(user_api="blas", filepath=str(torch_dir.parent / "torch.libs/x.so")),
        SimpleNamespace(user_api="openmp", filepath="/usr/lib/libgomp.so.1"),
    ]

    class FakeController:
        lib_controllers = libs

        def select(self, **kwargs):
            return kwargs

    monkeypatch.setattr(lanes, "ThreadpoolController", FakeController)
    lanes.numpy_blas.cache_clear()
    try:
        assert lanes.numpy_blas() == {"filepath": ["/opt/numpy.libs/libscipy_openblas.so"]}
    finally:
        lanes.numpy_blas.cache_clear()


def test_changed_file_is_re_embedded(library, fake_library):
    import os

    Embedder(library.catalog, [FakeSpace()]).run()
    write(fake_library / "c0.wav", dc(1, 0.3), 8000)
    os.utime(fake_library / "c0.wav", ns=(5, 5))
    library.scan(workers=1)
    assert Embedder(library.catalog, [FakeSpace()]).run().files == 1


def test_similar_ranks_by_vector_and_gives_moments(library, fake_library, monkeypatch):
    monkeypatch.setattr("engine.models.spaces.make_space", lambda name, device="auto": FakeSpace())
    Embedder(library.catalog, [FakeSpace()]).run()
    results = library.similar(fake_library / "a0.wav", space="fake", limit=3)
    assert results[0].name == "a1.wav"  # same direction; a0 itself is excluded
    assert all(r.name != "a0.wav" for r in results)
    assert results[0].start is not None and results[0].end == results[0].start + 1.0
    # A region query embeds the region; an outside file works too.
    region = library.similar(fake_library / "c0.wav", start=0.0, end=0.5, space="fake")
    assert region[0].name == "c0.wav"
    outside = write(fake_library.parent / "outside.wav", dc(1, 0.1), 8000)
    assert library.similar(outside, space="fake")[0].name == "b0.wav"


def test_index_follows_catalog_changes(library, fake_library, monkeypatch):
    Embedder(library.catalog, [FakeSpace()]).run()
    assert library.similar(fake_library / "a0.wav", space="fake")[0].name == "a1.wav"
    (fake_library / "a1.wav").unlink()
    library.scan(workers=1)
    names = [r.name for r in library.similar(fake_library / "a0.wav", space="fake")]
    assert "a1.wav" not in names and len(names) == 2
    # The saved index is reused when the catalog did not change, rebuilt when it did.
    assert (library.dir / "fake.files.faiss").exists()


def test_damaged_or_hostile_saved_indexes_are_rebuilt_never_trusted(library, fake_library):
    """The saved FAISS index, its stamp and statistics are caches: truncated, garbage, an
    index of other vectors under the right stamp, or a huge file are each rebuilt from the
    catalog, and results stay right."""
    import faiss

    from engine.search.similar import SimilarIndex
    from engine.search.vector_index import build_index

    Embedder(library.catalog, [FakeSpace()]).run()
    expected = [r.name for r in library.similar(fake_library / "a0.wav", space="fake")]
    saved = library.dir / "fake.files.faiss"
    good = saved.read_bytes()
    other = build_index(np.arange(2), np.eye(2, 4, dtype=np.float32))
    faiss.write_index(other, str(library.dir / "other.faiss"))
    cases = {
        "truncated": good[: len(good) // 2],
        "garbage": b"\x00garbage" * 100,
        "other_vectors": (library.dir / "other.faiss").read_bytes(),
        "huge": good + bytes(64 << 20),
    }
    for name, blob in cases.items():
        saved.write_bytes(blob)
        fresh = SimilarIndex(library.catalog, library.dir)  # nothing cached in memory
        hits = fresh.query("fake", np.array([1, 0, 0, 0], np.float32), 10)
        assert len(hits) == library.counts()["indexed"], name
        library._similar = None
        assert [r.name for r in library.similar(fake_library / "a0.wav", space="fake")] == expected
        assert saved.read_bytes() != blob, name  # rebuilt and saved again
    stamp = saved.with_suffix(".json")
    stamp.write_text("{" * 100_000)
    fresh = SimilarIndex(library.catalog, library.dir)
    hits = fresh.query("fake", np.array([1, 0, 0, 0], np.float32), 10)
    assert len(hits) == library.counts()["indexed"]


def test_mfcc_space_finds_the_tone_among_noise(tmp_path, library):
    root = tmp_path / "m"
    for i, f in enumerate((440, 470, 500)):
        write(root / f"tone{i}.wav", tone(1.0, freq=f), 44100)
    for i in range(3):
        write(root / f"noise{i}.wav", noise(1.0, seed=i), 44100)
    library.add_folders([root])
    library.scan(workers=1)
    report = Embedder(library.catalog, [MfccSpace()]).run()
    assert report.files == 6
    names = [r.name for r in library.similar(root / "tone0.wav", space="mfcc", limit=2)]
    assert set(names) == {"tone1.wav", "tone2.wav"}


def test_decode_mono_region_and_downmix(tmp_path):
    data = np.stack([np.arange(8000) / 8000, -np.arange(8000) / 16000], axis=1)
    path = write(tmp_path / "r.wav", data.astype(np.float32), 8000, subtype="FLOAT")
    audio, rate = decode_mono(path, 0.25, 0.5)
    assert rate == 8000 and len(audio) == 2000
    assert np.allclose(audio, (np.arange(2000, 4000) / 8000 - np.arange(2000, 4000) / 16000) / 2)


@pytest.mark.parametrize(
    "fmt,subtype",
    [("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "PCM_32"), ("WAV", "PCM_U8"),
     ("WAV", "FLOAT"), ("FLAC", "PCM_24"), ("AIFF", "PCM_16"), ("OGG", "VORBIS")],
)  # fmt: skip
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_decode_mono_equals_soundfile_float_mean(tmp_path, fmt, subtype, channels):
    """The fast paths (integer reads scaled here, matrix downmix) give soundfile's own
    float32 samples averaged over channels, within float32 rounding."""
    import soundfile as sf

    rng = np.random.default_rng(channels)
    data = (rng.uniform(-0.9, 0.9, (6000, channels))).astype(np.float32)
    path = tmp_path / f"t.{fmt.lower()}"
    sf.write(str(path), data, 22050, subtype=subtype, format=fmt)
    expected = sf.read(str(path), dtype="float32", always_2d=True)[0].mean(axis=1)
    audio, rate = decode_mono(path)
    assert rate == 22050 and audio.dtype == np.float32 and audio.shape == expected.shape
    assert np.abs(audio - expected).max() <= 2e-7
    if channels == 1:
        assert np.array_equal(audio, expected)


@pytest.mark.parametrize(
    "rate,target",
    [(44100, 48000), (22050, 48000), (8000, 48000), (96000, 48000), (48000, 44100),
     (96000, 44100), (11025, 44100), (44100, 22050)],
)  # fmt: skip
def test_resample_equals_torchaudio(rate, target):
    """The GEMM form of torchaudio's sinc resampler gives torchaudio's samples."""
    import torch
    import torchaudio

    from engine.audio.resample import resample

    rng = np.random.default_rng(rate + target)
    for n in (1, 2, 7, 1000, rate // 3 + 5):
        audio = (0.3 * rng.standard_normal(n)).astype(np.float32)
        ours = resample(audio, rate, target)
        theirs = torchaudio.functional.resample(torch.from_numpy(audio), rate, target).numpy()
        assert ours.dtype == np.float32 and ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() <= 1e-6, n
    assert resample(audio, rate, rate) is audio


def test_ivf_recall_against_flat(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((50, 32))
    data = normalise(centers[rng.integers(0, 50, 20000)] + 0.5 * rng.standard_normal((20000, 32)))
    ids = np.arange(20000, dtype=np.int64) + 7
    flat = build_index(ids, data)
    ivf = build_index(ids, data, ivf_threshold=1000)
    import faiss

    # The IVF holds the ids itself; exact search is an ID map over a flat index.
    assert isinstance(faiss.downcast_index(ivf), faiss.IndexIVFScalarQuantizer)
    assert isinstance(faiss.downcast_index(flat.index), faiss.IndexFlatIP)
    recalls = []
    for q in data[rng.choice(20000, 100, replace=False)]:
        exact = set(search(flat, q, 10)[0])
        approx = set(search(ivf, q, 10)[0])
        recalls.append(len(exact & approx) / 10)
    assert np.mean(recalls) >= 0.95
    # Search parameters are applied again to an index read back (they are not saved).
    from engine.search.vector_index import MIN_NPROBE, SavedIndex

    saved = SavedIndex(tmp_path / "x.faiss")
    saved.save(ivf, {"n": 1})
    faiss.downcast_index(ivf).nprobe = 1
    assert faiss.downcast_index(saved.load({"n": 1})).nprobe == MIN_NPROBE
    # Removing ids from the IVF leaves every other id answering for its own vector.
    gone = ids[::3]
    ivf.remove_ids(gone)
    for q in data[rng.choice(20000, 20, replace=False)]:
        found, _ = search(ivf, q, 10)
        assert not set(found) & set(gone)
    kept = np.setdiff1d(ids, gone)[:20]
    for file_id in kept:
        assert search(ivf, data[file_id - 7], 1)[0][0] == file_id


def test_metrics_against_hand_computed_values():
    ranked = [5, 1, 7, 2, 9, 3, 4, 8, 6, 0]
    relevant = {1, 2, 3}
    # Hits at ranks 2, 4, 6: AP = (1/2 + 2/4 + 3/6) / 3 = 0.5
    assert average_precision_at(ranked, relevant) == pytest.approx(0.5)
    assert precision_at(ranked, relevant) == pytest.approx(0.3)
    assert hit_at(ranked, relevant, 1) == 0.0 and hit_at(ranked, relevant, 2) == 1.0
    queries = [{"query": "q", "relevant": ["a", "b", "c"]}, {"query": "single", "relevant": ["a"]}]
    ids = {"a": 1, "b": 2, "c": 3}
    # By example: a→[2, 9, 3], b→[9, 9, 1]... computed by hand below.
    rankings = {1: [2, 9, 3], 2: [8, 9, 7], 3: [3, 1, 2]}
    result = evaluate_by_example(queries, ids, lambda fid: rankings[fid])
    # Example 1: targets {2,3}: hits at 1 and 3 -> (1 + 2/3)/2. Example 2: none -> 0.
    # Example 3: itself removed -> [1, 2]: (1 + 1)/2 = 1.
    assert result["overall"]["examples"] == 3 and result["overall"]["queries"] == 1
    assert result["overall"]["mAP@10"] == pytest.approx(((1 + 2 / 3) / 2 + 0 + 1) / 3)
    assert result["overall"]["P@10"] == pytest.approx((0.2 + 0 + 0.2) / 3)
    text = evaluate_text(queries, ids, lambda q: [9, 1] if q == "q" else [1])
    assert text["overall"]["R@1"] == pytest.approx(0.5) and text["overall"]["R@5"] == 1.0


def test_cli_similar_and_eval(tmp_path, library_dir):
    root = tmp_path / "lib"
    for i, f in enumerate((440, 470)):
        write(root / "tones" / f"tone{i}.wav", tone(1.0, freq=f), 22050)
    write(root / "noise" / "hiss.wav", noise(1.0, rate=22050), 22050)

    def cli(*args):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "main.py"), *args, "--library", str(library_dir)],
            capture_output=True, text=True, cwd=ROOT, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    cli("add", str(root), "-q")
    out = json.loads(cli("similar", str(root / "tones" / "tone0.wav"), "--space", "mfcc", "--json"))
    assert out[0]["path"].endswith("tone1.wav") and {"start", "end"} <= out[0].keys()
    queries = tmp_path / "q.json"
    relevant = ["tones/tone0.wav", "tones/tone1.wav"]
    queries.write_text(json.dumps([{"query": "tone", "relevant": relevant}]))
    text = json.loads(cli("eval", str(queries), "--json"))
    assert text["overall"]["R@1"] == 1.0
    by_example = json.loads(cli("eval", str(queries), "--by-example", "--space", "mfcc", "--json"))
    assert by_example["overall"]["examples"] == 2 and by_example["overall"]["mAP@10"] == 1.0


def test_standardised_index_is_saved_and_reused(tmp_path, library, monkeypatch):
    from engine.search.similar import SimilarIndex

    root = tmp_path / "m"
    for i, f in enumerate((440, 470, 900)):
        write(root / f"tone{i}.wav", tone(0.5, freq=f), 22050)
    library.add_folders([root])
    library.scan(workers=1)
    Embedder(library.catalog, [MfccSpace()]).run()
    query = VectorStore(library.catalog).file_vector(
        library.catalog.query("SELECT id FROM spaces WHERE name = 'mfcc'")[0]["id"],
        library.catalog.file_by_path(str(root / "tone0.wav"))["id"],
    )
    first = SimilarIndex(library.catalog, library.dir).query("mfcc", query, 3)
    assert (library.dir / "mfcc.files.faiss").exists()
    assert (library.dir / "mfcc.files.stats.npz").exists()

    def no_reads(*_args):
        raise AssertionError("the saved index should have been used")

    monkeypatch.setattr(VectorStore, "all_file_vectors", no_reads)
    assert SimilarIndex(library.catalog, library.dir).query("mfcc", query, 3) == first
    monkeypatch.undo()
    # A changed library (new vectors) makes the saved index stale: it is rebuilt.
    write(root / "tone3.wav", tone(0.5, freq=445), 22050)
    library.scan(workers=1)
    Embedder(library.catalog, [MfccSpace()]).run()
    assert len(SimilarIndex(library.catalog, library.dir).query("mfcc", query, 10)) == 4


def test_warm_loads_the_search_indexes_before_the_first_query(library, fake_library):
    Embedder(library.catalog, [FakeSpace()]).run()
    library.warm()
    assert "fake" in library._similar_index()._loaded  # built (and saved) ahead of time
    assert (library.dir / "fake.files.faiss").exists()


def _nuisance_catalog(tmp_path, files=240, dim=16, seed=0):
    """A catalog of `files` aisfx-space vectors in 4 kinds of sound, each file also
    pushed far along directions every kind shares (as loudness or length would):
    standardised cosine is ruled by that direction, the kinds by the others."""
    from engine.catalog.db import Catalog
    from engine.catalog.vectors import to_blob

    rng = np.random.default_rng(seed)
    catalog = Catalog(tmp_path / "lib" / "catalog.sqlite")
    root_id = catalog.add_root(str(tmp_path / "sounds"))
    space_id = VectorStore(catalog).ensure_space("aisfx", "test:v1", dim)
    centres = rng.standard_normal((4, dim))
    shared = np.linalg.qr(rng.standard_normal((dim, 3)))[0].T  # three shared directions
    kinds = {}
    with catalog.transaction() as c:
        for i in range(1, files + 1):
            kind = i % 4
            kinds[i] = kind
            vector = centres[kind] + 15.0 * rng.standard_normal(3) @ shared
            vector += 0.3 * rng.standard_normal(dim)
            path = str(tmp_path / "sounds" / f"f{i}.wav")
            c.execute(
                "INSERT INTO files (id, root_id, path, folder, name, size, mtime_ns, status, "
                "scanned_at) VALUES (?, ?, ?, ?, ?, 1, 0, 'ok', 0)",
                (i, root_id, path, str(tmp_path / "sounds"), f"f{i}.wav"),
            )
            c.execute(
                "INSERT INTO file_vectors (file_id, space_id, vector) VALUES (?, ?, ?)",
                (i, space_id, to_blob(normalise(vector.reshape(1, -1))[0])),
            )
    return catalog, space_id, kinds


def _same_kind_at_1(index, store, space_id, kinds, rank):
    hits = 0
    for fid, kind in kinds.items():
        vector = store.file_vector(space_id, fid)
        best = rank(index, vector, fid)
        hits += kinds[best] == kind
    return hits / len(kinds)


def test_whitened_find_similar_sees_past_what_every_sound_shares(tmp_path, monkeypatch):
    """Re-scoring in the library's whitened coordinates finds the same kind of sound
    where plain standardised cosine is ruled by a direction all files share; the map
    is saved with the index's statistics and reused; a small library is not whitened."""
    from engine.search import similar
    from engine.search.similar import SimilarIndex

    monkeypatch.setattr(similar, "MIN_WHITEN_FILES", 100)
    catalog, space_id, kinds = _nuisance_catalog(tmp_path)
    store = VectorStore(catalog)
    index = SimilarIndex(catalog, tmp_path / "lib")
    plain = _same_kind_at_1(
        index, store, space_id, kinds, lambda ix, v, fid: ix.query("aisfx", v, 1, {fid})[0][0]
    )
    whitened = _same_kind_at_1(
        index, store, space_id, kinds, lambda ix, v, fid: ix.nearest("aisfx", v, 1, {fid})[0][0]
    )
    assert whitened >= 0.85 and whitened > plain + 0.2, (plain, whitened)
    hits = index.nearest("aisfx", store.file_vector(space_id, 1), 10, {1})
    assert len(hits) == 10 and 1 not in [f for f, _ in hits]
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    with np.load(tmp_path / "lib" / "aisfx.files.stats.npz") as saved:
        assert saved["whiten"].shape == (16, 16)

    def no_reads(*_args):
        raise AssertionError("the saved index and its whitening should have been used")

    monkeypatch.setattr(VectorStore, "all_file_vectors", no_reads)
    again = SimilarIndex(catalog, tmp_path / "lib").nearest(
        "aisfx", store.file_vector(space_id, 1), 10, {1}
    )
    assert [f for f, _ in again] == [f for f, _ in hits]
    monkeypatch.undo()
    monkeypatch.setattr(similar, "MIN_WHITEN_FILES", 100)
    # A saved map of the wrong shape is never used: the statistics are rebuilt.
    stats = tmp_path / "lib" / "aisfx.files.stats.npz"
    with np.load(stats) as saved:
        parts = {k: saved[k] for k in saved.files}
    parts["whiten"] = np.ones((3, 3), np.float32)
    np.savez(stats, **parts)
    rebuilt = SimilarIndex(catalog, tmp_path / "lib").nearest(
        "aisfx", store.file_vector(space_id, 1), 10, {1}
    )
    assert [f for f, _ in rebuilt] == [f for f, _ in hits]
    # Below MIN_WHITEN_FILES, find-similar is the index's own ranking.
    monkeypatch.setattr(similar, "MIN_WHITEN_FILES", 1000)
    small = SimilarIndex(catalog, tmp_path / "lib2")
    vector = store.file_vector(space_id, 1)
    assert small.nearest("aisfx", vector, 5, {1}) == small.query("aisfx", vector, 5, {1})


def test_whitening_equalises_the_library_variances(monkeypatch):
    """Full whitening (power 1, no shrink) turns the covariance into the identity; the
    default map divides each principal variance by the root of its shrunk value."""
    from engine.search import similar

    rng = np.random.default_rng(1)
    mix = rng.standard_normal((6, 6))
    data = rng.standard_normal((5000, 6)) @ mix
    data -= data.mean(axis=0)
    spread = np.linalg.eigvalsh(np.cov(data, rowvar=False))
    monkeypatch.setattr(similar, "WHITEN_POWER", 1.0)
    monkeypatch.setattr(similar, "WHITEN_SHRINK", 0.0)
    full = data @ similar.whitening(data, chunk=777)
    assert np.allclose(np.cov(full, rowvar=False), np.eye(6), atol=1e-3)
    monkeypatch.undo()
    half = np.linalg.eigvalsh(np.cov(data @ similar.whitening(data), rowvar=False))
    assert half.max() / half.min() < spread.max() / spread.min()
    # Each variance v becomes v / sqrt(v + shrink * largest).
    expected = spread / np.sqrt(spread + similar.WHITEN_SHRINK * spread.max())
    assert np.allclose(np.sort(half), np.sort(expected), rtol=1e-4)


def test_windows_of_many_files_equal_each_files_windows_and_bad_blobs_are_refused(tmp_path):
    """The batched reads a search makes (vectors and windows of thousands of files) give
    what the one-file reads give; stored vectors of differing lengths are an error."""
    from engine.catalog.vectors import from_blob, from_blobs, to_blob

    catalog, space_id, _ = _nuisance_catalog(tmp_path, files=12, dim=6)
    store = VectorStore(catalog)
    rng = np.random.default_rng(3)
    for fid in (2, 5, 9):
        windows = [(float(s), float(s) + 1.0, rng.standard_normal(6)) for s in range(fid % 4 + 1)]
        store.store(space_id, fid, rng.standard_normal(6), windows)
    many = store.windows_of(space_id, list(range(1, 13)))
    assert sorted(many) == [2, 5, 9]
    for fid, got in many.items():
        # Against each row read and decoded on its own.
        rows = catalog.conn.execute(
            "SELECT start, end, vector FROM window_vectors WHERE space_id = ? AND file_id = ? "
            "ORDER BY start",
            (space_id, fid),
        ).fetchall()
        assert got.starts.tolist() == [r[0] for r in rows]
        assert got.ends.tolist() == [r[1] for r in rows]
        assert np.array_equal(got.vectors, np.stack([from_blob(r[2]) for r in rows]))
        assert np.array_equal(store.windows(space_id, fid).vectors, got.vectors)
    assert len(store.windows(space_id, 1).starts) == 0
    ids, vectors = store.file_vectors(space_id, [9, 1, 404, 5])
    assert ids.tolist() == [9, 1, 5]
    for fid, vector in zip(ids, vectors, strict=True):
        assert np.array_equal(vector, store.file_vector(space_id, int(fid)))
    blob = to_blob(np.ones(6))
    assert from_blobs([blob, blob]).shape == (2, 6)
    for bad in ([blob, blob[:-2]], [blob[:-1]], [b""]):
        with pytest.raises(ValueError):
            from_blobs(bad)


def _tones_with_vectors(tmp_path, library, files, stored, seed, space="fake"):
    """A library of `files` short tones in tmp_path/many (f00.wav...), the first `stored`
    of them with random 8-d vectors in `space`: (store, space id, file ids, rng)."""
    root = tmp_path / "many"
    for i in range(files):
        write(root / f"f{i:02d}.wav", tone(0.1, freq=200 + 10 * i), 8000)
    library.add_folders([root])
    library.scan(workers=1)
    store = VectorStore(library.catalog)
    space_id = store.ensure_space(space, "test-identity", 8)
    ids = [r[0] for r in library.catalog.conn.execute("SELECT id FROM files ORDER BY id")]
    rng = np.random.default_rng(seed)
    for file_id in ids[:stored]:
        store.store(space_id, file_id, rng.standard_normal(8).astype(np.float32))
    return store, space_id, ids, rng


@pytest.mark.parametrize(("space_name", "ivf"), [("fake", False), ("aisfx", False), ("fake", True)])
def test_the_index_follows_small_changes_in_memory_and_rebuilds_for_large_ones(
    tmp_path, library, monkeypatch, space_name, ivf
):
    """Vectors added, stored again or removed since the index was built are applied to
    the loaded index (no rebuild: minutes at a million files) and found as a fresh build
    finds them; a change of more than UPDATE_SHARE of the library rebuilds it."""
    import engine.search.similar as similar

    store, space_id, ids, rng = _tones_with_vectors(tmp_path, library, 24, 20, 0, space_name)
    if ivf:  # the IVF kind from 10 files (its lists hold the ids themselves)
        real = similar.build_index
        monkeypatch.setattr(similar, "IVF_THRESHOLD", 10)
        monkeypatch.setattr(similar, "build_index", lambda i, v: real(i, v, ivf_threshold=10))
    index = similar.SimilarIndex(library.catalog, library.dir)
    index.query(space_name, rng.standard_normal(8).astype(np.float32), 5)  # built
    builds: list[int] = []
    real_build = similar.build_index
    monkeypatch.setattr(
        similar, "build_index", lambda *a, **k: builds.append(1) or real_build(*a, **k)
    )

    new, changed, gone = ids[20], ids[3], ids[7]
    store.store(space_id, new, rng.standard_normal(8).astype(np.float32))
    store.store(space_id, changed, rng.standard_normal(8).astype(np.float32))
    with library.catalog.transaction() as c:
        c.execute("DELETE FROM file_vectors WHERE space_id = ? AND file_id = ?", (space_id, gone))
    for file_id in (new, changed):
        vector = store.file_vector(space_id, file_id)
        assert index.query(space_name, vector, 1)[0][0] == file_id
    everything = index.query(space_name, rng.standard_normal(8).astype(np.float32), 50)
    assert gone not in {f for f, _ in everything} and len(everything) == 20
    assert builds == []  # brought up to date, not rebuilt
    if space_name == "fake" and not ivf:  # not standardised: the scores of a fresh build
        fresh = similar.SimilarIndex(library.catalog, tmp_path / "fresh-index")
        (tmp_path / "fresh-index").mkdir()
        for _ in range(5):
            q = rng.standard_normal(8).astype(np.float32)
            ours, theirs = index.query(space_name, q, 10), fresh.query(space_name, q, 10)
            assert [f for f, _ in ours] == [f for f, _ in theirs]
            assert np.allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)
        builds.clear()
    # Six more files is more than a quarter of what the index holds: rebuilt.
    for file_id in ids[:6]:
        store.store(space_id, file_id, rng.standard_normal(8).astype(np.float32))
    index.query(space_name, rng.standard_normal(8).astype(np.float32), 5)
    assert builds == [1]


def test_a_loaded_saved_index_follows_changes_once_tracked(tmp_path, library, monkeypatch):
    """An index read from its file knows what it holds only after track() (Library.warm
    calls it); until then a change rebuilds it, after it the change is applied."""
    import engine.search.similar as similar

    store, space_id, ids, rng = _tones_with_vectors(tmp_path, library, 12, 10, 1)
    similar.SimilarIndex(library.catalog, library.dir).space_id("fake")  # built and saved
    builds: list[int] = []
    real_build = similar.build_index
    monkeypatch.setattr(
        similar, "build_index", lambda *a, **k: builds.append(1) or real_build(*a, **k)
    )
    for tracked in (False, True):
        index = similar.SimilarIndex(library.catalog, library.dir)
        index.space_id("fake")  # read from its file
        if tracked:
            index.track("fake")
        assert builds == []
        file_id = ids[10 + tracked]
        store.store(space_id, file_id, rng.standard_normal(8).astype(np.float32))
        vector = store.file_vector(space_id, file_id)
        assert index.query("fake", vector, 1)[0][0] == file_id
        assert builds == ([] if tracked else [1])
        builds.clear()


def test_a_slow_update_rests_before_the_next_so_typing_does_not_pay_each_change(
    tmp_path, library, monkeypatch
):
    """An update slower than UPDATE_QUIET is not repeated for UPDATE_PACE times as long:
    meanwhile queries use the index as it is, and after it the next change is applied."""
    import engine.search.similar as similar

    store, space_id, ids, rng = _tones_with_vectors(tmp_path, library, 12, 9, 2)
    index = similar.SimilarIndex(library.catalog, library.dir)
    index.space_id("fake")
    clock = [0.0]

    def monotonic():
        clock[0] += 1.0  # every reading a second later: each update "takes" a second
        return clock[0]

    monkeypatch.setattr(similar.time, "monotonic", monotonic)

    def nearest_to(file_id):
        return index.query("fake", store.file_vector(space_id, file_id), 1)[0][0]

    store.store(space_id, ids[9], rng.standard_normal(8).astype(np.float32))
    assert nearest_to(ids[9]) == ids[9]  # applied; it took "a second": rests for ten
    store.store(space_id, ids[10], rng.standard_normal(8).astype(np.float32))
    assert nearest_to(ids[10]) != ids[10]  # resting: not in the index yet
    clock[0] += 100
    assert nearest_to(ids[10]) == ids[10]


def test_a_new_file_taking_the_newest_deleted_rows_place_is_seen_as_new(
    tmp_path, library, monkeypatch
):
    """SQLite gives the newest deleted row's id and rowid to the next row: a file removed
    and another added in its place is still a change the index follows (by the vector's
    version), and an index replaced by a newer saved one keeps following changes."""
    import engine.search.similar as similar

    store, space_id, ids, rng = _tones_with_vectors(tmp_path, library, 12, 12, 3)
    root = tmp_path / "many"
    index = similar.SimilarIndex(library.catalog, library.dir)
    index.track("fake")
    newest = library.catalog.file_by_path(str(root / "f11.wav"))
    with library.catalog.transaction() as c:
        c.execute("DELETE FROM files WHERE id = ?", (newest["id"],))
    (root / "f11.wav").unlink()
    write(root / "zz_new.wav", tone(0.1, freq=900), 8000)
    library.scan(workers=1)
    new = library.catalog.file_by_path(str(root / "zz_new.wav"))["id"]
    assert new == newest["id"]  # the same id again...
    store.store(space_id, new, rng.standard_normal(8).astype(np.float32))
    hit = index.query("fake", store.file_vector(space_id, new), 1)[0]
    assert hit[0] == new and hit[1] == pytest.approx(1.0, abs=1e-3)  # ...its new vector
    # Another process saves a newer index; this one loads it and goes on following.
    other = similar.SimilarIndex(library.catalog, library.dir)
    store.store(space_id, ids[0], rng.standard_normal(8).astype(np.float32))
    other.save("fake")
    index.space_id("fake")  # the saved one, now current
    builds: list[int] = []
    real_build = similar.build_index
    monkeypatch.setattr(
        similar, "build_index", lambda *a, **k: builds.append(1) or real_build(*a, **k)
    )
    store.store(space_id, ids[1], rng.standard_normal(8).astype(np.float32))
    assert index.query("fake", store.file_vector(space_id, ids[1]), 1)[0][0] == ids[1]
    assert builds == []
