"""WaveformView, ResultsModel and MiniWaveformDelegate, offscreen."""

import os
import sys

import numpy as np
import pytest

from tests.requires import requires  # noqa: E402

pytestmark = requires("pytestqt", "PySide6")

from PySide6.QtCore import QItemSelectionModel, QPoint, QRect, Qt  # noqa: E402
from PySide6.QtGui import QColor, QImage, QPainter  # noqa: E402
from PySide6.QtWidgets import QStyleOptionViewItem, QTableView  # noqa: E402

from gui.results_model import (  # noqa: E402
    COL_DURATION,
    COL_NAME,
    COL_RATE,
    COL_RELEVANCE,
    COL_WAVEFORM,
    PATH_ROLE,
    PEAKS_ROLE,
    ResultsModel,
    format_duration,
)
from gui.waveform import BACKGROUND, PLAYHEAD, WAVE, WaveformView, pool_to_columns  # noqa: E402
from gui.waveform_delegate import MiniWaveformDelegate  # noqa: E402

WIDTH, HEIGHT, DURATION = 400, 100, 10.0


def _peaks(n=2048, amplitude=0.5):
    wave = amplitude * np.abs(np.sin(np.linspace(0, 12 * np.pi, n))).astype(np.float32)
    return -wave, wave


@pytest.fixture
def view(qtbot):
    w = WaveformView()
    qtbot.addWidget(w)
    w.resize(WIDTH, HEIGHT)
    w.show()
    qtbot.waitExposed(w)
    w.set_peaks(*_peaks(), DURATION)
    return w


def _image(widget) -> QImage:
    return widget.grab().toImage()


def _rgb(image: QImage, x: int, y: int) -> int:
    return image.pixelColor(x, y).rgb()


# -- WaveformView --------------------------------------------------------------------


def test_click_emits_seek_at_position(qtbot, view):
    with qtbot.waitSignal(view.seek_requested, timeout=1000) as blocker:
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(WIDTH // 4, HEIGHT // 2))
    assert blocker.args[0] == pytest.approx(2.5, abs=DURATION / WIDTH)
    assert view.selection() is None


def test_drag_selects_sorted_clamped_region(qtbot, view):
    # Dragged right to left and past the right edge: bounds come back sorted and clamped.
    with qtbot.waitSignal(view.region_selected, timeout=1000) as blocker:
        qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(WIDTH // 2, 50))
        qtbot.mouseMove(view, QPoint(WIDTH // 4, 50))
        qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(WIDTH // 10, 50))
    start, end = blocker.args
    assert start == pytest.approx(1.0, abs=DURATION / WIDTH)
    assert end == pytest.approx(5.0, abs=DURATION / WIDTH)
    assert view.selection() == (start, end)

    with qtbot.waitSignal(view.region_selected, timeout=1000) as blocker:
        qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(WIDTH // 2, 50))
        qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(WIDTH + 50, 50))
    assert blocker.args == [pytest.approx(5.0, abs=DURATION / WIDTH), DURATION]

    view.clear_selection()
    assert view.selection() is None


def test_tiny_drag_is_not_a_region(qtbot, view):
    with qtbot.assertNotEmitted(view.region_selected):
        qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(200, 50))
        qtbot.mouseMove(view, QPoint(202, 50))
        qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(202, 50))
    assert view.selection() is None


def _wheel(view, x, dy=0, dx=0, modifiers=Qt.KeyboardModifier.NoModifier):
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QWheelEvent

    pos = QPointF(x, HEIGHT / 2)
    event = QWheelEvent(
        pos, view.mapToGlobal(pos), QPoint(0, 0), QPoint(dx, dy), Qt.MouseButton.NoButton,
        modifiers, Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    view.wheelEvent(event)


def test_wheel_zooms_about_the_pointer_keys_zoom_and_double_click_fits(qtbot, view):
    _wheel(view, WIDTH * 0.75, dy=120)  # one notch up, at 7.5 s
    v0, v1 = view.view()
    assert v1 - v0 < DURATION * 0.9
    # The time under the pointer stays under it.
    assert v0 + 0.75 * (v1 - v0) == pytest.approx(7.5, abs=0.05)
    _wheel(view, WIDTH / 2, dy=120, modifiers=Qt.KeyboardModifier.ShiftModifier)  # scroll
    w0, w1 = view.view()
    assert w1 - w0 == pytest.approx(v1 - v0) and w0 < v0
    width = w1 - w0
    qtbot.keyClick(view, Qt.Key.Key_Minus)
    assert view.view()[1] - view.view()[0] > width
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    assert view.view()[1] - view.view()[0] == pytest.approx(width, rel=1e-6)
    qtbot.mouseDClick(view, Qt.MouseButton.LeftButton, pos=QPoint(WIDTH // 2, HEIGHT // 2))
    assert view.view() == (0.0, pytest.approx(DURATION))


def test_empty_view_ignores_mouse(qtbot, view):
    view.clear()
    with qtbot.assertNotEmitted(view.seek_requested):
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(100, 50))
    _image(view)  # paints without peaks


def test_paints_waveform(view):
    image = _image(view)
    assert image.width() == WIDTH
    background = BACKGROUND.rgb()
    wave = sum(
        _rgb(image, x, y) == WAVE.rgb() for x in range(0, WIDTH, 4) for y in range(0, HEIGHT, 4)
    )
    assert wave > 50
    assert _rgb(image, 5, 2) == background  # above the ±0.5 peaks


def test_playhead_and_moment_are_drawn(view):
    before = _image(view)
    view.set_playhead(5.0)
    view.set_moment(1.0, 2.0)
    after = _image(view)
    x = WIDTH // 2
    assert _rgb(before, x, 2) == BACKGROUND.rgb()
    assert _rgb(after, x, 2) == PLAYHEAD.rgb()
    assert _rgb(after, x + 3, 2) == BACKGROUND.rgb()
    moment_x = round(1.5 / DURATION * WIDTH)
    assert _rgb(after, moment_x, 2) != _rgb(before, moment_x, 2)
    view.set_playhead(None)
    view.set_moment(None, None)
    assert _rgb(_image(view), x, 2) == BACKGROUND.rgb()


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12")
def test_painting_does_not_drain_none_refcount(view, qtbot):
    """PySide6 6.12.0 decremented None's refcount on every void QPainter call; on Python
    3.11 the app then aborted after a few minutes of playhead repaints ("none_dealloc").
    Painting must leave None's refcount where it was."""
    view.set_playhead(5.0)
    view.set_moment(1.0, 2.0)
    qtbot.mouseMove(view, QPoint(40, 50))
    _image(view)  # warm caches
    before = sys.getrefcount(None)
    for _ in range(300):
        _image(view)
    assert sys.getrefcount(None) - before > -100


def test_pooling_keeps_extremes_at_any_width():
    mins = np.zeros(2048, dtype=np.float32)
    maxs = np.zeros(2048, dtype=np.float32)
    maxs[1000], mins[1001] = 0.9, -0.8
    lo, hi = pool_to_columns(mins, maxs, 100)
    assert len(lo) == 100 and hi.max() == pytest.approx(0.9) and lo.min() == pytest.approx(-0.8)
    lo, hi = pool_to_columns(mins[:10], maxs[:10], 37)  # fewer peaks than pixels
    assert len(lo) == 37
    assert pool_to_columns(mins[:0], maxs[:0], 10)[0].size == 0


# -- ResultsModel --------------------------------------------------------------------


def _result(i, name=None, duration=1.0, path=None, **extra):
    r = {
        "id": i,
        "path": path or f"/sfx/folder{i % 7}/clip_{i}.wav",
        "name": name or f"clip_{i}.wav",
        "folder": f"/sfx/folder{i % 7}",
        "score": 1.0 / (i + 1),
        "duration": duration,
        "sample_rate": 48000,
        "channels": 2,
        "format": "WAV",
        "subtype": "PCM_24",
        "bit_depth": 24,
        "size": 1000 + i,
        "start": None,
        "end": None,
    }
    r.update(extra)
    return r


def _column(model, col, role=Qt.ItemDataRole.DisplayRole):
    return [model.index(row, col).data(role) for row in range(model.rowCount())]


def test_model_holds_100k_rows(qtbot):
    model = ResultsModel()
    results = [_result(i, duration=i / 10) for i in range(100_000)]
    with qtbot.waitSignal(model.modelReset, timeout=1000):
        model.set_results(results)
    assert model.rowCount() == 100_000
    assert model.columnCount() == 8
    for row in (0, 4_321, 99_999):
        assert model.index(row, COL_NAME).data() == f"clip_{row}.wav"
        assert model.index(row, COL_NAME).data(PATH_ROLE) == results[row]["path"]
        assert (
            model.index(row, COL_DURATION).data(Qt.ItemDataRole.ToolTipRole)
            == (results[row]["path"])
        )
        assert model.result(row) is results[row]
    assert model.index(99_999, COL_DURATION).data() == "166:39.900"
    assert model.index(25, COL_DURATION).data() == "2.500 s"
    assert model.index(0, COL_RATE).data() == "48k"
    assert model.index(0, COL_RELEVANCE).data(Qt.ItemDataRole.TextAlignmentRole) is not None
    assert model.headerData(COL_WAVEFORM, Qt.Orientation.Horizontal) == "Waveform"


def test_formats():
    assert format_duration(0.25) == "0.250 s"
    assert format_duration(62.5) == "1:02.500"
    model = ResultsModel()
    model.set_results([_result(1, sample_rate=44100), _result(2, sample_rate=22050)])
    assert _column(model, COL_RATE) == ["44.1k", "22.05k"]


def test_sort_duration_numeric_and_stable():
    model = ResultsModel()
    model.set_results(
        [
            _result(1, "a", duration=10.0),
            _result(2, "b", duration=2.0),
            _result(3, "c", duration=33.5),
            _result(4, "d", duration=2.0),
        ]
    )
    model.sort(COL_DURATION, Qt.SortOrder.AscendingOrder)
    assert _column(model, COL_NAME) == ["b", "d", "a", "c"]
    model.sort(COL_DURATION, Qt.SortOrder.DescendingOrder)
    assert _column(model, COL_NAME) == ["c", "a", "b", "d"]


def test_sort_name_case_insensitive():
    model = ResultsModel()
    model.set_results([_result(i, n) for i, n in enumerate(["beta", "Gamma", "alpha2", "Alpha"])])
    model.sort(COL_NAME, Qt.SortOrder.AscendingOrder)
    assert _column(model, COL_NAME) == ["Alpha", "alpha2", "beta", "Gamma"]


def test_selection_follows_rows_through_sort(qtbot):
    model = ResultsModel()
    model.set_results([_result(i, duration=10.0 - i) for i in range(5)])
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.selectionModel().select(
        model.index(1, 0),
        QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows,
    )
    model.sort(COL_DURATION, Qt.SortOrder.AscendingOrder)
    rows = [i.row() for i in view.selectionModel().selectedRows()]
    assert rows == [3]
    assert model.result(3)["id"] == 1


def test_mime_data_has_file_urls_of_selected_rows(tmp_path):
    odd = tmp_path / "my sounds" / "Glas zerbricht – ü 日本 #1.wav"
    plain = tmp_path / "door.wav"
    model = ResultsModel()
    model.set_results([_result(0, path=str(odd)), _result(1), _result(2, path=str(plain))])
    indexes = [model.index(row, col) for row in (0, 2) for col in range(model.columnCount())]
    mime = model.mimeData(indexes)
    assert mime.hasUrls()
    urls = mime.urls()
    assert [u.scheme() for u in urls] == ["file", "file"]
    assert [u.toLocalFile() for u in urls] == [str(odd), str(plain)]
    assert mime.text().splitlines() == [str(odd), str(plain)]
    assert model.mimeTypes() == ["text/uri-list"]
    assert model.supportedDragActions() == Qt.DropAction.CopyAction
    assert model.flags(model.index(0, 0)) & Qt.ItemFlag.ItemIsDragEnabled


def test_set_overview_feeds_peaks_role(qtbot):
    model = ResultsModel()
    model.set_results([_result(i) for i in range(10)])
    index = model.index(4, COL_WAVEFORM)
    assert index.data(PEAKS_ROLE) is None
    mins, maxs = _peaks(128)
    with qtbot.waitSignal(
        model.dataChanged, timeout=1000, check_params_cb=lambda tl, br, *_: tl.row() == 4
    ):
        model.set_overview(4, mins, maxs)
    got = index.data(PEAKS_ROLE)
    assert got is not None
    np.testing.assert_array_equal(got[0], mins)
    np.testing.assert_array_equal(got[1], maxs)
    # The overview follows the file through a sort.
    model.sort(COL_RELEVANCE, Qt.SortOrder.AscendingOrder)
    row = next(r for r in range(10) if model.result(r)["id"] == 4)
    assert model.index(row, COL_WAVEFORM).data(PEAKS_ROLE) is not None


def test_missing_overviews_lists_visible_ids_without_peaks():
    model = ResultsModel()
    model.set_results([_result(i * 10) for i in range(6)])  # ids 0, 10, ..., 50
    model.set_overview(10, *_peaks(128))
    model.set_overview(30, np.zeros(0), np.zeros(0))  # known to have no peaks
    assert model.missing_overviews(range(0, 4)) == [0, 20]
    assert model.missing_overviews([5, 5, 99, -1]) == [50]


# -- MiniWaveformDelegate ------------------------------------------------------------


def test_delegate_paints_rows_in_table(qtbot):
    model = ResultsModel()
    model.set_results([_result(i) for i in range(3)])
    model.set_overview(0, *_peaks(128, amplitude=0.9))
    view = QTableView()
    qtbot.addWidget(view)
    delegate = MiniWaveformDelegate(view)
    view.setModel(model)
    view.setItemDelegateForColumn(COL_WAVEFORM, delegate)
    view.setColumnWidth(COL_WAVEFORM, 150)
    view.resize(900, 300)
    view.show()
    qtbot.waitExposed(view)
    image = view.viewport().grab().toImage()

    def wave_pixels(row):
        rect = view.visualRect(model.index(row, COL_WAVEFORM))
        return sum(
            image.pixelColor(x, y) == WAVE
            for x in range(rect.left(), rect.right())
            for y in range(rect.top(), rect.bottom())
        )

    with_peaks, missing = wave_pixels(0), wave_pixels(1)
    assert missing > 100  # the flat line
    assert with_peaks > 3 * missing


def test_delegate_paints_into_image(qtbot):
    model = ResultsModel()
    model.set_results([_result(7)])
    model.set_overview(7, *_peaks(128))
    delegate = MiniWaveformDelegate()
    image = QImage(160, 30, QImage.Format.Format_ARGB32)
    image.fill(QColor("black"))
    painter = QPainter(image)
    option = QStyleOptionViewItem()
    option.rect = QRect(0, 0, 160, 30)
    delegate.paint(painter, option, model.index(0, COL_WAVEFORM))
    painter.end()
    assert any(image.pixelColor(x, 15) == WAVE for x in range(160))


def test_offline_rows_are_greyed_and_hostile_names_shown_escaped(qtbot):
    from engine.catalog.paths import to_catalog
    from gui.filters import FilterBar

    odd = to_catalog(os.fsdecode(b"/sfx/caf\xe9\n\x1b[2J.wav"))
    model = ResultsModel()
    model.set_results([_result(0, offline=True), _result(1, path=odd, name=odd.rsplit("/", 1)[1])])
    grey = model.data(model.index(0, COL_NAME), Qt.ItemDataRole.ForegroundRole)
    assert grey is not None and grey.color() == QColor(128, 128, 128)
    assert model.data(model.index(1, COL_NAME), Qt.ItemDataRole.ForegroundRole) is None
    assert model.data(model.index(1, COL_NAME)) == "caf\\xe9\\n\\x1b[2J.wav"
    assert model.data(model.index(1, COL_NAME), PATH_ROLE) == odd  # the exact catalog path
    mime = model.mimeData([model.index(1, 0)])
    assert bytes(mime.urls()[0].toEncoded().data()) == b"file:///sfx/caf%E9%0A%1B%5B2J.wav"
    bar = FilterBar()
    qtbot.addWidget(bar)
    assert "offline" not in bar.query_suffix()
    bar.offline.setChecked(True)
    assert bar.query_suffix() == "offline:any"


def test_model_pages_in_more_results_when_the_view_reaches_the_end(qtbot):
    model = ResultsModel()
    model.set_results([_result(i) for i in range(3)], more=True)
    assert model.canFetchMore()
    with qtbot.waitSignal(model.more_wanted, timeout=1000) as asked:
        model.fetchMore()
    assert asked.args == [3]
    assert not model.canFetchMore()  # asked once until the page comes
    assert not model.append_results(5, [_result(9)], more=False)  # not the page asked for
    with qtbot.waitSignal(model.rowsInserted, timeout=1000):
        assert model.append_results(3, [_result(3), _result(4)], more=False)
    assert [model.result(r)["id"] for r in range(model.rowCount())] == [0, 1, 2, 3, 4]
    assert not model.canFetchMore() and not model.has_more()
    # A new result set forgets the page in flight: its late answer adds nothing.
    model.set_results([_result(7)], more=True)
    model.fetchMore()
    model.set_results([_result(8)], more=False)
    assert not model.append_results(1, [_result(9)], more=False)
    assert model.rowCount() == 1 and not model.canFetchMore()


def test_a_page_added_to_sorted_rows_is_sorted_with_them():
    model = ResultsModel()
    model.set_results([_result(i, duration=float(d)) for i, d in enumerate([5, 1])], more=True)
    model.sort(COL_DURATION, Qt.SortOrder.AscendingOrder)
    model.fetchMore()
    model.append_results(2, [_result(2, duration=3.0), _result(3, duration=0.5)], more=False)
    assert [model.result(r)["duration"] for r in range(4)] == [0.5, 1.0, 3.0, 5.0]


def test_folders_show_inside_their_library_folder():
    from gui.results_model import relative_folder

    roots = ["/sfx/Libraries/Boom", "/sfx"]
    assert relative_folder("/sfx/Libraries/Boom/Doors/Wood", roots) == "Boom/Doors/Wood"
    assert relative_folder("/sfx/Foley", roots) == "sfx/Foley"
    assert relative_folder("/sfx", roots) == "sfx"
    assert relative_folder("/sfxother/x", roots) == "/sfxother/x"  # not inside: as it is
    assert relative_folder("D:\\\\SFX\\\\Rain", ["D:\\\\SFX"]) == "SFX/Rain"


def test_themes_and_the_icon(qtbot):
    from PySide6.QtGui import QIcon, QPalette
    from PySide6.QtWidgets import QApplication

    from gui.theme import ICON, apply_theme, palette

    dark = palette("dark").color(QPalette.ColorRole.Window)
    light = palette("light").color(QPalette.ColorRole.Window)
    assert dark.lightness() < 60 < light.lightness()
    assert not QIcon(str(ICON)).isNull()
    app = QApplication.instance()
    before = app.palette()
    try:
        apply_theme(app, "dark")
        assert app.palette().color(QPalette.ColorRole.Base).lightness() < 60
        assert not app.windowIcon().isNull()
    finally:
        app.setPalette(before)
