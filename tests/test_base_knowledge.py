"""Base knowledge: text search on a library whose names say nothing, learned elsewhere.

A "training" library of named sounds in four directions teaches the file-level adapter
and the category classifier (a four-row UCS table); a second library of unnamed files
with the same audio model is then searched by words through it alone, blended with its
own adapter as names appear, and refused for another audio model. Mechanics run with the
bag-of-words encoder; the library-level test uses the real sentence encoder.
"""

import json

import numpy as np
import pytest

from engine.adapt.base import (
    HANDOVER_PAIRS,
    build_base,
    compose_text_space,
    load_base,
    own_weight,
)
from engine.adapt.categories import CategoryKnowledge, CategoryOptions
from engine.adapt.text_space import AdaptedTextSpace, BlendedTextSpace
from engine.adapt.training import train_adapter
from engine.embed.pipeline import Embedder
from engine.errors import AdapterInvalid, ModelUnavailable, NothingToLearn
from engine.eval.hidden import evaluate_hidden
from engine.scan.ucs import UcsEntry, UcsTable
from engine.search.hybrid import hybrid_search
from engine.search.similar import SimilarIndex
from tests.audio_factory import write
from tests.fakes import NAMED, SMALL, FakeAisfx, WordEncoder, build, dc, with_member
from tests.requires import needs_encoder

UCS = UcsTable(
    [
        UcsEntry("WTHRThun", "WEATHER", "THUNDER", "thunder storm rumble crack", ("thunder",)),
        UcsEntry("RAINGen", "RAIN", "GENERAL", "rain drops falling on a roof", ("rain",)),
        UcsEntry("DOORWood", "DOORS", "WOOD", "a wooden door slam knock creak", ("door",)),
        UcsEntry("BIRDSong", "BIRDS", "SONG", "a bird chirp call singing tweet", ("bird",)),
    ]
)
FAST = CategoryOptions(hidden=16, steps=150)


def unnamed_library(tmp_path, name="unnamed", identity="fake:v1"):
    """A library of four numbered files, one per sound direction (bird at 0.3, door 0.2)."""
    from engine.library import Library

    root = tmp_path / f"{name}_files"
    for i, level in enumerate((0.0, 0.1, 0.2, 0.3)):
        write(root / f"{1000 + i}.wav", dc(1, level), 8000)
    lib = Library(tmp_path / name)
    lib.add_folders([root])
    lib.scan(workers=1)
    space = FakeAisfx(identity)
    Embedder(lib.catalog, [space]).run()
    return lib


def names_of(catalog, index, space, query):
    results = hybrid_search(catalog, index, space, query, 10, content_only=True)
    return [r.name for r in results]


def test_base_knowledge_finds_sounds_in_a_library_that_says_nothing(tmp_path, library):
    build(tmp_path, library, FakeAisfx())
    encoder = WordEncoder()
    out = tmp_path / "knowledge"
    base = build_base(library.catalog, UCS, out, options=SMALL, category_options=FAST,
                      encoder=encoder)  # fmt: skip
    assert base.adapter.stats["pairs"] == 40
    assert (base.adapter.file_ids == -1).all()  # the training library's ids mean nothing
    assert sorted(base.categories.catids) == sorted(UCS.by_catid)
    loaded = load_base("aisfx", out)
    assert loaded is not None
    other = unnamed_library(tmp_path)
    try:
        # Nothing to learn from: the library's own adapter is impossible...
        with pytest.raises(NothingToLearn):
            train_adapter(other.catalog, "aisfx", SMALL, encoder=encoder)
        index = SimilarIndex(other.catalog, other.dir)
        space = compose_text_space(other.catalog, index, None, loaded, encoder=encoder)
        assert isinstance(space, AdaptedTextSpace) and space.categories is not None
        # It cannot tell which files are described (its ids are another catalog's).
        every = np.array([r["id"] for r in other.catalog.query("SELECT id FROM files")])
        assert space.described(every) is None
        # ...but the base knowledge finds the bird and the door by words.
        assert names_of(other.catalog, index, space, "bird")[0] == "1003.wav"
        assert names_of(other.catalog, index, space, "door")[0] == "1002.wav"
        assert names_of(other.catalog, index, space, "thunder")[0] == "1000.wav"
        # The category part alone also knows: a query that matches no caption word but
        # reads like a category's explanation ("tweet" only in BIRDSong's words).
        dist = loaded.categories.query_distribution(encoder.encode(["tweet singing"])[0])
        assert loaded.categories.catids[int(np.argmax(dist))] == "BIRDSong"
    finally:
        other.close()


