"""GUI stall benchmark: the longest event-loop stalls while the app indexes a library and
the user keeps typing searches.

    QT_QPA_PLATFORM=offscreen python bench/gui_stall_bench.py [--files 1000] [--runs 5]
    QT_QPA_PLATFORM=offscreen python bench/gui_stall_bench.py --library DIR [--seconds 30]

Each run builds a fresh library of ``--files`` short WAV files, opens the real window
(offscreen), adds the folder and, while the indexing process scans and embeds it (MFCC,
so no model download is needed), types a query change every 250 ms. A 5 ms timer on the
GUI thread measures how late each tick comes: a late tick means the event loop could not
run. Prints one JSON object: per run the worst stall, the 99th-percentile tick lateness
and how many searches were answered during indexing; over runs the median and the max of
the worst stalls. Target (docs/measurements.md): no stall over 50 ms.

The scenario is shared with tests/test_responsiveness.py, which checks its mechanics.

With --library, each run opens the window on that existing library (a million-file one
from bench/scale_bench.py --keep) without indexing it, types a query change every 250 ms
for --seconds and scrolls each answer to its end, so pages are fetched as a user
scrolling would; the same probe measures the stalls.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TICK_MS = 5
WORDS = ["h", "hi", "hit", "hit 0", "hit 00", "hit", "pack", "pack3", "hit"]


def make_library_folder(root: Path, files: int) -> Path:
    """``files`` short noise hits in 10 packs, plus one marker file."""
    rng = np.random.default_rng(0)
    for i in range(files):
        folder = root / f"pack{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        data = (0.2 * rng.standard_normal(2205)).astype(np.float32)
        sf.write(str(folder / f"hit_{i:04d}.wav"), data, 22050)
    sf.write(str(root / "pack0" / "marker_door.wav"), np.zeros(2205, dtype=np.float32), 22050)
    return root


class StallProbe:
    """A 5 ms timer on the GUI thread recording how late each tick comes. GUI thread."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.last: float | None = None
        self.lateness_ms: list[float] = []

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.lateness_ms.append(max(0.0, (now - self.last) * 1000 - TICK_MS))
        self.last = now

    def start(self) -> None:
        self.last = None
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    @property
    def worst_ms(self) -> float:
        return max(self.lateness_ms, default=0.0)


def index_while_typing(library_dir: Path, folder: Path, timeout_s: float = 300) -> dict[str, Any]:
    """Open the window on ``library_dir``, add ``folder`` and type while it is indexed.

    Returns the indexing summary, the progress stages seen, the searches answered during
    indexing and the probe's measurements. Needs a QApplication; GUI thread.
    """
    from PySide6.QtCore import QEventLoop, QTimer

    from gui import settings as app_settings
    from gui.bridge import EngineBridge
    from gui.main_window import MainWindow

    bridge = EngineBridge(str(library_dir), spaces=("mfcc",))
    settings = app_settings.open_settings(str(library_dir / "bench-settings.ini"))
    window = MainWindow(bridge, None, settings)
    loop = QEventLoop()
    bridge.results_ready.connect(loop.quit)
    window.show()
    loop.exec()  # the first (empty) query's results: the window is up
    bridge.results_ready.disconnect(loop.quit)

    probe = StallProbe()
    stages: set[str] = set()
    answered: list[int] = []
    summary: dict[str, Any] = {}
    bridge.index_progressed.connect(lambda p: stages.add(p["stage"]))
    bridge.results_ready.connect(
        lambda payload: answered.append(len(payload["results"])) if bridge.indexing else None
    )

    def finished(result: dict) -> None:
        summary.update(result)
        loop.quit()

    bridge.index_finished.connect(finished)
    typed = iter(WORDS * 10_000)
    typing = QTimer()
    typing.setInterval(250)
    typing.timeout.connect(lambda: window.search_field.setText(next(typed)))
    guard = QTimer()
    guard.setSingleShot(True)
    guard.timeout.connect(loop.quit)
    guard.start(int(timeout_s * 1000))
    probe.start()
    typing.start()
    began = time.perf_counter()
    window.add_folders([str(folder)])
    loop.exec()
    seconds = time.perf_counter() - began
    typing.stop()
    probe.stop()
    window.close()
    late = sorted(probe.lateness_ms)
    return {
        "summary": summary,
        "stages": sorted(stages),
        "searches_during_indexing": len(answered),
        "ticks": len(late),
        "worst_stall_ms": round(probe.worst_ms, 1),
        "p99_lateness_ms": round(late[int(0.99 * (len(late) - 1))], 1) if late else 0.0,
        "seconds": round(seconds, 1),
    }


