"""Duplicates (engine/curate/duplicates.py): exact copies by decoded samples whatever the
container and metadata, near copies by vectors and length, removing (never re-added by
scans) and trashing copies, through the engine, the CLI and the window."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import soundfile as sf

import engine.curate.duplicates as dup
from engine.curate.write import write_fields
from tests.audio_factory import noise, tone, write
from tests.conftest import ROOT


@pytest.fixture
def copies(tmp_path, library):
    root = tmp_path / "sfx"
    original = (noise(1.0, 44100, channels=2, seed=1) * 32767).astype(np.int16)
    write(root / "a" / "door.wav", original, 44100, "PCM_16")
    write(root / "b" / "door copy.flac", original, 44100, "PCM_16")
    tagged = write(root / "c" / "door tagged.wav", original, 44100, "PCM_16")
    write_fields(str(tagged), {"description": "the same door with other metadata"})
    wide = original.astype(np.int32) << 16
    write(root / "d" / "door 24.wav", wide, 44100, "PCM_24")
    other = (noise(1.0, 44100, channels=2, seed=2) * 32767).astype(np.int16)
    write(root / "e" / "other.wav", other, 44100, "PCM_16")  # same length, other sound
    write(root / "f" / "tone.wav", tone(0.5), 44100)
    library.add_folders([root])
    library.scan(workers=1)
    return root


def _names(group) -> list[str]:
    return sorted(f["name"] for f in group.files)


def test_exact_duplicates_ignore_container_and_metadata(copies, library, monkeypatch):
    (group,) = library.duplicates()
    assert group.kind == "exact"
    assert _names(group) == ["door 24.wav", "door copy.flac", "door tagged.wav", "door.wav"]
    keep = next(f for f in group.files if f["id"] == group.keep)
    assert keep["name"] == "door 24.wav"  # lossless, and the most bits
    assert all(f["exact"] and f["similarity"] == 1.0 for f in group.files)
    # The hashes are kept: a second look decodes nothing until a file changes.
    monkeypatch.setattr(dup, "content_hash", lambda path: pytest.fail(f"decoded {path}"))
    assert [_names(g) for g in library.duplicates()] == [_names(group)]
    monkeypatch.undo()
    changed = (noise(1.0, 44100, channels=2, seed=3) * 32767).astype(np.int16)
    write(copies / "b" / "door copy.flac", changed, 44100, "PCM_16")
    library.scan(workers=1)
    (group,) = library.duplicates()
    assert _names(group) == ["door 24.wav", "door tagged.wav", "door.wav"]


def test_near_duplicates_need_similar_vectors_lengths_and_audio(copies, library, monkeypatch):
    from engine.catalog.vectors import VectorStore

    data, rate = sf.read(str(copies / "a" / "door.wav"), dtype="float32")
    cut = len(data) // 10
    write(copies / "g" / "door quieter trimmed.wav", data[cut:-cut] * 0.5, rate, "PCM_24")
    library.scan(workers=1)
    ids = dict(library.catalog.conn.execute("SELECT name, id FROM files").fetchall())
    store = VectorStore(library.catalog)
    space = store.ensure_space("aisfx", "test", 4)
    for i in ids.values():
        store.store(space, i, np.ones(4, dtype=np.float32), [])
    door, quiet, other, short = (ids[n] for n in (
        "door.wav", "door quieter trimmed.wav", "other.wav", "tone.wav"))  # fmt: skip
    neighbours = {
        quiet: [(door, 0.97)],  # the same sound, 6 dB down and trimmed: near
        other: [(door, 0.97)],  # the vectors say alike, the audio does not: not near
        short: [(door, 0.99)],  # alike but half as long: not near
    }

    class Index:
        def query_many(self, space_name, vectors, limit, standardized=False):
            order = [int(i) for i in store.all_file_vectors(space)[0]]
            return [neighbours.get(i, []) for i in order]

    (group,) = dup.find_duplicates(library.catalog, Index(), "aisfx", near=True)
    assert group.kind == "near"
    assert "door quieter trimmed.wav" in _names(group)
    assert "other.wav" not in _names(group) and "tone.wav" not in _names(group)
    copy = next(f for f in group.files if f["name"] == "door quieter trimmed.wav")
    assert copy["similarity"] == pytest.approx(0.97) and not copy["exact"]
    assert (
        dup.envelope_match(
            dup.envelope(str(copies / "a" / "door.wav")),
            dup.envelope(str(copies / "g" / "door quieter trimmed.wav")),
        )
        > 0.99
    )
    assert dup.is_near(0.85, 0.995) and not dup.is_near(0.85, 0.95)
    assert dup.is_near(0.92, 0.95) and not dup.is_near(0.75, 0.999)
    # Vectors below the first tier: the second tier still takes the trimmed copy, whose
    # envelope agrees almost exactly, and still not the other sound.
    monkeypatch.setattr(dup, "NEAR_SIMILARITY", 0.98)
    (group,) = [g for g in dup.find_duplicates(library.catalog, Index(), "aisfx", True)
                if g.kind == "near"]  # fmt: skip
    assert _names(group) == ["door 24.wav", "door copy.flac", "door quieter trimmed.wav",
                             "door tagged.wav", "door.wav"]  # fmt: skip
    monkeypatch.setattr(dup, "NEAR_SIMILARITY_STRICT", 0.98)
    kinds = [g.kind for g in dup.find_duplicates(library.catalog, Index(), "aisfx", True)]
    assert kinds == ["exact"]


def test_removed_copies_stay_out_and_trashed_ones_go_to_the_trash(
    copies, library, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    (group,) = library.duplicates()
    by_name = {f["name"]: f for f in group.files}
    removed = library.remove_from_library([by_name["door copy.flac"]["id"]])
    assert removed == [by_name["door copy.flac"]["path"]]
    assert (copies / "b" / "door copy.flac").exists()  # nothing deleted from disk
    report = library.scan(workers=1)
    assert report.added == 0  # a rescan does not bring it back
    names = [r[0] for r in library.catalog.conn.execute("SELECT name FROM files")]
    assert "door copy.flac" not in names
    trashed = library.trash([by_name["door tagged.wav"]["id"]])
    assert trashed["trashed"] == [by_name["door tagged.wav"]["path"]] and not trashed["failed"]
    assert not (copies / "c" / "door tagged.wav").exists()
    in_trash = list((tmp_path / "xdg" / "Trash" / "files").iterdir())
    assert [p.name for p in in_trash] == ["door tagged.wav"]
    (group,) = library.duplicates()
    assert _names(group) == ["door 24.wav", "door.wav"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "main.py"), *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_cli_lists_groups_and_removes_only_when_confirmed(copies, library, library_dir):
    library.close()
    listed = _cli("duplicates", "--json")
    assert listed.returncode == 0, listed.stderr
    (group,) = json.loads(listed.stdout)
    assert group["kind"] == "exact" and len(group["files"]) == 4
    text = _cli("duplicates")
    assert "exact duplicates (4 copies)" in text.stdout and "keep" in text.stdout
    target = str(copies / "a" / "door.wav")
    refused = _cli("duplicates", "--remove", target)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    done = _cli("duplicates", "--remove", target, "--yes")
    assert done.returncode == 0 and "removed from the library" in done.stdout
    (group,) = json.loads(_cli("duplicates", "--json").stdout)
    assert len(group["files"]) == 3
    assert sf.info(target).frames == 44100  # still on disk


def _envelope_match_by_offsets(a: np.ndarray, b: np.ndarray) -> float:
    """The definition, one alignment at a time: what the FFT form must equal."""
    if len(a) < len(b):
        a, b = b, a
    n, m = len(a), len(b)
    need = max(1, int(np.ceil(dup._MIN_OVERLAP * m)))
    best = -1.0
    for k in range(need - m, n - need + 1):
        lo, hi = max(0, k), min(n, k + m)
        x, y = a[lo:hi].astype(np.float64), b[lo - k : hi - k].astype(np.float64)
        x = (x - x.mean(axis=0)).ravel()
        y = (y - y.mean(axis=0)).ravel()
        denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
        if denom > 0:
            best = max(best, float((x * y).sum()) / denom)
    return best


def test_envelope_match_is_the_best_correlation_over_alignments():
    rng = np.random.default_rng(0)
    for trial in range(60):
        n, m = (int(v) for v in rng.integers(1, 200, size=2))
        a = (rng.normal(size=(n, dup.ENVELOPE_BANDS)) - 5).astype(np.float32)
        b = rng.normal(size=(m, dup.ENVELOPE_BANDS)).astype(np.float32)
        if trial % 3 == 0 and n > 20:
            b = a[n // 10 : n - n // 10] + 0.5  # a trimmed, louder copy: correlates 1
            assert dup.envelope_match(a, b) == pytest.approx(1.0, abs=1e-6)
        assert dup.envelope_match(a, b) == pytest.approx(_envelope_match_by_offsets(a, b), abs=1e-5)
    silent = np.full((80, dup.ENVELOPE_BANDS), -10.0, dtype=np.float32)
    assert dup.envelope_match(silent, silent) == -1.0  # no shape to compare
    assert dup.envelope_match(silent[:0], silent) == -1.0