def test_the_library_blends_its_own_adapter_in_by_how_much_it_knows(tmp_path, library, monkeypatch):
    build(tmp_path, library, FakeAisfx())
    encoder = WordEncoder()
    base = build_base(library.catalog, UCS, tmp_path / "k", options=SMALL,
                      category_options=FAST, encoder=encoder)  # fmt: skip
    assert own_weight(0) == 0.0 and own_weight(HANDOVER_PAIRS) == 0.5
    assert own_weight(10) < own_weight(100) < own_weight(10_000) < 1.0
    adapter = train_adapter(library.catalog, "aisfx", SMALL, encoder=encoder)
    index = SimilarIndex(library.catalog, library.dir)
    space = compose_text_space(library.catalog, index, adapter, base, encoder=encoder)
    assert isinstance(space, BlendedTextSpace)
    assert space.own_weight == pytest.approx(40 / (40 + HANDOVER_PAIRS))
    ranked = names_of(library.catalog, index, space, "bird")
    assert "pcv637.wav" in ranked[:11]
    # Blended scores are the weighted sum of the two spaces' scores.
    ids = [r[0] for r in library.catalog.conn.execute("SELECT id FROM files ORDER BY id")]
    own, other = space.own.score("door", ids), space.base.score("door", ids)
    blended = space.score("door", ids)
    w = space.own_weight
    assert all(blended[f] == pytest.approx(w * own[f] + (1 - w) * other[f]) for f in own)
    # Without base knowledge the own adapter answers alone.
    alone = compose_text_space(library.catalog, index, adapter, None, encoder=encoder)
    assert isinstance(alone, AdaptedTextSpace) and alone.categories is None
    # So it does once its own names have taken over (the base would count under 5%).
    import engine.adapt.base as base_module

    monkeypatch.setattr(base_module, "HANDOVER_PAIRS", 2)  # 40 pairs: the base's say is 4.8%
    taken_over = compose_text_space(library.catalog, index, adapter, base, encoder=encoder)
    assert isinstance(taken_over, AdaptedTextSpace) and taken_over.categories is None
    monkeypatch.setattr(base_module, "HANDOVER_PAIRS", 3)  # 7.0%: still blended
    assert isinstance(
        compose_text_space(library.catalog, index, adapter, base, encoder=encoder),
        BlendedTextSpace,
    )


def test_base_knowledge_for_another_audio_model_is_refused_not_mixed(tmp_path, library):
    build(tmp_path, library, FakeAisfx())
    encoder = WordEncoder()
    base = build_base(library.catalog, UCS, tmp_path / "k", options=SMALL,
                      category_options=FAST, encoder=encoder)  # fmt: skip
    other = unnamed_library(tmp_path, identity="fake:v2")
    try:
        index = SimilarIndex(other.catalog, other.dir)
        assert compose_text_space(other.catalog, index, None, base, encoder=encoder) is None
        # Nor is a speech library of another model mixed into what is learned.
        with pytest.raises(ModelUnavailable):
            build_base(library.catalog, UCS, tmp_path / "k2", options=SMALL,
                       category_options=FAST, encoder=encoder, speech=other.catalog)  # fmt: skip
    finally:
        other.close()


def test_spoken_words_teach_the_categories_as_speech_not_by_their_names(tmp_path, library):
    """Voice prompts named by their transcripts ("1000.wav" here: any name) all join the
    categories under one speech caption, whatever they are called."""
    build(tmp_path, library, FakeAisfx())
    encoder = WordEncoder()
    voice = UcsEntry("VOXMale", "VOICES", "MALE", "a man speaking words", ())
    table = UcsTable([*UCS.by_catid.values(), voice])
    speech = unnamed_library(tmp_path, "speech")
    try:
        base = build_base(
            library.catalog, table, tmp_path / "k", options=SMALL, category_options=FAST,
            encoder=encoder, speech=speech.catalog,
        )  # fmt: skip
    finally:
        speech.close()
    assert base.categories.stats["speech"] == 4 and base.categories.stats["described"] == 40
    assert base.adapter.stats["pairs"] == 40  # file-level knowledge: described files only
    row = base.categories.catids.index("VOXMale")
    assert base.categories.mass[row] > 2  # the four voices taught it


