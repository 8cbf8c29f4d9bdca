"""Files beside the catalog are written whole or not at all (engine/catalog/sidefiles.py)."""

import os
import threading

import numpy as np
import pytest

from engine.catalog.sidefiles import FILE_MODE, written
from engine.errors import CannotWrite


def test_a_finished_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "index.faiss"
    path.write_bytes(b"old")
    with written(path) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".faiss" and tmp != path
        tmp.write_bytes(b"new")
        assert path.read_bytes() == b"old"  # not visible before the block ends
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.faiss"]
    # The mode a plain open() gives (umask applied), not mkstemp's owner-only 0600.
    assert os.stat(path).st_mode & 0o777 == FILE_MODE == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "aisfx.adapter.npz"
    path.write_bytes(b"the good one")
    with pytest.raises(CannotWrite, match="is full"), written(path) as tmp:
        tmp.write_bytes(b"half of")
        raise OSError(28, "No space left on device")
    assert path.read_bytes() == b"the good one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aisfx.adapter.npz"]


def test_two_writers_at_once_never_tear_the_file(tmp_path):
    """Fixed temporary names let two processes tear each other's files: with unique ones
    a reader only ever sees one writer's complete content."""
    path = tmp_path / "stats.npz"
    contents = {name: np.full(50_000, i, dtype=np.int64) for i, name in enumerate("ab")}
    with written(path) as tmp:
        np.save(tmp.with_suffix(".npy"), contents["a"])
        tmp.with_suffix(".npy").replace(tmp)
    seen, stop = [], threading.Event()

    def write(name):
        for _ in range(30):
            with written(path) as tmp, open(tmp, "wb") as f:
                np.save(f, contents[name])

    def read():
        while not stop.is_set():
            with open(path, "rb") as f:
                seen.append(int(np.unique(np.load(f)).size))

    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=write, args=(n,)) for n in "ab"]
    reader.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    assert seen and set(seen) == {1}  # every read was one writer's whole array
    assert [p.name for p in tmp_path.iterdir()] == ["stats.npz"]


def test_an_adapter_save_killed_half_way_leaves_the_previous_adapter(tmp_path, monkeypatch):
    from engine.adapt.adapter import Adapter, AdaptOptions

    def adapter(seed):
        rng = np.random.default_rng(seed)
        return Adapter(
            text_identity="t", audio_space="aisfx", audio_identity="a", audio_generation=1,
            options=AdaptOptions(), file_ids=np.arange(3, dtype=np.int64),
            captions=["a", "b", "c"],
            text_vectors=rng.standard_normal((3, 384)).astype(np.float32),
            audio_vectors=rng.standard_normal((3, 4)).astype(np.float16),
            weights=np.ones(3, dtype=np.float32), mean=np.zeros(4), std=np.ones(4),
            heads=None, stats={"pairs": 3},
        )  # fmt: skip

    path = tmp_path / "aisfx.adapter.npz"
    adapter(1).save(path)
    expected = Adapter.load(path).text_vectors
    real = np.savez

    def savez_then_die(file, **arrays):
        real(file, **dict(list(arrays.items())[:2]))
        raise KeyboardInterrupt  # as a kill would stop it

    monkeypatch.setattr(np, "savez", savez_then_die)
    with pytest.raises(KeyboardInterrupt):
        adapter(2).save(path)
    monkeypatch.setattr(np, "savez", real)
    again = Adapter.load(path)
    assert np.array_equal(again.text_vectors, expected)
    assert [p.name for p in tmp_path.iterdir()] == ["aisfx.adapter.npz"]
