import pytest

pytest.importorskip("pytestqt")

from gui.bridge import EngineBridge  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from tests.audio_factory import tone, write  # noqa: E402


@pytest.fixture
def window(qtbot, tmp_path, library):
    root = tmp_path / "sfx"
    write(root / "glass_break_01.wav", tone(0.3))
    write(root / "door_slam.wav", tone(0.3))
    library.add_folders([root])
    library.scan(workers=1)
    bridge = EngineBridge(str(library.dir))
    win = MainWindow(bridge)
    qtbot.addWidget(win)
    with qtbot.waitSignal(bridge.results_ready, timeout=5000):
        win.show()
    yield win
    bridge.shutdown()


def test_window_lists_library_then_typing_filters(qtbot, window):
    assert window.results.rowCount() == 2
    with qtbot.waitSignal(window.bridge.results_ready, timeout=5000):
        qtbot.keyClicks(window.search_field, "glass")
    assert window.results.rowCount() == 1
    assert window.results.item(0, 0).text() == "glass_break_01.wav"


def test_malformed_query_shows_message(qtbot, window):
    with qtbot.waitSignal(window.bridge.query_failed, timeout=5000):
        qtbot.keyClicks(window.search_field, "dur:abc")
    assert "dur" in window.status.text()
