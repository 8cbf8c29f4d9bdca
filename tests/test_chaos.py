"""Chaos: the app's indexing process killed (SIGKILL) at points of scanning, embedding
and learning chosen by a seeded generator, with a second process scanning the same
library at the same time, then resumed. Afterwards the catalog passes integrity_check,
holds exactly one row per file, no side file is torn or left as a temporary, and the
user's tags, favorites and collections are intact.

Kills are triggered by the worker's own progress events (a stage reached, so many files
done), not by sleeping, so each lands inside the stage it aims at."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.library import Library
from tests.audio_factory import noise, tone, write
from tests.conftest import ROOT
from tests.requires import needs_encoder

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")

WORDS = ["door", "slam", "rain", "heavy", "wind", "gust", "glass", "break", "metal", "hit",
         "footstep", "gravel", "engine", "idle", "bird", "chirp", "thunder", "rumble"]  # fmt: skip


def _make_library(root: Path, n: int = 48) -> None:
    rng = random.Random(3)
    for i in range(n):
        name = "_".join(rng.sample(WORDS, 3)) + f"_{i:02d}.wav"
        data = tone(1.5, 16000, freq=100 + 37 * i) if i % 2 else noise(1.5, 16000, seed=i)
        write(root / rng.choice(["", "Foley", "Ambience/Outdoor"]) / name, data, 16000)


def _worker(library_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "engine.index_worker", "--library", str(library_dir), *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def _run_and_kill(library_dir: Path, stage: str, after: int, extra=()) -> str:
    """Run the worker until it reports `after` files done in a stage starting with
    `stage`, then SIGKILL it. Returns what happened ("killed in <stage>" or "finished")."""
    proc = _worker(library_dir, *extra)
    assert proc.stdout is not None
    outcome = "finished"
    try:
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            reached = str(event.get("stage", "")).startswith(stage)
            if event.get("event") == "progress" and reached and event.get("done", 0) >= after:
                proc.send_signal(signal.SIGKILL)
                outcome = f"killed in {event['stage']} at {event['done']}/{event['total']}"
                break
            if event.get("event") in ("finished", "error"):
                outcome = event["event"] if event["event"] == "finished" else event["message"]
                break
    finally:
        proc.wait(timeout=120)
        proc.stdin.close()
    return outcome


@needs_encoder
def test_kills_during_scan_embed_and_learn_then_a_resume_lose_nothing(tmp_path):
    root = tmp_path / "sounds"
    _make_library(root)
    library_dir = tmp_path / "library"
    with Library(library_dir) as lib:  # the user's marks, made before any indexing
        lib.add_folders([root])
        lib.scan(workers=1)
        ids = [r["id"] for r in lib.catalog.query("SELECT id FROM files ORDER BY id")]
        lib.add_tags(ids[0], ["keeper"])
        lib.set_favorite(ids[1], True)
        lib.add_to_collection("reel 1", ids[2:5])
        with lib.catalog.transaction() as c:  # as if every file were new again
            c.execute("UPDATE files SET mtime_ns = mtime_ns - 1")
    rng = random.Random(11)
    plan = [("scanning", rng.randint(1, 30)), ("embedding", rng.randint(1, 30)),
            ("learning", 0), ("scanning", rng.randint(1, 5)), ("embedding", rng.randint(1, 5)),
            ("learning", rng.randint(1, 3))]  # fmt: skip
    outcomes = []
    for i, (stage, after) in enumerate(plan):
        if i:  # files change between runs, so each run has scanning, embedding, learning
            with Library(library_dir) as lib, lib.catalog.transaction() as c:
                c.execute("UPDATE files SET mtime_ns = mtime_ns - 1 WHERE id % 4 = ?", (i % 4,))
        if i == 3:  # a second process scanning the same library at the same moment
            other = subprocess.Popen(
                [sys.executable, str(ROOT / "main.py"), "scan", "--no-embed", "-q",
                 "--library", str(library_dir)],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
        outcomes.append(_run_and_kill(library_dir, stage, after, ["--space", "aisfx"]))
        if i == 3:
            assert other.wait(timeout=300) == 0, other.stderr.read()
    print("chaos outcomes:", outcomes)  # for the record (pytest -s)
    assert any(o.startswith("killed in scanning") for o in outcomes), outcomes
    assert any(o.startswith("killed in embedding") for o in outcomes), outcomes
    assert any(o.startswith("killed in learning") for o in outcomes), outcomes
    assert _run_and_kill(library_dir, "never", 0, ["--space", "aisfx"]) == "finished"

    on_disk = {str(p) for p in root.rglob("*.wav")}
    with Library(library_dir) as lib:
        assert lib.catalog.integrity_ok()
        rows = lib.catalog.query("SELECT path, status FROM files")
        assert sorted(r["path"] for r in rows) == sorted(on_disk)  # one row each, none lost
        assert {r["status"] for r in rows} == {"ok"}
        assert lib.catalog.tags_of(ids[0]) == ["keeper"] and lib.catalog.is_favorite(ids[1])
        assert lib.catalog.collection_files(lib.catalog.collection_id("reel 1")) == ids[2:5]
        store_counts = lib.catalog.query(
            "SELECT COUNT(*) AS n FROM file_vectors v JOIN spaces s ON s.id = v.space_id "
            "WHERE s.name = 'aisfx'"
        )[0]["n"]
        assert store_counts == len(on_disk)
        assert not lib.adapter_stale()
        assert lib.saved_adapter() is not None  # whole, loadable
        assert lib.search("door slam", limit=5)  # the learned text search answers
    leftovers = [p.name for p in library_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers
