"""First text query and search-as-you-type in the real window, on an indexed library.

    QT_QPA_PLATFORM=offscreen python bench/first_query_bench.py --library DIR [--runs 3]

Each run starts a fresh app process state (a new bridge and window, so the engine loads
its models again), shows the window and at once asks "distant thunder": the time from
the window showing to its results is the first-query latency (target: 1.5 s on the dev
library). Then it types "glass breaking" one key at a time, waiting for each answer, and
records each keystroke's latency. Runs are separate processes. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def one_run(library: str) -> dict:
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    from gui import settings as app_settings
    from gui.bridge import EngineBridge
    from gui.main_window import MainWindow
    from tests.fakes import FakePlayer

    app = QApplication.instance() or QApplication([])  # noqa: F841 (kept alive)
    answers: list[float] = []
    bridge = EngineBridge(library)
    bridge.results_ready.connect(lambda _payload: answers.append(time.perf_counter()))
    settings = app_settings.open_settings(str(Path(library) / ".bench-settings.ini"))
    window = MainWindow(bridge, FakePlayer(), settings, auto_index=False)
    window.show()
    shown = time.perf_counter()

    def wait_for(count: int) -> None:
        # Wait in Qt's event loop, as the app does between events: a polling loop here
        # would hold the GIL the query thread needs and measure itself.
        loop = QEventLoop()
        bridge.results_ready.connect(loop.quit)
        while len(answers) < count:
            loop.exec()
        bridge.results_ready.disconnect(loop.quit)

    def ask(text: str) -> float:
        before = len(answers)
        started = time.perf_counter()
        window.search_field.setText(text)
        window._debounce.stop()
        window.run_search()
        wait_for(before + 1)
        return answers[-1] - started

    # Let the window's own start-up search (an empty query) answer first.
    wait_for(1)
    ask("distant thunder")
    first = answers[-1] - shown
    typed = "glass breaking"
    keys = [ask(typed[: i + 1]) for i in range(len(typed))]
    window.close()
    bridge.shutdown()
    Path(library, ".bench-settings.ini").unlink(missing_ok=True)
    return {"first_query_s": round(first, 3), "keystrokes_ms": [round(k * 1000, 1) for k in keys]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.library)))
        return
    runs = []
    for _ in range(args.runs):
        proc = subprocess.run(
            [sys.executable, __file__, "--library", args.library, "--one"],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    keys = sorted(k for r in runs for k in r["keystrokes_ms"])
    print(json.dumps({
        "runs": runs,
        "first_query_s_median": statistics.median(r["first_query_s"] for r in runs),
        "keystroke_ms_p50": keys[len(keys) // 2],
        "keystroke_ms_p95": keys[min(len(keys) - 1, int(len(keys) * 0.95))],
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
