"""The main window through pytest-qt (offscreen): search, keys, audition, drag, drop."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.requires import requires  # noqa: E402

pytestmark = requires("pytestqt", "PySide6")

from PySide6.QtCore import QEvent, QMimeData, QPoint, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent, QImage  # noqa: E402

from engine.config import AUDIO_SUFFIXES  # noqa: E402
from gui import settings as app_settings  # noqa: E402
from gui.bridge import EngineBridge  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from gui.results_model import COLUMNS  # noqa: E402
from tests.audio_factory import noise, tone, write  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.fakes import FakePlayer, save_tiny_clap  # noqa: E402


@pytest.fixture
def sounds(tmp_path, library):
    root = tmp_path / "sfx"
    write(root / "glass_break_01.wav", noise(0.6), 44100)
    write(root / "door_slam.wav", tone(0.4), 44100)
    write(root / "door creak ü.flac", tone(1.2, freq=300), 44100)
    library.add_folders([root])
    library.scan(workers=1)
    return root


@pytest.fixture
def window(qtbot, tmp_path, library, sounds):
    bridge = EngineBridge(str(library.dir), spaces=("mfcc",))
    settings = app_settings.open_settings(str(tmp_path / "settings.ini"))
    settings.setValue("similar_space", "mfcc")  # aisfx is slow on CPU; mechanics only here
    win = MainWindow(bridge, FakePlayer(), settings, auto_index=False)
    qtbot.addWidget(win)
    with qtbot.waitSignal(bridge.results_ready, timeout=10000):
        win.show()
    yield win
    win.close()


def search(qtbot, window, text):
    """Set the query and wait for exactly its results (the debounce is skipped so no late
    timer can fire a search after this returns; test_typing_a_query covers typing)."""
    with qtbot.waitSignal(
        window.bridge.results_ready, timeout=10000,
        check_params_cb=lambda payload: payload["query"] == window.query_text(),
    ):  # fmt: skip
        window.search_field.setText(text)
        window._debounce.stop()
        window.run_search()


def names(window):
    return [window.model.result(r)["name"] for r in range(window.model.rowCount())]


def test_typing_a_query_fills_results(qtbot, window):
    assert window.model.rowCount() == 3
    with qtbot.waitSignal(window.bridge.results_ready, timeout=10000):
        qtbot.keyClicks(window.search_field, "glass")
    assert names(window) == ["glass_break_01.wav"]


def test_filters_use_the_query_language(qtbot, window):
    with qtbot.waitSignal(window.bridge.results_ready, timeout=10000):
        window.filters.min_dur.setValue(1.0)
    assert names(window) == ["door creak ü.flac"]
    assert window.query_text() == "dur:>=1"


def test_malformed_query_shows_message(qtbot, window):
    with qtbot.waitSignal(window.bridge.query_failed, timeout=10000):
        window.search_field.setText("dur:abc")
    assert "dur" in window.statusBar().currentMessage()


def test_keyboard_navigation_and_autoplay_drive_the_player(qtbot, window):
    search(qtbot, window, "door")
    window.detail.autoplay.setChecked(True)
    player = window.player
    qtbot.keyClick(window.search_field, Qt.Key.Key_Down)  # into the results, first row
    first = window.current_result()["path"]
    assert player.calls[-1] == ("play", first, 0.0)
    qtbot.keyClick(window.results, Qt.Key.Key_Down)
    second = window.current_result()["path"]
    assert second != first and player.calls[-1] == ("play", second, 0.0)
    qtbot.keyClick(window.results, Qt.Key.Key_Space)
    assert player.calls[-1] == ("stop",)
    qtbot.keyClick(window.results, Qt.Key.Key_Space)
    assert player.calls[-1] == ("play", second, 0.0)
    qtbot.keyClick(window.results, Qt.Key.Key_Escape)
    assert player.calls[-1] == ("stop",)
    qtbot.keyClick(window.results, Qt.Key.Key_Return)
    assert player.calls[-1] == ("play", second, 0.0)
    window.detail.autoplay.setChecked(False)
    qtbot.keyClick(window.results, Qt.Key.Key_Up)
    assert player.calls[-1] == ("play", second, 0.0)  # no autoplay: nothing new
    qtbot.keyClick(window.results, Qt.Key.Key_L)
    assert window.detail.loop.isChecked() and player.calls[-1][0] == "loop"


def test_detail_pane_shows_waveform_and_seek(qtbot, window):
    window.detail.autoplay.setChecked(False)
    search(qtbot, window, "creak")
    with qtbot.waitSignal(window.bridge.detail_ready, timeout=10000):
        window.results.selectRow(0)
    assert window.detail.waveform.duration() == pytest.approx(1.2, abs=0.01)
    window.detail.waveform.seek_requested.emit(0.6)  # stopped: a click plays from there
    assert window.player.calls[-1] == ("play", window.current_result()["path"], 0.6)
    window.detail.waveform.seek_requested.emit(0.9)  # playing: a click seeks
    assert window.player.calls[-1] == ("seek", 0.9)


def test_drag_mime_data_holds_file_urls(qtbot, window, sounds):
    search(qtbot, window, "door")
    window.results.selectAll()
    indexes = window.results.selectionModel().selectedIndexes()
    mime = window.model.mimeData(indexes)
    got = sorted(u.toLocalFile() for u in mime.urls())
    assert got == sorted([str(sounds / "door_slam.wav"), str(sounds / "door creak ü.flac")])
    assert "text/uri-list" in mime.formats()


def test_audition_varispeed_loudness_matching_and_levels(qtbot, window):
    from engine.audio.loudness import PEAK_CEILING_DBTP

    player = window.player
    search(qtbot, window, "creak")
    with qtbot.waitSignal(window.bridge.detail_ready, timeout=10000):
        window.results.selectRow(0)
    result = window.current_result()
    assert result["loudness_lufs"] is not None and result["true_peak_db"] is not None
    assert "LUFS" in window.detail.levels.text() and "dBTP" in window.detail.levels.text()
    # Matching on: the next play gets the gain to -23 LUFS, held under -1 dBTP.
    window.detail.match_loudness.setChecked(True)
    assert window.settings.value("match_loudness") == "true"
    window.play_from_start()
    wanted = min(-23.0 - result["loudness_lufs"], PEAK_CEILING_DBTP - result["true_peak_db"])
    assert player.gains[-1] == pytest.approx(wanted)
    window.detail.match_loudness.setChecked(False)
    window.play_from_start()
    assert player.gains[-1] == 0.0
    # Varispeed: the spin box and the shortcuts.
    window.detail.pitch.setValue(-12.0)
    assert player.calls[-1] == ("speed", -12.0)
    window.detail.nudge_pitch(1.0)
    window.detail.nudge_pitch(0.01)
    assert player.calls[-1] == ("speed", pytest.approx(-10.99))
    window.detail.nudge_pitch(0.0)
    assert player.calls[-1] == ("speed", 0.0)
    # A selected region gets its own levels.
    window.detail.waveform.set_selection(0.25, 0.75)
    with qtbot.waitSignal(window.bridge.loudness_ready, timeout=10000) as levels:
        window.detail.waveform.region_selected.emit(0.25, 0.75)
    assert levels.args[0]["integrated_lufs"] is not None
    assert "Selection" in window.detail.levels.text()
    # With a selection, play plays it alone, from the pre-roll before it.
    window.settings.setValue("preroll", "0.1")
    window.play_from_start()
    assert player.calls[-1] == ("play", result["path"], pytest.approx(0.15), 0.75)


def test_duplicates_dialog_finds_copies_and_removes_the_ticked(
    qtbot, window, sounds, library, monkeypatch
):
    import soundfile as sf
    from PySide6.QtWidgets import QMessageBox

    data, rate = sf.read(str(sounds / "door_slam.wav"), dtype="int16")
    (sounds / "copies").mkdir()
    sf.write(str(sounds / "copies" / "door_slam copy.flac"), data, rate, subtype="PCM_16")
    library.scan(workers=1)
    with qtbot.waitSignal(window.bridge.duplicates_found, timeout=20000) as found:
        dialog = window.find_duplicates()
    (group,) = found.args[0]
    assert group["kind"] == "exact" and len(group["files"]) == 2
    assert dialog.tree.topLevelItemCount() == 1 and len(dialog.ticked()) == 1
    assert "1 groups, 1 copies" in dialog.summary.text()
    top = dialog.tree.topLevelItem(0)
    # Folders inside the library folder, as in the results; the full path in the tooltip.
    assert {top.child(i).text(1) for i in range(2)} == {sounds.name, f"{sounds.name}/copies"}
    assert any(top.child(i).toolTip(0).startswith(str(sounds)) for i in range(2))
    asked: list[str] = []

    def answer(parent, title, text, *rest):
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    with qtbot.waitSignal(
        window.bridge.duplicates_found, timeout=20000, check_params_cb=lambda g: g == []
    ):
        dialog.remove_button.click()
    assert asked and "stay on disk" in asked[0]
    assert dialog.summary.text() == "No duplicates found"
    assert (sounds / "copies" / "door_slam copy.flac").exists()


def test_the_large_view_zooms_scrolls_and_shows_a_spectrogram(qtbot, window):
    search(qtbot, window, "creak")
    with qtbot.waitSignal(window.bridge.detail_ready, timeout=10000):
        window.results.selectRow(0)
    view = window.detail.waveform
    window.stop()  # a playing playhead would turn the zoomed view's pages
    with qtbot.waitSignal(
        window.bridge.view_ready, timeout=10000, check_params_cb=lambda a: "spectrogram" in a
    ) as answer:
        window.detail.view_mode.setCurrentText("both")
    assert answer.args[0]["spectrogram"].shape[1] == view.width()
    assert view._spectrum is not None
    # A frequency scale over the spectrogram: log-spaced, higher frequencies higher up,
    # inside the spectrogram's half of the view (44.1 kHz file: up to 10k).
    _, area = view._areas()
    marks = dict((label, y) for y, label in view.frequency_marks(area))
    assert {"100", "1k", "10k"} <= set(marks) and "20k" not in marks
    assert area.top() <= marks["10k"] < marks["1k"] < marks["100"] <= area.bottom()
    assert marks["1k"] - marks["10k"] == pytest.approx(marks["100"] - marks["1k"], abs=2)
    with qtbot.waitSignal(
        window.bridge.view_ready, timeout=10000, check_params_cb=lambda a: "mins" in a
    ) as answer:
        view.set_view(0.5, 0.51)  # far past the stored peaks
    assert (answer.args[0]["start"], answer.args[0]["end"]) == (0.5, 0.51)
    assert view._detail is not None and view._detail[:2] == (0.5, 0.51)
    assert window.detail.scroll.value() == 500  # the scroll bar follows, in ms
    window.detail.scroll.setValue(700)
    assert view.view()[0] == pytest.approx(0.7)
    window.detail.zoom_fit.click()
    assert view.view() == (0.0, pytest.approx(1.2, abs=0.01))


def test_browse_by_folder_favorites_and_recently_auditioned(qtbot, window, sounds, library):
    write(sounds / "Doors" / "Wood" / "door_wood_01.wav", tone(0.3), 44100)
    write(sounds / "Doors" / "Metal" / "door_metal_01.wav", tone(0.3), 44100)
    library.scan(workers=1)
    with qtbot.waitSignal(window.bridge.status_changed, timeout=10000):
        window.bridge.refresh_status()
    browse = window.browse
    (root,) = [browse.folders.child(i) for i in range(browse.folders.childCount())]
    assert root.text(1) == "5"
    with qtbot.waitSignal(window.bridge.subfolders_ready, timeout=10000):
        root.setExpanded(True)
    (doors,) = [root.child(i) for i in range(root.childCount())]
    assert (doors.text(0), doors.text(1)) == ("Doors", "2")
    with qtbot.waitSignal(window.bridge.subfolders_ready, timeout=10000):
        doors.setExpanded(True)
    assert sorted(doors.child(i).text(0) for i in range(doors.childCount())) == ["Metal", "Wood"]
    # A folder narrows the results, together with the query typed.
    with qtbot.waitSignal(window.bridge.results_ready, timeout=10000):
        browse.tree.itemClicked.emit(doors, 0)
    assert sorted(names(window)) == ["door_metal_01.wav", "door_wood_01.wav"]
    folder = str(sounds / "Doors")
    assert window.statusBar().currentMessage() == f"2 results in {folder}"  # not the filter
    search(qtbot, window, "metal")
    assert names(window) == ["door_metal_01.wav"]
    assert window.statusBar().currentMessage() == f"1 result for “metal” in {folder}"
    with qtbot.waitSignal(window.bridge.results_ready, timeout=10000):
        window.browsing.click()  # back to everything
    assert "door_slam.wav" in names(window) or not window.browsing.isVisible()
    # Auditioned sounds are listed, newest first.
    search(qtbot, window, "")
    for name in ("door_slam.wav", "glass_break_01.wav"):
        window.results.selectRow(names(window).index(name))
        window.play_from_start()
    with qtbot.waitSignal(window.bridge.results_ready, timeout=10000):
        browse.tree.itemClicked.emit(browse.recent, 0)
    assert names(window)[:2] == ["glass_break_01.wav", "door_slam.wav"]
    assert window.settings.value("recent").split("\n")[0].endswith("glass_break_01.wav")
    with qtbot.waitSignal(window.bridge.results_ready, timeout=10000):
        browse.tree.itemClicked.emit(browse.favorites, 0)
    assert window.query_text() == "fav" and names(window) == []  # none marked yet


def test_region_selection_renders_a_clip_to_drag(qtbot, window):
    search(qtbot, window, "creak")
    with qtbot.waitSignal(window.bridge.detail_ready, timeout=10000):
        window.results.selectRow(0)
    with qtbot.waitSignal(window.bridge.clip_ready, timeout=10000) as clip:
        window.detail.waveform.region_selected.emit(0.25, 0.75)
    path = clip.args[0]["path"]
    assert path.endswith("door creak ü_0.250-0.750s.wav")
    mime = window.detail.drag_clip.mime_data()
    assert [u.toLocalFile() for u in mime.urls()] == [path]


def test_transfer_settings_shape_the_dragged_region_and_export_sounds(
    qtbot, window, tmp_path, monkeypatch
):
    import soundfile as sf
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    for name in app_settings.TRANSFER:
        monkeypatch.setenv(f"SONARIUM_{name.upper()}", "")  # restored after the test
    refused: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *args: refused.append(args[2]))
    dialog = app_settings.SettingsDialog(window.settings, window)
    dialog.transfer["transfer_fade_in"].setText("soon")
    dialog.accept()
    assert refused and "transfer settings" in refused[0]
    assert os.environ["SONARIUM_TRANSFER_FADE_IN"] == ""  # nothing of it was kept
    assert window.settings.value("transfer_fade_in") is None
    dialog.transfer["transfer_fade_in"].setText("0.05")
    dialog.transfer["transfer_rate"].setCurrentText("48000")
    dialog.transfer["transfer_bits"].setCurrentText("24")
    dialog.accept()
    assert window.settings.value("transfer_rate") == "48000"

    search(qtbot, window, "creak")
    with qtbot.waitSignal(window.bridge.rendered, timeout=10000) as rendered:
        window.results.selectRow(0)
    # Dragged from the results, the file goes out converted too.
    (whole,) = rendered.args[1]
    assert sf.info(whole).samplerate == 48000
    mime = window.model.mimeData([window.model.index(0, 0)])
    assert [u.toLocalFile() for u in mime.urls()] == [whole]
    with qtbot.waitSignal(window.bridge.clip_ready, timeout=10000) as clip:
        window.detail.waveform.region_selected.emit(0.25, 0.75)
    path = clip.args[0]["path"]
    info = sf.info(path)
    assert os.path.basename(path).startswith("door creak ü_0.250-0.750s_48k24_")
    assert (info.samplerate, info.subtype, info.frames) == (48000, "PCM_24", 24000)
    data, _ = sf.read(path)
    assert data[0] == 0.0  # faded in
    assert [u.toLocalFile() for u in window.detail.drag_clip.mime_data().urls()] == [path]

    out = tmp_path / "delivered"
    out.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args: str(out))
    from PySide6.QtWidgets import QInputDialog

    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("{name}_{rate}", True))
    with qtbot.waitSignal(
        window.bridge.message, timeout=10000, check_params_cb=lambda m: m.startswith("Exported")
    ) as done:
        window.export_sounds()
    assert done.args[0] == f"Exported 1 files to {out}"
    assert sf.info(str(out / "door creak ü_48000.wav")).samplerate == 48000
    # Delivered with the mode any new file of the user's gets, not mkstemp's 0600.
    from engine.catalog.sidefiles import FILE_MODE

    assert os.stat(out / "door creak ü_48000.wav").st_mode & 0o777 == FILE_MODE
    assert os.stat(path).st_mode & 0o777 == FILE_MODE
    assert window.settings.value("export_pattern") == "{name}_{rate}"


def test_changing_the_transfer_settings_renders_the_selected_region_again(
    qtbot, window, monkeypatch
):
    import soundfile as sf

    for name in app_settings.TRANSFER:
        monkeypatch.setenv(f"SONARIUM_{name.upper()}", "")  # restored after the test
    search(qtbot, window, "creak")
    with qtbot.waitSignal(window.bridge.detail_ready, timeout=10000):
        window.results.selectRow(0)
    window.detail.waveform.set_selection(0.25, 0.75)
    with qtbot.waitSignal(window.bridge.clip_ready, timeout=10000) as clip:
        window.detail.waveform.region_selected.emit(0.25, 0.75)
    assert sf.info(clip.args[0]["path"]).samplerate == 44100  # as the source
    dialog = window.open_settings()
    dialog.transfer["transfer_rate"].setCurrentText("48000")
    dialog.transfer["transfer_bits"].setCurrentText("24")
    with qtbot.waitSignal(window.bridge.clip_ready, timeout=10000) as clip:
        dialog.accept()
    path = clip.args[0]["path"]
    info = sf.info(path)
    assert (info.samplerate, info.subtype) == (48000, "PCM_24")
    assert [u.toLocalFile() for u in window.detail.drag_clip.mime_data().urls()] == [path]
    dialog.close()


def test_favorite_key_and_settings_persist(qtbot, window, tmp_path):
    search(qtbot, window, "glass")
    window.results.setFocus()
    with qtbot.waitSignal(window.bridge.detail_ready, timeout=10000):
        window.results.selectRow(0)
    with qtbot.waitSignal(window.bridge.detail_ready, timeout=10000) as detail:
        qtbot.keyClick(window.results, Qt.Key.Key_F)
    assert detail.args[0]["favorite"] is True
    search(qtbot, window, "fav")
    assert names(window) == ["glass_break_01.wav"]
    dialog = app_settings.SettingsDialog(window.settings, window)
    dialog.device.setCurrentText("cpu")
    dialog.model.setText("/models/clap")
    assert dialog.jobs.text() == "auto"
    dialog.jobs.setValue(3)
    dialog.accept()
    reread = app_settings.open_settings(str(tmp_path / "settings.ini"))
    assert app_settings.get(reread, "device") == "cpu"
    assert app_settings.get(reread, "clap_model") == "/models/clap"
    assert app_settings.get(reread, "jobs") == "3"
    assert app_settings.SettingsDialog(reread, window).jobs.value() == 3


def test_collections_in_the_window(qtbot, window, monkeypatch):
    from PySide6.QtWidgets import QInputDialog

    search(qtbot, window, "door")
    window.results.selectAll()
    assert len(window.selected_ids()) == 2
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Reel 3", True))
    with qtbot.waitSignal(
        window.bridge.status_changed, timeout=10000,
        check_params_cb=lambda s: [c["files"] for c in s["collections"]] == [2],
    ):  # fmt: skip
        window.collect_in_new()
    panel = window.library_panel
    assert panel.collections.item(0).text() == "Reel 3 (2)"
    assert window.collection_names == ["Reel 3"]
    node = window.browse.collections
    assert (node.child(0).text(0), node.child(0).text(1)) == ("Reel 3", "2")
    search(qtbot, window, "")
    with qtbot.waitSignal(window.bridge.results_ready, timeout=10000):
        window.browse.tree.itemClicked.emit(node.child(0), 0)
    assert sorted(names(window)) == ["door creak ü.flac", "door_slam.wav"]
    search(qtbot, window, "door")
    with qtbot.waitSignal(window.bridge.results_ready, timeout=10000):
        panel.collections.itemClicked.emit(panel.collections.item(0))
    assert window.query_text().startswith('col:"Reel 3"')  # with what is typed
    assert window.browsing.text().startswith("Browsing collection Reel 3")
    assert sorted(names(window)) == ["door creak ü.flac", "door_slam.wav"]
    # The detail of the current file lists its collections; remove it from this one.
    window.results.clearSelection()
    with qtbot.waitSignal(
        window.bridge.detail_ready, timeout=10000,
        check_params_cb=lambda row: row["collections"] == ["Reel 3"],
    ):  # fmt: skip
        window.results.selectRow(0)
    removed = window.current_result()["name"]
    with qtbot.waitSignal(
        window.bridge.status_changed, timeout=10000,
        check_params_cb=lambda s: [c["files"] for c in s["collections"]] == [1],
    ):  # fmt: skip
        window.collect("Reel 3", False)
    search(qtbot, window, 'col:"Reel 3"')
    assert removed not in names(window) and len(names(window)) == 1
    panel.collections.setCurrentRow(0)
    with qtbot.waitSignal(
        window.bridge.status_changed, timeout=10000,
        check_params_cb=lambda s: s["collections"] == [],
    ):  # fmt: skip
        panel.delete_collection_button.click()
    assert panel.collections.count() == 0 and window.browse.collections.childCount() == 0


def test_command_line_and_environment_win_over_stored_settings(tmp_path, monkeypatch, qtbot):
    settings = app_settings.open_settings(str(tmp_path / "prec.ini"))
    settings.setValue("similar_space", "mfcc")
    settings.setValue("device", "cpu")
    for env in ("SONARIUM_SIMILAR_SPACE", "SONARIUM_DEVICE"):
        monkeypatch.setenv(env, "x")
        monkeypatch.delenv(env)
    assert app_settings.get(settings, "similar_space") == "mfcc"
    monkeypatch.setenv("SONARIUM_SIMILAR_SPACE", "clap")
    assert app_settings.get(settings, "similar_space") == "clap"
    # apply_to_engine exports the stored pick only where nothing chose already.
    app_settings.apply_to_engine(settings)
    assert os.environ["SONARIUM_SIMILAR_SPACE"] == "clap"
    assert os.environ["SONARIUM_DEVICE"] == "cpu"
    # The dialog shows and saves the user's picks, never a value of this run's environment.
    dialog = app_settings.SettingsDialog(settings)
    qtbot.addWidget(dialog)
    assert dialog.space.currentText() == "mfcc"
    dialog.accept()
    assert app_settings.stored(settings, "similar_space") == "mfcc"


def test_query_history_is_kept(qtbot, window, tmp_path):
    search(qtbot, window, "door")
    qtbot.keyClick(window.search_field, Qt.Key.Key_Return)
    assert window.history[0] == "door"
    reread = app_settings.open_settings(str(tmp_path / "settings.ini"))
    assert app_settings.get(reread, "history").split("\n")[0] == "door"


def drop(window, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(
        QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier, QEvent.Type.Drop,
    )  # fmt: skip
    window.dropEvent(event)


def test_dropping_a_folder_adds_it_and_a_file_finds_similar(qtbot, window, tmp_path):
    new = tmp_path / "more"
    write(new / "whoosh.wav", noise(0.5, seed=3), 44100)
    with qtbot.waitSignal(window.bridge.index_finished, timeout=60000) as done:
        drop(window, [new])
    assert done.args[0]["added"] == 1 and done.args[0]["embedded"] >= 1
    search(qtbot, window, "whoosh")
    assert names(window) == ["whoosh.wav"]
    outside = write(tmp_path / "outside.wav", tone(1.2, freq=310), 44100)
    with qtbot.waitSignal(
        window.bridge.results_ready, timeout=60000,
        check_params_cb=lambda payload: payload["kind"] == "similar",
    ) as similar:  # fmt: skip
        drop(window, [outside])
    # mfcc space in this test: the nearest sound to a 310 Hz tone is the 300 Hz tone.
    assert similar.args[0]["kind"] == "similar"
    assert similar.args[0]["results"][0]["name"] == "door creak ü.flac"


def test_dropping_any_indexed_audio_suffix_finds_similar(window, tmp_path, monkeypatch):
    """The window accepts exactly the suffixes the scanner indexes (.bwf, .rf64, .caf...)."""
    asked = []
    monkeypatch.setattr(window, "find_similar", lambda path, *a, **k: asked.append(path))
    dropped = []
    for suffix in sorted(AUDIO_SUFFIXES) + [".BWF"]:
        path = tmp_path / f"take_01{suffix}"
        path.write_bytes(b"")
        dropped.append(str(path))
        drop(window, [path])
    assert ".bwf" in AUDIO_SUFFIXES and asked == dropped
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    drop(window, [notes])
    assert asked == dropped


def test_a_failing_request_is_answered_and_never_drops_the_rest(qtbot, window, monkeypatch):
    """One request raising on the query thread must not lose the requests drained with it,
    and a failed search is answered, so the window never waits forever ("Finding...")."""
    from engine.library import Library

    original = Library.search

    def search_or_break(self, query, *args, **kwargs):
        if query == "breaks":
            raise RuntimeError("disk on fire")
        return original(self, query, *args, **kwargs)

    monkeypatch.setattr(Library, "search", search_or_break)
    monkeypatch.setattr(Library, "overview_peaks", lambda self, ids: 1 / 0)
    bridge = window.bridge
    box = bridge._query_in
    # Three requests in one drained batch: a failing one, then two that must be answered.
    box.items.put(("overviews", ([1],)))
    box.items.put(("search", (bridge._latest + 1, "breaks", 10)))
    with (
        qtbot.waitSignal(bridge.query_failed, timeout=10000) as failed,
        qtbot.waitSignal(bridge.message, timeout=10000) as message,
    ):
        bridge._latest += 1
        box.posted.emit()
    assert failed.args[0] == "Search failed: RuntimeError: disk on fire"
    assert "ZeroDivisionError" in message.args[0]
    # The query thread is still alive and answering.
    search(qtbot, window, "glass")
    assert names(window) == ["glass_break_01.wav"]


def test_startup_brings_the_library_up_to_date(qtbot, tmp_path, library, sounds):
    # A file added while the app was closed is found by the incremental index at start.
    write(sounds / "late_arrival.wav", noise(0.3, seed=9), 44100)
    bridge = EngineBridge(str(library.dir), spaces=("mfcc",))
    settings = app_settings.open_settings(str(tmp_path / "s2.ini"))
    win = MainWindow(bridge, None, settings)
    qtbot.addWidget(win)
    with qtbot.waitSignal(bridge.index_finished, timeout=60000) as done:
        win.show()
    assert done.args[0]["added"] == 1
    search(qtbot, win, "late")
    assert names(win) == ["late_arrival.wav"]
    win.close()


def test_screenshot_command_renders_a_picture(tmp_path, library, sounds):
    out = tmp_path / "shot.png"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "screenshot", str(out), "--query", "door",
         "--library", str(library.dir)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    image = QImage(str(out))
    assert image.width() > 600 and image.height() > 400
    pixels = np.array(
        [
            image.pixel(x, y)
            for x in range(0, image.width(), 17)
            for y in range(0, image.height(), 13)
        ]
    )
    assert len(np.unique(pixels)) > 20  # not blank: text, waveforms and widgets


def test_reveal_falls_back_to_opening_the_folder(monkeypatch, tmp_path):
    # No D-Bus session here: the folder is opened instead of failing.
    import gui.main_window as mw

    opened = []
    monkeypatch.setattr(mw.QDesktopServices, "openUrl", lambda url: opened.append(url))
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    target = write(tmp_path / "x" / "a.wav", tone(0.1), 8000)
    mw.reveal_in_file_manager(str(target))
    assert [u.toLocalFile() for u in opened] == [str(tmp_path / "x")]


def test_library_panel_shows_learning_progress(qtbot, window):
    panel = window.library_panel
    panel.set_progress({"stage": "learning-training", "done": 30, "total": 300, "rate": 9.0})
    assert panel.progress_label.text() == "Learning text search from names (training): 30/300"
    assert panel.progress.value() == 30 and panel.progress.maximum() == 300
    message = "only 3 files are described by their names, descriptions or tags"
    panel.set_progress(
        {"stage": "learning-skipped", "done": 0, "total": 0, "rate": 0, "message": message}
    )
    assert panel.progress_label.text() == message


def test_model_setting_makes_the_app_index_and_search_with_that_clap(
    qtbot, tmp_path, library, sounds, monkeypatch
):
    """Settings ▸ Text-search model (a local folder here: a tiny random ClapModel saved as
    safetensors, tests/test_clap.py) reaches the indexing process and the query thread."""
    import os

    from engine.catalog.vectors import VectorStore

    tiny_folder = save_tiny_clap(tmp_path / "tiny-clap")
    # Set, then deleted: teardown then removes what apply_to_engine exports.
    monkeypatch.setenv("SONARIUM_CLAP_MODEL", "placeholder")
    monkeypatch.delenv("SONARIUM_CLAP_MODEL")
    settings = app_settings.open_settings(str(tmp_path / "clap.ini"))
    settings.setValue("model", str(tiny_folder))  # the key earlier versions stored
    app_settings.apply_to_engine(settings)
    assert os.environ["SONARIUM_CLAP_MODEL"] == str(tiny_folder)
    bridge = EngineBridge(str(library.dir), spaces=("clap",))
    win = MainWindow(bridge, FakePlayer(), settings)
    qtbot.addWidget(win)
    with qtbot.waitSignal(bridge.index_finished, timeout=180000) as done:
        win.show()
    assert done.args[0]["embedded"] == 3
    space = VectorStore(library.catalog).space("clap")
    assert space["identity"].startswith(f"clap:{tiny_folder}@")
    # A text query is embedded by the same model: content results carry their moment.
    search(qtbot, win, "zzz unrelated words")
    assert win.model.rowCount() == 3
    assert all(win.model.result(r)["start"] == 0.0 for r in range(3))
    win.close()


needs_models = requires("aisfx", "all_minilm_l6_v2")


# These two run the app in a fresh interpreter, as a user starts it: the failures they
# guard against (torch first used on the query thread) don't show in this test process,
# which already has torch loaded on its main thread.
APP_SNIPPET = """
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from gui import settings as app_settings
from gui.bridge import EngineBridge
from gui.main_window import MainWindow
app = QApplication([])
bridge = EngineBridge(sys.argv[1])
settings = app_settings.open_settings(sys.argv[2])
settings.setValue("similar_space", "aisfx")
win = MainWindow(bridge, None, settings, auto_index=False)
win.show()
def got(payload):
    # The window lists the library (an empty query) as it opens: wait for our own answer.
    ours = sys.argv[3] != "search" or payload["query"] == sys.argv[4]
    if payload["kind"] == sys.argv[3] and ours:
        print("results", payload["kind"], [r["name"] for r in payload["results"]], flush=True)
        app.quit()
bridge.results_ready.connect(got)
if sys.argv[3] == "similar":
    QTimer.singleShot(500, lambda: bridge.similar(sys.argv[4], space="aisfx"))
else:
    QTimer.singleShot(500, lambda: bridge.search(sys.argv[4]))
app.exec()
bridge.shutdown()
"""


def run_app_snippet(tmp_path, library, kind, arg):
    proc = subprocess.run(
        [sys.executable, "-c", APP_SNIPPET, str(library.dir), str(tmp_path / "s.ini"), kind, arg],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("results"))
    return eval(line.split(" ", 2)[2])  # a list of names printed by the snippet


@needs_models
def test_text_search_over_sound_answers_in_the_app(tmp_path, library):
    """The query side's first text query loads the real sentence encoder (this
    deadlocked the app when it ran in torch on the QThread itself; it is numpy now)."""
    from engine.adapt.adapter import AdaptOptions
    from tests.fakes import FakeAisfx, build

    build(tmp_path, library, FakeAisfx())
    library.adapt(AdaptOptions(steps=20, dim=16))
    names = run_app_snippet(tmp_path, library, "search", "sparrow singing")
    # Content ranking found the unnamed file that sounds like the birds.
    assert "pcv637.wav" in names[:12], names


@needs_models
def test_find_similar_to_an_outside_file_with_aisfx_in_the_app(tmp_path, library, sounds):
    """Dropping an outside file embeds it with the real aisfx model on the query side
    (torch.load there crashed the app before engine/models/model_thread.py)."""
    from engine.embed.pipeline import Embedder
    from engine.models.aisfx.space import AisfxSpace

    Embedder(library.catalog, [AisfxSpace(device="cpu")]).run()
    outside = write(tmp_path / "outside.wav", noise(0.7, seed=5), 44100)
    names = run_app_snippet(tmp_path, library, "similar", str(outside))
    # Noise sounds most like the noise file.
    assert names[0] == "glass_break_01.wav" and len(names) == 3


def test_check_library_reports_in_a_window_without_blocking(qtbot, window, library):
    with qtbot.waitSignal(window.bridge.checked, timeout=20000) as checked:
        window.check_library()
    assert checked.args[0]["ok"] and checked.args[0]["counts"]["files"] == 3
    qtbot.waitUntil(lambda: window._check_box.isVisible(), timeout=5000)
    assert "Catalog: sound (3 files" in window._check_box.text()
    window._check_box.close()
    # A damaged catalog (a tag row whose file is gone, as a crash of old SQLite could
    # leave) is reported as such, with what to do.
    library.catalog.conn.execute("PRAGMA foreign_keys = OFF")
    library.catalog.conn.execute("INSERT INTO user_tags VALUES (987654, 'orphan')")
    with qtbot.waitSignal(window.bridge.checked, timeout=20000) as checked:
        window.check_library()
    assert not checked.args[0]["ok"]
    qtbot.waitUntil(lambda: window._check_box.isVisible(), timeout=5000)
    assert "DAMAGED" in window._check_box.text() and ".recover" in window._check_box.text()


def test_a_slow_search_says_it_is_working(qtbot, window, monkeypatch):
    from gui.main_window import SEARCHING_AFTER_MS

    asked = []
    monkeypatch.setattr(window.bridge, "search", asked.append)  # no answer comes
    window.search_field.setText("door")
    window._debounce.stop()
    window.run_search()
    assert asked == ["door"] and "Searching" not in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: "Searching “door”" in window.statusBar().currentMessage(),
                    timeout=SEARCHING_AFTER_MS * 20)  # fmt: skip
    window.show_results({"query": "door", "kind": "search", "results": []})
    assert not window._searching.isActive()
    assert window.statusBar().currentMessage() == "0 results for “door”"


def test_results_come_in_pages_as_the_view_scrolls(qtbot, window, monkeypatch):
    """A query asks for one page; reaching the end of the rows asks the engine for the
    next page of the same query, appended in engine order; a new search drops it."""
    import gui.bridge

    monkeypatch.setattr(gui.bridge, "RESULT_PAGE", 2)
    search(qtbot, window, "")
    assert window.model.rowCount() == 2 and window.model.canFetchMore()
    assert "2+ results" in window.statusBar().currentMessage()
    with qtbot.waitSignal(window.model.rowsInserted, timeout=10000):
        window.model.fetchMore()  # what the view does when scrolled to the end
    assert sorted(names(window)) == ["door creak ü.flac", "door_slam.wav", "glass_break_01.wav"]
    qtbot.waitUntil(lambda: not window.model.has_more(), timeout=10000)  # the last page
    assert "3 results" in window.statusBar().currentMessage()
    # A page asked for just before a new search never lands in the new results.
    search(qtbot, window, "door")
    window.model.fetchMore()
    search(qtbot, window, "glass")
    qtbot.wait(200)
    assert names(window) == ["glass_break_01.wav"]


def test_only_the_newest_waited_on_request_of_a_batch_is_run(qtbot, window, monkeypatch):
    """Typing faster than searches answer queues requests; the query thread runs only the
    newest search of what it drains at once (the window shows nothing else)."""
    from engine.library import Library

    asked: list[str] = []
    original = Library.search

    def recording(self, query, *args, **kwargs):
        asked.append(query)
        return original(self, query, *args, **kwargs)

    monkeypatch.setattr(Library, "search", recording)
    bridge = window.bridge
    box = bridge._query_in
    for text in ("g", "gl", "gla"):
        bridge._latest += 1
        box.items.put(("search", (bridge._latest, text, 10)))
    with qtbot.waitSignal(bridge.results_ready, timeout=10000) as answered:
        box.posted.emit()
    assert answered.args[0]["query"] == "gla"
    assert asked == ["gla"]


@pytest.mark.parametrize(
    ("size", "scale", "extra"),
    [("1366x768", "1", ["--view", "spectrogram", "--theme", "light"]),
     ("3840x2160", "2", ["--view", "both"]), ("1366x768", "1", ["--duplicates"])],
)  # fmt: skip
def test_screenshots_fit_a_laptop_and_a_4k_screen(tmp_path, library, sounds, size, scale, extra):
    out = tmp_path / "shot.png"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "screenshot", str(out), "--query", "door",
         "--library", str(library.dir), "--size", size, *extra],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "QT_SCALE_FACTOR": scale},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    image = QImage(str(out))
    w, h = (int(v) for v in size.split("x"))
    if "--duplicates" in extra:
        assert image.width() <= w  # the dialog, not the window
    else:
        # The whole window fits the screen (device pixels: logical size times the scale).
        assert (image.width(), image.height()) == (w * int(scale), h * int(scale))
    colours = {
        image.pixel(x, y) for x in range(0, image.width(), 23) for y in range(0, image.height(), 19)
    }
    assert len(colours) > (8 if "--duplicates" in extra else 20)  # drawn, not blank


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)])
def test_first_run_shows_a_readable_call_to_add_a_folder(
    qtbot, tmp_path, library, monkeypatch, size
):
    bridge = EngineBridge(str(library.dir), spaces=("mfcc",))
    settings = app_settings.open_settings(str(tmp_path / "settings.ini"))
    win = MainWindow(bridge, FakePlayer(), settings, auto_index=False)
    qtbot.addWidget(win)
    win.resize(*size)
    with qtbot.waitSignal(bridge.status_changed, timeout=10000):
        win.show()
    qtbot.waitUntil(lambda: win.results_stack.currentWidget() is win.empty_state)
    assert not win.examples.isVisible()
    # Browse in front, also when a narrow screen stacks the Metadata panel in its tabs.
    library_dock = win._docks[0]
    qtbot.waitUntil(lambda: library_dock.visibleRegion().isEmpty())
    assert not win._browse_dock.visibleRegion().isEmpty()
    text = win.empty_state.text
    # Every wrapped line of the explanation is drawn: none clipped under the title.
    qtbot.waitUntil(lambda: text.height() >= text.heightForWidth(text.width()))
    assert text.width() > 200
    chosen = tmp_path / "sfx"
    write(chosen / "thunder.wav", noise(0.5, seed=4), 44100)
    monkeypatch.setattr(
        "gui.library_panel.QFileDialog.getExistingDirectory", lambda *a, **k: str(chosen)
    )
    # Progress shows in the status bar whichever panel is in front (Browse, here).
    seen = []
    bridge.index_progressed.connect(
        lambda p: seen.append((win.index_status.isVisible(), win.index_status.text()))
    )
    with qtbot.waitSignal(bridge.index_finished, timeout=60000) as done:
        qtbot.mouseClick(win.empty_state.add_button, Qt.MouseButton.LeftButton)
    assert done.args[0]["added"] == 1
    assert seen and all(visible for visible, _ in seen)
    assert any(text.startswith("Scanning: ") for _, text in seen)
    assert not win.index_status.isVisible() and not win.index_bar.isVisible()
    qtbot.waitUntil(lambda: win.results_stack.currentWidget() is win.results)
    qtbot.waitUntil(win.examples.isVisible)
    win.close()


def test_indexing_finishing_keeps_the_sound_being_auditioned(qtbot, window, sounds, monkeypatch):
    search(qtbot, window, "door")
    window.results.selectRow(0)
    chosen = window.current_result()["id"]
    searches = []
    monkeypatch.setattr(window, "run_search", lambda: searches.append(window.query_text()))
    write(sounds / "late_arrival.wav", noise(0.3, seed=9), 44100)
    with qtbot.waitSignal(window.bridge.index_finished, timeout=60000) as done:
        window.rescan()
    assert done.args[0]["added"] == 1
    with qtbot.waitSignal(window.bridge.status_changed, timeout=10000):
        window.bridge.refresh_status()
    assert searches == [] and window.current_result()["id"] == chosen
    # With nothing selected, the finished index shows in the results.
    window.results.clearSelection()
    window.results.setCurrentIndex(window.model.index(-1, 0))
    with qtbot.waitSignal(window.bridge.index_finished, timeout=60000):
        window.rescan()
    assert searches and set(searches) == {"door"}


def test_near_copies_are_left_for_the_user_to_tick(qtbot):
    from gui.duplicates_dialog import DuplicatesDialog

    def entry(i, exact, similarity):
        return {"id": i, "name": f"hit {i}.wav", "folder": "/sfx/kit",
                "path": f"/sfx/kit/hit {i}.wav", "format": "WAV", "subtype": "PCM_16",
                "sample_rate": 44100, "duration": 0.5, "exact": exact,
                "similarity": similarity}  # fmt: skip

    dialog = DuplicatesDialog()
    qtbot.addWidget(dialog)
    dialog.show_groups([{"kind": "near", "keep": 1, "files": [
        entry(1, True, 1.0), entry(2, True, 1.0), entry(3, False, 0.93)]}])  # fmt: skip
    top = dialog.tree.topLevelItem(0)
    assert [top.child(i).checkState(0) for i in range(3)] == [
        Qt.CheckState.Unchecked, Qt.CheckState.Checked, Qt.CheckState.Unchecked]  # fmt: skip
    assert dialog.ticked() == [2]
    assert top.child(2).text(5) == "0.930"
    assert "1 near copies left unticked" in dialog.summary.text()


def test_a_drag_of_unrendered_files_renders_them_instead_of_sending_the_sources(
    qtbot, window, monkeypatch
):
    import soundfile as sf

    for name in app_settings.TRANSFER:
        monkeypatch.setenv(f"SONARIUM_{name.upper()}", "")  # restored after the test
    monkeypatch.setenv("SONARIUM_TRANSFER_RATE", "48000")
    from PySide6.QtCore import QItemSelectionModel

    assert window.model.rowCount() == 3  # the whole library, listed
    with qtbot.waitSignal(window.bridge.rendered, timeout=10000):
        window.results.selectRow(0)
    # The second sound joins the selection without ever being current: not rendered.
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    window.results.selectionModel().select(window.model.index(1, 0), flags)
    rows = [window.model.index(r, 0) for r in range(2)]
    chosen = sorted(window.selected_ids())
    (missing,) = window.model.unrendered(rows)
    assert missing == window.model.result(1)["path"]
    # A real press on the selection and a move past the drag distance: the drag is
    # refused and the files are rendered instead; the rest of that press (the button still
    # down) leaves the selection alone, no rubber band from where the drag began.
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    viewport = window.results.viewport()
    start = window.results.visualRect(window.model.index(1, 0)).center()

    def move(dy):
        at = QPointF(start.x() + 5, start.y() + dy)
        QApplication.sendEvent(viewport, QMouseEvent(
            QEvent.Type.MouseMove, at, viewport.mapToGlobal(at), Qt.MouseButton.NoButton,
            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
        ))  # fmt: skip

    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    with qtbot.waitSignal(window.bridge.rendered, timeout=10000) as rendered:
        move(30)  # past the drag distance, down over the third row
    assert rendered.args[0] == missing
    move(40)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=start)
    assert sorted(window.selected_ids()) == chosen
    assert window.statusBar().currentMessage().startswith("Rendered with the transfer")
    assert window.model.unrendered(rows) == []
    urls = [u.toLocalFile() for u in window.model.mimeData(rows).urls()]
    assert len(urls) == 2 and all(sf.info(u).samplerate == 48000 for u in urls)


def test_relevance_stays_in_view_and_the_folder_takes_what_is_left(qtbot, window):
    # A 1500 px screen with the Browse panel open left about 1,000 px for the results;
    # the columns once summed to 1,020 px with Relevance last, so it was cut off.
    window.resize(1500, 950)
    search(qtbot, window, "door")
    view = window.results
    header = view.horizontalHeader()
    relevance, folder = COLUMNS.index("Relevance"), COLUMNS.index("Folder")
    assert header.visualIndex(folder) == header.count() - 1
    assert header.visualIndex(relevance) < header.visualIndex(folder)
    right = header.sectionViewportPosition(relevance) + header.sectionSize(relevance)
    assert right <= view.viewport().width()
    # The folder fills the rest of the width (no empty strip after the last column).
    end = header.sectionViewportPosition(folder) + header.sectionSize(folder)
    assert end >= view.viewport().width() - 1
    assert window.model.data(window.model.index(0, relevance)) not in (None, "")
