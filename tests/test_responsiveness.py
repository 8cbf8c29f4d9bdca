"""The GUI thread never waits on the engine: event-loop stalls during a real scan+embed."""

import time

import numpy as np
import pytest
import soundfile as sf

from tests.requires import requires  # noqa: E402

pytestmark = requires("pytestqt", "PySide6")

from PySide6.QtCore import QTimer  # noqa: E402

from gui import settings as app_settings  # noqa: E402
from gui.bridge import EngineBridge  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402

MAX_STALL_MS = 50.0


class StallProbe:
    """A 5 ms timer on the GUI thread; a late tick means the event loop was blocked."""

    def __init__(self):
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)
        self.last = None
        self.worst_ms = 0.0
        self.ticks = 0

    def _tick(self):
        now = time.perf_counter()
        if self.last is not None:
            self.worst_ms = max(self.worst_ms, (now - self.last) * 1000 - 5)
        self.last = now
        self.ticks += 1

    def start(self):
        self.last = None
        self.timer.start()

    def stop(self):
        self.timer.stop()


@pytest.mark.slow
def test_event_loop_stays_responsive_while_indexing_1000_files(qtbot, tmp_path, library):
    root = tmp_path / "big"
    rng = np.random.default_rng(0)
    for i in range(1000):
        folder = root / f"pack{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        data = (0.2 * rng.standard_normal(2205)).astype(np.float32)
        sf.write(str(folder / f"hit_{i:04d}.wav"), data, 22050)
    write_marker = root / "pack0" / "marker_door.wav"
    sf.write(str(write_marker), np.zeros(2205, dtype=np.float32), 22050)

    bridge = EngineBridge(str(library.dir), spaces=("mfcc",))
    settings = app_settings.open_settings(str(tmp_path / "s.ini"))
    window = MainWindow(bridge, None, settings)
    qtbot.addWidget(window)
    with qtbot.waitSignal(bridge.results_ready, timeout=10000):
        window.show()

    probe = StallProbe()
    progress = []
    searches_during_indexing = []
    bridge.index_progressed.connect(progress.append)

    def on_results(payload):
        if bridge.indexing:
            searches_during_indexing.append(len(payload["results"]))

    bridge.results_ready.connect(on_results)
    # Keep typing while indexing runs, as a user would: a key every 250 ms, each change
    # searched through the window's 150 ms debounce (so ~4 searches a second).
    words = ["h", "hi", "hit", "hit 0", "hit 00", "hit", "pack", "pack3", "hit"]
    typed = iter(words * 1000)
    typing = QTimer()
    typing.setInterval(250)
    typing.timeout.connect(lambda: window.search_field.setText(next(typed)))

    probe.start()
    typing.start()
    with qtbot.waitSignal(bridge.index_finished, timeout=300000) as finished:
        window.add_folders([str(root)])
    typing.stop()
    probe.stop()
    window.close()

    summary = finished.args[0]
    assert summary["added"] == 1001 and summary["embedded"] == 1001
    assert {"scanning", "embedding"} <= {p["stage"] for p in progress}
    assert searches_during_indexing, "no search was answered while indexing ran"
    assert probe.ticks > 100
    print(f"longest event-loop stall: {probe.worst_ms:.1f} ms over {probe.ticks} ticks")
    assert probe.worst_ms < MAX_STALL_MS