def test_damaged_or_hostile_category_files_are_refused(tmp_path, library):
    build(tmp_path, library, FakeAisfx())
    base = build_base(library.catalog, UCS, tmp_path / "k", options=SMALL,
                      category_options=FAST, encoder=WordEncoder())  # fmt: skip
    path = tmp_path / "k" / "aisfx.categories.npz"
    again = CategoryKnowledge.load(path)
    assert again.catids == base.categories.catids
    np.testing.assert_allclose(again.w2, base.categories.w2, atol=1e-2)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, meta=np.array([{"evil": 1}], dtype=object))

    short = with_member(path, tmp_path / "short.npz", "b2.npy", base.categories.b2[:-1])
    not_finite = np.full_like(base.categories.b1, np.nan)
    nan = with_member(path, tmp_path / "nan.npz", "b1.npy", not_finite)
    for bad in (truncated, pickled, short, nan):
        with pytest.raises(AdapterInvalid):
            CategoryKnowledge.load(bad)
    # A shipped folder with a damaged file is no base knowledge, not a crash.
    (tmp_path / "k" / "aisfx.categories.npz").write_bytes(nan.read_bytes())
    assert load_base("aisfx", tmp_path / "k") is None
    assert load_base("aisfx", tmp_path / "nowhere") is None


def test_never_seen_protocol_measures_the_base_knowledge_alone(tmp_path, library):
    build(tmp_path, library, FakeAisfx())
    encoder = WordEncoder()
    base = build_base(library.catalog, UCS, tmp_path / "k", options=SMALL,
                      category_options=FAST, encoder=encoder)  # fmt: skip

    def named(level, extra):
        return [f"{n.replace(' ', '_')}_{i}.wav" for i, n in enumerate(NAMED[level] * 2)] + [extra]

    # Every file sounding like the query is relevant (the names are hidden from search).
    queries = [{"query": "bird", "relevant": named(0.3, "pcv637.wav")},
               {"query": "door", "relevant": named(0.2, "zz_0042.wav")}]  # fmt: skip
    result = evaluate_hidden(library.catalog, queries, 1.0, 1, SMALL, encoder=encoder, base=base)
    assert result["hidden"] == result["files"] == 42
    assert list(result["configs"]) == ["base knowledge only"]  # nothing else to learn from
    content = result["configs"]["base knowledge only"]["content"]["overall"]
    assert content["queries"] == 2 and content["AP@10"] > 0.9
    with pytest.raises(NothingToLearn):
        evaluate_hidden(library.catalog, queries, 1.0, 1, SMALL, encoder=encoder)
    half = evaluate_hidden(library.catalog, queries, 0.5, 1, SMALL, encoder=encoder, base=base)
    assert set(half["configs"]) == {"base knowledge only", "adapted"}
    assert 0 < half["configs"]["adapted"]["blend"] < 1