# Typed into a big catalog (bench/scale_bench.py's words), a letter at a time, with
# filter-only queries between.
BIG_WORDS = ["h", "he", "hea", "heavy", "heavy d", "heavy do", "heavy door", "dur:<2 sr:48k",
             "m", "me", "metal", "metal s", "metal sl", "metal slam", "rain"]  # fmt: skip


def type_into_catalog(library_dir: Path, seconds: float) -> dict[str, Any]:
    """Open the window on an existing (large) library without indexing it, type a query
    change every 250 ms and scroll the results to their end after each answer (so the
    next page is fetched), for ``seconds``. Needs a QApplication; GUI thread."""
    from PySide6.QtCore import QEventLoop, QTimer

    from gui import settings as app_settings
    from gui.bridge import EngineBridge
    from gui.main_window import MainWindow

    bridge = EngineBridge(str(library_dir), spaces=("mfcc",))
    settings = app_settings.open_settings(str(library_dir / "bench-settings.ini"))
    window = MainWindow(bridge, None, settings, auto_index=False)
    loop = QEventLoop()
    began = time.perf_counter()
    bridge.results_ready.connect(loop.quit)
    window.show()
    loop.exec()  # the first (empty) query's results: the window is up
    first_results_s = time.perf_counter() - began
    bridge.results_ready.disconnect(loop.quit)
    rows: list[int] = []

    def answered(_payload: dict) -> None:
        rows.append(window.model.rowCount())
        window.results.scrollToBottom()  # the view asks for the next page

    bridge.results_ready.connect(answered)
    probe = StallProbe()
    typed = iter(BIG_WORDS * 10_000)
    typing = QTimer()
    typing.setInterval(250)
    typing.timeout.connect(lambda: window.search_field.setText(next(typed)))
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    probe.start()
    typing.start()
    loop.exec()
    typing.stop()
    probe.stop()
    window.close()
    late = sorted(probe.lateness_ms)
    return {
        "first_results_s": round(first_results_s, 2),
        "answers": len(rows),
        "most_rows_shown": max(rows, default=0),
        "ticks": len(late),
        "worst_stall_ms": round(probe.worst_ms, 1),
        "p99_lateness_ms": round(late[int(0.99 * (len(late) - 1))], 1) if late else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--library", type=Path,
        help="type into this existing library (e.g. bench/scale_bench.py --keep) instead",
    )  # fmt: skip
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv)
    if args.library:
        runs = [type_into_catalog(args.library, args.seconds) for _ in range(args.runs)]
        worst = [r["worst_stall_ms"] for r in runs]
        print(json.dumps({
            "library": str(args.library), "runs": runs,
            "worst_stall_ms_median": statistics.median(worst), "worst_stall_ms_max": max(worst),
            "runs_over_50ms": sum(w > 50 for w in worst),
        }, indent=2))  # fmt: skip
        return
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="sonarium-stall-") as tmp:
            folder = make_library_folder(Path(tmp) / "big", args.files)
            library_dir = Path(tmp) / "library"
            library_dir.mkdir()
            result = index_while_typing(library_dir, folder)
            result.pop("summary")
            runs.append(result)
            app.processEvents()
    worst = [r["worst_stall_ms"] for r in runs]
    print(json.dumps({
        "files": args.files, "runs": runs,
        "worst_stall_ms_median": statistics.median(worst), "worst_stall_ms_max": max(worst),
        "runs_over_50ms": sum(w > 50 for w in worst),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
