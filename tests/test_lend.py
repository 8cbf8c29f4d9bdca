"""Captions lent by neighbours: each file's nearest described files by sound lend it their
captions (engine/adapt/training.py lend_table, engine/adapt/text_space.py)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.adapt.adapter import Adapter, is_stale, read_meta
from engine.adapt.text_space import AdaptedTextSpace
from engine.adapt.training import lend_table, train_adapter
from engine.catalog.vectors import VectorStore, normalise
from engine.errors import AdapterInvalid
from engine.search.similar import SimilarIndex
from tests.fakes import SMALL, WordEncoder, build, with_member


def _file_id(library, name: str) -> int:
    return library.catalog.conn.execute("SELECT id FROM files WHERE name = ?", (name,)).fetchone()[
        0
    ]


def test_every_file_borrows_the_captions_of_the_described_files_it_sounds_like(tmp_path, library):
    build(tmp_path, library)
    adapter = train_adapter(library.catalog, "fake", SMALL, encoder=WordEncoder())
    assert adapter.lend is not None
    ids, rows, weights = adapter.lend
    embedded = VectorStore(library.catalog).embedded_ids(
        VectorStore(library.catalog).space("fake")["id"]
    )
    np.testing.assert_array_equal(ids, np.sort(embedded))  # every embedded file, sorted
    assert rows.shape == weights.shape == (len(ids), SMALL.lend_neighbours)
    np.testing.assert_allclose(weights.astype(np.float32).sum(axis=1), 1.0, atol=2e-3)
    at = {int(f): i for i, f in enumerate(ids)}
    for name, word in (("pcv637.wav", "bird"), ("zz_0042.wav", "door")):
        lent = [adapter.captions[r] for r in rows[at[_file_id(library, name)]]]
        assert all(word in caption for caption in lent), (name, lent)


def test_lend_table_matches_brute_force_and_keeps_a_described_file_itself():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    ids = rng.permutation(np.arange(100, 160)).astype(np.int64)
    mean, std = vectors.mean(0), vectors.std(0) + 1e-6
    captioned = np.arange(0, 60, 2)  # every other file has a caption
    audio = normalise((vectors[captioned] - mean) / std)
    sorted_ids, rows, weights = lend_table(
        ids, vectors, mean, std, audio, SMALL.replace(lend_neighbours=3)
    )
    np.testing.assert_array_equal(sorted_ids, np.sort(ids))
    everything = normalise((vectors - mean) / std)
    for i in range(60):
        sims = audio @ everything[i]
        j = int(np.searchsorted(sorted_ids, ids[i]))
        assert set(rows[j].tolist()) == set(np.argsort(-sims)[:3].tolist())
        assert weights[j].argmax() == np.argmax(sims[rows[j]])  # closer weighs more
        if i % 2 == 0:
            assert rows[j][0] == i // 2  # a described file's own caption comes first


def test_a_query_lifts_the_unnamed_files_whose_neighbours_its_words_describe(tmp_path, library):
    build(tmp_path, library)
    encoder = WordEncoder()
    adapter = train_adapter(library.catalog, "fake", SMALL, encoder=encoder)
    index = SimilarIndex(library.catalog, library.dir)
    space = AdaptedTextSpace(library.catalog, index, adapter, encoder=encoder)
    bird, door = _file_id(library, "pcv637.wav"), _file_id(library, "zz_0042.wav")
    ids = np.array([bird, door], dtype=np.int64)
    space.score("bird", [bird, door])
    lent_bird = space._lent("bird", ids)
    lent_door = space._lent("door", ids)
    assert lent_bird[0] > lent_bird[1] and lent_door[1] > lent_door[0]
    # A file embedded after the adapter learned has no row: the mean over all captions.
    unknown = space._lent("bird", np.array([10**9], dtype=np.int64))
    sims = adapter.text_vectors @ space.encoded["bird"]
    assert unknown[0] == pytest.approx(float(sims.mean()), abs=1e-5)
    # Off (weight 0, or no table): the lent captions change nothing.
    off = AdaptedTextSpace(
        library.catalog, index, Adapter(**{**adapter.__dict__, "lend": None}), encoder=encoder
    )
    assert off._lent("bird", ids) is None
    assert off.score("bird", [bird, door]) != space.score("bird", [bird, door])


def test_lent_captions_round_trip_and_damaged_ones_are_refused(tmp_path, library):
    build(tmp_path, library)
    adapter = train_adapter(library.catalog, "fake", SMALL, encoder=WordEncoder())
    path = tmp_path / "a.adapter.npz"
    adapter.save(path)
    loaded = Adapter.load(path)
    assert loaded.lend is not None
    for a, b in zip(loaded.lend, adapter.lend, strict=True):
        np.testing.assert_array_equal(a, b)
    rows = adapter.lend[1].copy()
    rows[0, 0] = len(adapter.captions)  # past the captions
    with pytest.raises(AdapterInvalid):
        Adapter.load(with_member(path, tmp_path / "past.npz", "lend_rows.npy", rows))
    with pytest.raises(AdapterInvalid):  # not sorted: a lookup would find the wrong file
        Adapter.load(with_member(path, tmp_path / "order.npz", "lend_ids.npy",
                                 adapter.lend[0][::-1].copy()))  # fmt: skip
    with pytest.raises(AdapterInvalid):  # one row short of its ids
        Adapter.load(with_member(path, tmp_path / "short.npz", "lend_rows.npy", rows[1:]))
    # An adapter from elsewhere lends nothing here: its file ids are another library's.
    library.use_adapter(path)
    assert library._adapter_override.lend is None


def test_an_adapter_from_before_lent_captions_is_learned_again(tmp_path, library):
    build(tmp_path, library)
    adapter = train_adapter(library.catalog, "fake", SMALL, encoder=WordEncoder())
    path = tmp_path / "a.adapter.npz"
    adapter.save(path)
    meta = read_meta(path)
    assert not is_stale(meta, library.catalog)
    del meta["options"]["lend_weight"]  # what an adapter of the last release says
    assert is_stale(meta, library.catalog)