@needs_encoder
def test_cli_builds_shows_and_the_app_searches_an_unnamed_library_with_it(
    tmp_path, library, monkeypatch, capsys
):
    import main
    from engine.adapt import base as base_module

    build(tmp_path, library, FakeAisfx())
    table = tmp_path / "ucs.json"
    table.write_text(json.dumps([
        {"CatID": e.catid, "Category": e.category, "SubCategory": e.subcategory,
         "Explanations": e.explanation, "Synonyms": list(e.synonyms)}
        for e in UCS.by_catid.values()
    ]))  # fmt: skip
    out = tmp_path / "knowledge"
    assert main.main(["knowledge", "build", "--library", str(library.dir), "--ucs", str(table),
                      "--out", str(out)]) == 0  # fmt: skip
    assert "learned from 40 described files" in capsys.readouterr().out
    assert main.main(["knowledge", "show", "--out", str(out)]) == 0
    assert "categories: 4" in capsys.readouterr().out
    assert main.main(["knowledge", "show", "--out", str(tmp_path / "none")]) == 1
    assert "no usable base knowledge" in capsys.readouterr().out
    monkeypatch.setattr(base_module, "KNOWLEDGE_DIR", out)
    other = unnamed_library(tmp_path)
    try:
        other.adapt_on_demand = False  # the app: no learning on the GUI's side
        assert other.text_space() is not None
        assert other.search("birds singing", 4, mode="content")[0].name == "1003.wav"
        assert other.search("slamming a door", 4, mode="content")[0].name == "1002.wav"
        other.use_base = False
        other._base = None
        other._text_space = None
        assert other.text_space() is None
    finally:
        other.close()
    # The CLI: search and the never-seen eval on the unnamed library.
    unnamed = str(tmp_path / "unnamed")
    assert main.main(["search", "bird song", "--library", unnamed, "--content-only",
                      "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)[0]["name"] == "1003.wav"
    queries = tmp_path / "q.json"
    queries.write_text(json.dumps([{"query": "bird", "relevant": ["1003.wav"]}]))
    assert main.main(["eval", str(queries), "--library", unnamed, "--hide-names", "1.0",
                      "--content-only", "--json"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["configs"]["base knowledge only"]["content"]["overall"]["R@1"] == 1.0


@needs_encoder
def test_the_shipped_base_knowledge_is_small_safe_and_names_its_models():
    from engine.adapt.base import KNOWLEDGE_DIR, base_files
    from engine.models.text_encoder import encoder_identity

    files = base_files(KNOWLEDGE_DIR)
    assert sum(f.stat().st_size for f in files) <= 30 << 20
    for f in files:  # plain arrays only: numpy refuses to unpickle anything here
        with np.load(f, allow_pickle=False) as data:
            assert all(not data[k].dtype.hasobject for k in data.files)
    base = load_base()
    assert base is not None
    assert base.adapter.audio_identity.startswith("aisfx-")
    assert base.adapter.text_identity == base.categories.text_identity == encoder_identity()
    assert (base.adapter.file_ids == -1).all() and len(base.categories.catids) == 752


def test_category_scores_survive_their_cache_filling_up(tmp_path, library, monkeypatch):
    """A query whose candidates overflow the per-file category cache is scored, not
    failed, and scores as it does with room to spare (found at 100,000 files)."""
    import engine.adapt.text_space as text_space

    build(tmp_path, library, FakeAisfx())
    encoder = WordEncoder()
    base = build_base(library.catalog, UCS, tmp_path / "knowledge", options=SMALL,
                      category_options=FAST, encoder=encoder)  # fmt: skip
    index = SimilarIndex(library.catalog, library.dir)
    ids = [r[0] for r in library.catalog.conn.execute("SELECT id FROM files ORDER BY id")]
    roomy = AdaptedTextSpace(library.catalog, index, base.adapter, UCS, encoder,
                             categories=base.categories, own_statistics=True)  # fmt: skip
    expected = roomy.score("door", ids)
    monkeypatch.setattr(text_space, "LOG_PROB_CACHE_FILES", 5)
    tight = AdaptedTextSpace(library.catalog, index, base.adapter, UCS, encoder,
                             categories=base.categories, own_statistics=True)  # fmt: skip
    tight.score("door", ids[:3])  # some files cached, then a call that overflows the cache
    scores = tight.score("door", ids)
    assert scores.keys() == expected.keys()
    assert np.allclose([scores[i] for i in ids], [expected[i] for i in ids], atol=1e-5)


def test_base_knowledge_standardises_by_the_index_statistics_without_sampling(
    tmp_path, library, monkeypatch
):
    """Base knowledge standardises the library's vectors by the search index's own mean
    and spread (all files, already in memory): the same numbers a sample of every file
    gives, and no vectors are read for them."""
    import engine.adapt.text_space as text_space

    build(tmp_path, library, FakeAisfx())
    encoder = WordEncoder()
    base = build_base(library.catalog, UCS, tmp_path / "knowledge", options=SMALL,
                      category_options=FAST, encoder=encoder)  # fmt: skip
    index = SimilarIndex(library.catalog, library.dir)
    index.space_id("aisfx")  # loaded, as a query finds it
    sampled: list[int] = []
    monkeypatch.setattr(text_space.AdaptedTextSpace, "_sample",
                        lambda self, size: sampled.append(size))  # fmt: skip
    space = AdaptedTextSpace(library.catalog, index, base.adapter, UCS, encoder,
                             categories=base.categories, own_statistics=True)  # fmt: skip
    assert sampled == []
    monkeypatch.undo()
    from engine.catalog.vectors import VectorStore

    ids, raw = VectorStore(library.catalog).all_file_vectors(space.space_id)
    assert np.allclose(space._mean, raw.mean(0), atol=1e-6)
    assert np.allclose(space._std, raw.std(0) + 1e-6, atol=1e-6)
