"""The audio model's own classifiers as knowledge (engine/adapt/classes.py).

A planted classifier over the fake space's four directions (bird, door, thunder; no rain
class) stands in for aisfx's heads: the alignment must find which category each class
is, the base knowledge must carry it and use it for a library that says nothing, and a
damaged or mismatched file must be refused. The real checkpoint's heads load when
aisfx is installed.
"""

import numpy as np
import pytest

from engine.adapt.base import build_base, classes_file, compose_text_space, load_base
from engine.adapt.classes import ClassKnowledge, monotone_alignment
from engine.errors import AdapterInvalid, ModelUnavailable
from engine.search.similar import SimilarIndex
from tests.fakes import SMALL, FakeAisfx, WordEncoder, build, with_member
from tests.test_base_knowledge import FAST, UCS, names_of, unnamed_library


def planted_head():
    """Three classes, alphabetical (BIRDS, DOORS, WEATHER; RAIN missing), reading the fake
    space's directions 3 (bird), 2 (door) and 0 (thunder)."""
    eye = np.eye(4, dtype=np.float32)
    last = np.zeros((3, 4), dtype=np.float32)
    last[0, 3], last[1, 2], last[2, 0] = 8.0, 8.0, 8.0
    zero = np.zeros(4, dtype=np.float32)
    return {"planted": [(eye, zero), (eye, zero.copy()), (last, np.zeros(3, np.float32))]}


def test_monotone_alignment_keeps_order_and_finds_the_missing_columns():
    rng = np.random.default_rng(0)
    truth = [0, 2, 3, 5, 6, 9]  # six classes among ten sorted categories
    scores = rng.normal(0, 0.1, (6, 10))
    for row, col in enumerate(truth):
        scores[row, col] += 1.0
    assert monotone_alignment(scores) == truth
    # Order wins over a stronger out-of-order match: row 1 cannot go before row 0.
    crossed = np.array([[0.0, 1.0, 0.0], [2.0, 0.0, 0.5]])
    assert monotone_alignment(crossed) == [1, 2]
    with pytest.raises(ValueError):
        monotone_alignment(np.zeros((4, 3)))


def test_base_knowledge_aligns_the_classifier_and_searches_with_it(tmp_path, library):
    build(tmp_path, library, FakeAisfx())
    encoder = WordEncoder()
    out = tmp_path / "k"
    base = build_base(library.catalog, UCS, out, options=SMALL, category_options=FAST,
                      encoder=encoder, heads=planted_head(), scale=1.0)  # fmt: skip
    classes = base.classes
    assert classes is not None and classes.categories == ["BIRDS", "DOORS", "RAIN", "WEATHER"]
    assert classes.heads[0].category_of_class.tolist() == [0, 1, 3]  # RAIN has no class
    loaded = load_base("aisfx", out)
    assert loaded is not None and loaded.classes is not None
    assert loaded.classes.heads[0].category_of_class.tolist() == [0, 1, 3]
    planted = planted_head()["planted"][2][0]
    np.testing.assert_allclose(loaded.classes.heads[0].layers[2][0], planted)
    # A bird-like sound reads as BIRDS to the classifier, a door as DOORS.
    lp = loaded.classes.log_probs(np.array([[0, 0, 0, 1], [0, 0, 1, 0]], dtype=np.float32))
    assert lp[0].argmax() == 0 and lp[1].argmax() == 1
    # A query reading like bird song weighs the BIRDS category most.
    dist = loaded.categories.text_distribution(encoder.encode(["bird"])[0])
    assert loaded.classes.query_weights(dist).argmax() == 0
    assert loaded.classes.query_weights(dist).sum() == pytest.approx(1.0, abs=1e-5)
    other = unnamed_library(tmp_path)
    try:
        index = SimilarIndex(other.catalog, other.dir)
        space = compose_text_space(other.catalog, index, None, loaded, encoder=encoder)
        assert space is not None and space.classes is not None
        assert names_of(other.catalog, index, space, "bird")[0] == "1003.wav"
        assert names_of(other.catalog, index, space, "door")[0] == "1002.wav"
        # The class part changes the scores (it is used), not only carried along.
        ids = [r[0] for r in other.catalog.conn.execute("SELECT id FROM files ORDER BY id")]
        with_classes = space.score("bird", ids)
        space.classes = None
        space._stats_cache.clear()
        without = space.score("bird", ids)
        assert any(abs(with_classes[f] - without[f]) > 1e-3 for f in ids)
    finally:
        other.close()


def test_without_classifiers_no_class_file_is_left(tmp_path, library):
    build(tmp_path, library, FakeAisfx())
    out = tmp_path / "k"
    build_base(library.catalog, UCS, out, options=SMALL, category_options=FAST,
               encoder=WordEncoder(), heads=planted_head(), scale=1.0)  # fmt: skip
    assert classes_file(out, "aisfx").exists()
    base = build_base(library.catalog, UCS, out, options=SMALL, category_options=FAST,
                      encoder=WordEncoder())  # fmt: skip
    assert base.classes is None  # the fake model has no classifiers of its own
    assert not classes_file(out, "aisfx").exists()  # no stale file for other knowledge
    assert load_base("aisfx", out).classes is None


def test_damaged_or_mismatched_class_files_are_refused(tmp_path, library):
    build(tmp_path, library, FakeAisfx())
    out = tmp_path / "k"
    build_base(library.catalog, UCS, out, options=SMALL, category_options=FAST,
               encoder=WordEncoder(), heads=planted_head(), scale=1.0)  # fmt: skip
    path = classes_file(out, "aisfx")
    data = path.read_bytes()

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, meta=np.array([{"evil": 1}], dtype=object))
    far = with_member(path, tmp_path / "far.npz", "h0_classes.npy", np.array([0, 1, 7], np.int32))
    nan = with_member(path, tmp_path / "nan.npz", "h0_b0.npy", np.full(4, np.nan, np.float32))
    chain = with_member(path, tmp_path / "chain.npz", "h0_w1.npy", np.zeros((4, 5), np.float16))
    for bad in (truncated, pickled, far, nan, chain):
        with pytest.raises(AdapterInvalid):
            ClassKnowledge.load(bad)
    # A damaged class file costs only the classes: the rest of the base still serves.
    path.write_bytes(nan.read_bytes())
    base = load_base("aisfx", out)
    assert base is not None and base.classes is None
    # Classes for another audio model are refused by the text space.
    path.write_bytes(data)
    base = load_base("aisfx", out)
    assert base is not None and base.classes is not None
    base.classes.audio_identity = "fake:v2"
    from engine.adapt.text_space import AdaptedTextSpace

    with pytest.raises(ModelUnavailable):
        AdaptedTextSpace(library.catalog, None, base.adapter, None, WordEncoder(),
                         categories=base.categories, classes=base.classes,
                         own_statistics=True)  # fmt: skip


def test_the_checkpoints_ucs_heads_load_safely(tmp_path):
    import torch

    from engine.models.aisfx.model import UCS_HEADS, checkpoint_path, load_ucs_heads

    fake = tmp_path / "heads.pth"
    weights = {}
    datasets = {}
    for i, name in enumerate(UCS_HEADS):
        datasets[name] = (i, 5)
        for layer, shape in ((0, (256, 512)), (2, (128, 256)), (4, (5, 128))):
            weights[f"fc.{i}.{layer}.weight"] = torch.zeros(shape)
            weights[f"fc.{i}.{layer}.bias"] = torch.zeros(shape[0])
    torch.save((weights, datasets), fake)
    heads = load_ucs_heads(fake)
    assert set(heads) == set(UCS_HEADS) and heads["prosfx"][2][0].shape == (5, 128)
    del weights["fc.1.2.bias"]
    torch.save((weights, datasets), fake)
    with pytest.raises(ModelUnavailable):
        load_ucs_heads(fake)
    if checkpoint_path() is None:
        pytest.skip("aisfx is not installed")
    real = load_ucs_heads()
    assert [real[n][2][0].shape[0] for n in UCS_HEADS] == [78, 79, 69]


def test_the_shipped_class_knowledge_matches_the_shipped_categories():
    base = load_base()
    if base is None:
        pytest.skip("no shipped base knowledge")
    assert base.classes is not None
    assert base.classes.audio_identity == base.adapter.audio_identity
    assert len(base.classes.categories) == 82 and len(base.classes.heads) == 3
    assert base.classes.scale > 1


def test_knowledge_show_names_the_classifiers(tmp_path, library, capsys):
    import main

    build(tmp_path, library, FakeAisfx())
    out = tmp_path / "k"
    build_base(library.catalog, UCS, out, options=SMALL, category_options=FAST,
               encoder=WordEncoder(), heads=planted_head(), scale=1.0)  # fmt: skip
    assert main.main(["knowledge", "show", "--out", str(out)]) == 0
    assert "classifiers: planted over 4 UCS categories" in capsys.readouterr().out
