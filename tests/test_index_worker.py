"""The indexing child process: scan, embed, then learn text search, reported as JSON lines.

Uses the real aisfx model and sentence encoder (skips when they are not installed).
"""

import json
import subprocess
import sys

from tests.audio_factory import noise, tone, write
from tests.conftest import ROOT
from tests.requires import requires

pytestmark = requires("aisfx", "all_minilm_l6_v2")


def run_worker(library_dir, *args):
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.index_worker", "--library", str(library_dir),
         "--space", "aisfx", *args],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    # stdin stays open until the worker is done: a closed stdin means "the app is gone".
    out = proc.stdout.read()
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    return [json.loads(line) for line in out.splitlines()]


def test_worker_learns_text_search_after_embedding_and_only_when_stale(tmp_path):
    root = tmp_path / "sounds"
    for i in range(12):
        write(root / "Rain" / f"rain_heavy_{i}.wav", noise(0.6, 16000, seed=i), 16000)
        write(root / "Tones" / f"sine_beep_{i}.wav", tone(0.6, 16000, freq=300 + 50 * i), 16000)
    write(root / "pcv637.wav", noise(0.6, 16000, seed=99), 16000)
    events = run_worker(tmp_path / "lib", "--add", str(root))
    stages = [e["stage"] for e in events if e["event"] == "progress"]
    assert "embedding" in stages and "learning-training" in stages
    assert stages.index("embedding") < stages.index("learning-training")
    finished = events[-1]
    assert finished["event"] == "finished" and finished["learned"] is True
    assert finished["embedded"] == 25
    assert (tmp_path / "lib" / "aisfx.adapter.npz").exists()
    # Nothing changed: no relearning.
    again = run_worker(tmp_path / "lib")
    assert again[-1]["learned"] is False
    assert not any(e.get("stage", "").startswith("learning") for e in again)
