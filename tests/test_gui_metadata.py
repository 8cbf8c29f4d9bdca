"""The metadata editor in the window (offscreen): the selected files' fields, a change
set on several files at once, undo, and Write to files read back by other readers."""

import mutagen

from tests.requires import requires

pytestmark = requires("pytestqt", "PySide6")

from PySide6.QtCore import QItemSelectionModel  # noqa: E402

from gui.metadata_editor import SEVERAL  # noqa: E402
from tests import test_gui  # noqa: E402
from tests.test_gui import names, search  # noqa: E402

# The window over the small library of tests/test_gui.py.
sounds = test_gui.sounds
window = test_gui.window


def select(qtbot, window, wanted):
    """Select the rows named ``wanted`` and wait for the editor to show their fields."""
    selection = window.results.selectionModel()
    rows = [names(window).index(n) for n in wanted]
    with qtbot.waitSignal(
        window.bridge.metadata_ready, timeout=10000,
        check_params_cb=lambda p: len(p["ids"]) == len(wanted),
    ):  # fmt: skip
        selection.clearSelection()
        for row in rows:
            index = window.model.index(row, 0)
            flags = (
                QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
            )
            selection.select(index, flags)
    qtbot.waitUntil(lambda: len(window.metadata_editor.file_ids) == len(wanted), timeout=5000)


def message(qtbot, window, start):
    return qtbot.waitSignal(
        window.bridge.message, timeout=10000, check_params_cb=lambda m: m.startswith(start)
    )


def test_edit_several_files_undo_and_write_them(qtbot, window, sounds):
    editor = window.metadata_editor
    wav, flac = "door_slam.wav", "door creak ü.flac"
    select(qtbot, window, [wav])
    editor.set_text("rating", "2")
    with message(qtbot, window, "Changed 1 fields of 1 files"):
        editor.apply_button.click()

    select(qtbot, window, [wav, flac])
    assert editor.editors["rating"].placeholderText() == SEVERAL  # the two files differ
    assert editor.text("rating") == ""
    editor.set_text("description", "squeaky hinge, slow")
    editor.set_text("keywords", "hinge")
    with message(qtbot, window, "Changed 4 fields of 2 files"):
        editor.apply_button.click()
    qtbot.waitUntil(lambda: editor.pending.text().startswith("2 of these 2 files have"))
    search(qtbot, window, "squeaky")
    assert sorted(names(window)) == sorted([wav, flac])

    with message(qtbot, window, "Undid 4 changes to 2 files"):
        window.undo_edit()
    search(qtbot, window, "squeaky")
    assert names(window) == []
    with message(qtbot, window, "Redid 4 changes"):
        window.redo_edit()
    search(qtbot, window, "squeaky")
    select(qtbot, window, [wav, flac])
    assert editor.text("description") == "squeaky hinge, slow"  # the same on both

    with qtbot.waitSignal(window.bridge.written, timeout=20000) as written:
        editor.write_button.click()
    assert sorted(written.args[0]["written"]) == sorted(str(sounds / n) for n in (wav, flac))
    assert mutagen.File(sounds / flac)["DESCRIPTION"] == ["squeaky hinge, slow"]
    assert b"squeaky hinge, slow" in (sounds / wav).read_bytes()
    qtbot.waitUntil(lambda: editor.pending.text() == "", timeout=5000)


def test_a_bad_value_is_said_and_nothing_changes(qtbot, window):
    editor = window.metadata_editor
    select(qtbot, window, ["door_slam.wav"])
    editor.set_text("origination_date", "yesterday")
    with message(qtbot, window, "origination_date must be a date"):
        editor.apply_button.click()
    select(qtbot, window, ["door_slam.wav"])
    assert editor.text("origination_date") == ""


def test_with_nothing_selected_the_editor_is_disabled(qtbot, window):
    select(qtbot, window, ["door_slam.wav"])
    assert window.metadata_editor.apply_button.isEnabled()
    with qtbot.waitSignal(
        window.bridge.metadata_ready, timeout=10000, check_params_cb=lambda p: p["ids"] == []
    ):
        window.results.selectionModel().clear()
    assert not window.metadata_editor.apply_button.isEnabled()
    assert not window.metadata_editor.editors["description"].isEnabled()


def test_export_and_import_a_csv_through_the_window(qtbot, window, sounds, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    out = tmp_path / "meta.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    window.results.selectionModel().clear()
    with message(qtbot, window, "Exported the metadata of 3 files"):
        window.export_csv()
    text = out.read_text(encoding="utf-8-sig").replace("\r\n", "\n")
    lines = text.splitlines()
    assert lines[0].startswith("Filename,Path,Description,Keywords,Category")
    header = lines[0].split(",")
    edited = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        cells[header.index("Description")] = "rusty gate" if "door" in line else ""
        edited.append(",".join(cells))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(out), ""))
    out.write_text("\n".join(edited) + "\n", encoding="utf-8")
    with qtbot.waitSignal(window.bridge.import_planned, timeout=10000) as planned:
        window.import_csv()
    assert planned.args[0]["files"] == 2 and planned.args[0]["unmatched"] == []
    dialog = window._import_dialog
    with message(qtbot, window, "Imported 2 changes to 2 files; Wrote metadata into 2"):
        dialog.write_button.click()
    assert b"rusty gate" in (sounds / "door_slam.wav").read_bytes()
    search(qtbot, window, "rusty gate")
    assert sorted(names(window)) == ["door creak ü.flac", "door_slam.wav"]


def test_rename_to_ucs_through_the_window_and_undo(qtbot, window, sounds):
    select(qtbot, window, ["door_slam.wav"])
    editor = window.metadata_editor
    editor.set_text("catid", "DOORMetl")
    editor.set_text("fx_name", "Slam Hard")
    with message(qtbot, window, "Changed 2 fields"):
        editor.apply_button.click()
    with qtbot.waitSignal(window.bridge.rename_planned, timeout=10000) as planned:
        window.rename_selected()
    assert planned.args[0][0]["action"] == "skip"  # no CreatorID/SourceID yet
    dialog = window._rename_dialog
    assert not dialog.rename_button.isEnabled()
    dialog.creator.setText("AD")
    dialog.source.setText("TEST")
    with qtbot.waitSignal(window.bridge.rename_planned, timeout=10000):
        dialog.preview_button.click()
    assert dialog.table.item(0, 1).text() == "DOORMetl_Slam Hard_AD_TEST.wav"
    with qtbot.waitSignal(window.bridge.results_ready, timeout=10000):
        dialog.rename_button.click()
    assert (sounds / "DOORMetl_Slam Hard_AD_TEST.wav").exists()
    assert "DOORMetl_Slam Hard_AD_TEST.wav" in names(window)
    with qtbot.waitSignal(window.bridge.results_ready, timeout=10000):
        window.bridge.undo_rename()
    assert (sounds / "door_slam.wav").exists() and "door_slam.wav" in names(window)


def test_suggested_categories_show_as_buttons_and_keys_take_them(qtbot, window):
    editor = window.metadata_editor
    select(qtbot, window, ["door_slam.wav"])
    file_id = editor.file_ids[0]
    found = [{"catid": c, "category": "", "subcategory": "", "confidence": p}
             for c, p in (("DOORWood", 0.6), ("DOORMetl", 0.3), ("IMPTWood", 0.05))]  # fmt: skip
    editor.show_suggestions({"ids": [file_id], "suggestions": {file_id: found}})
    assert all(not b.isHidden() and b.text() for b in editor.suggest_buttons)
    assert editor.suggest_buttons[1].text() == "2: DOORMetl (30%)"
    taken = []
    editor.accept_requested.disconnect()
    editor.accept_requested.connect(lambda ids, rank: taken.append((ids, rank)))
    window.results.setFocus()
    qtbot.keyClick(window.results, "2")
    assert taken == [([file_id], 1)]
    editor.suggest_buttons[0].click()
    assert taken[-1] == ([file_id], 0)


def test_collections_made_renamed_filled_by_dropping_and_exported(
    qtbot, window, sounds, tmp_path, monkeypatch
):
    from PySide6.QtCore import QMimeData, QPointF, Qt
    from PySide6.QtGui import QDropEvent
    from PySide6.QtWidgets import QFileDialog, QInputDialog

    panel = window.library_panel
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Reel 1", True))
    with qtbot.waitSignal(window.bridge.status_changed, timeout=10000,
                          check_params_cb=lambda s: s["collections"]):  # fmt: skip
        panel.new_collection_button.click()
    assert panel.collection_names == ["Reel 1"]

    mime = QMimeData()
    mime.setUrls([window.model.mimeData([window.model.index(0, 0)]).urls()[0]])
    item_pos = panel.collections.visualItemRect(panel.collections.item(0)).center()
    drop = QDropEvent(QPointF(item_pos), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)  # fmt: skip
    with qtbot.waitSignal(window.bridge.status_changed, timeout=10000,
                          check_params_cb=lambda s: s["collections"][0]["files"] == 1):  # fmt: skip
        panel.collections.dropEvent(drop)

    panel.collections.setCurrentRow(0)
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Client picks", True))
    renamed = lambda s: s["collections"][0]["name"] == "Client picks"  # noqa: E731
    with qtbot.waitSignal(window.bridge.status_changed, timeout=10000, check_params_cb=renamed):
        panel.rename_collection_button.click()

    out = tmp_path / "handover"
    panel.collections.setCurrentRow(0)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    with qtbot.waitSignal(window.bridge.collection_exported, timeout=10000) as exported:
        panel.export_collection_button.click()
    assert len(exported.args[0]["copied"]) == 1 and len(list(out.iterdir())) == 1


def test_the_category_tree_counts_files_and_shows_them(qtbot, window):
    editor = window.metadata_editor
    select(qtbot, window, ["door_slam.wav", "door creak ü.flac"])
    editor.set_text("catid", "DOORWood")
    editor.set_text("category", "DOORS")
    editor.set_text("subcategory", "WOOD")
    with qtbot.waitSignal(window.bridge.categories_ready, timeout=10000,
                          check_params_cb=lambda rows: rows and rows[0]["files"] == 2):  # fmt: skip
        editor.apply_button.click()
    browse = window.browse
    top = browse.categories.child(0)
    assert browse.categories.text(0) == "Categories" and browse.categories.childCount() == 1
    assert (top.text(0), top.text(1)) == ("DOORS", "2")
    assert top.child(0).text(0) == "WOOD (DOORWood)"
    shown = lambda p: p["query"].startswith("cat:DOORWood")  # noqa: E731
    with qtbot.waitSignal(window.bridge.results_ready, timeout=10000, check_params_cb=shown):
        browse.tree.itemClicked.emit(top.child(0), 0)
    assert sorted(names(window)) == ["door creak ü.flac", "door_slam.wav"]
    assert window.browsing.text().startswith("Browsing WOOD (DOORWood)")
    # The category combines with what is typed, as a folder does.
    search(qtbot, window, "slam")
    assert names(window) == ["door_slam.wav"]
    shown = lambda p: p["query"].startswith('cat:"DOORS"')  # noqa: E731
    with qtbot.waitSignal(window.bridge.results_ready, timeout=10000, check_params_cb=shown):
        browse.tree.itemClicked.emit(top, 0)
    assert names(window) == ["door_slam.wav"]


def test_the_write_on_edit_setting_writes_as_edits_are_applied(qtbot, window, sounds, monkeypatch):
    from gui.settings import SettingsDialog

    monkeypatch.setenv("SONARIUM_WRITE_ON_EDIT", "false")  # restored after the test
    dialog = SettingsDialog(window.settings, window)
    dialog.switches["write_on_edit"].setChecked(True)
    dialog.accept()
    assert window.settings.value("write_on_edit") == "true"
    select(qtbot, window, ["door_slam.wav"])
    window.metadata_editor.set_text("description", "written at once")
    with message(qtbot, window, "Changed 1 fields of 1 files; Wrote metadata into 1 files"):
        window.metadata_editor.apply_button.click()
    assert b"written at once" in (sounds / "door_slam.wav").read_bytes()


def test_searching_goes_on_while_files_are_written(qtbot, window, sounds, monkeypatch):
    """Writes run on the curating thread: a search answers while a write is held."""
    import threading

    import engine.curate.batch as batch

    held, release = threading.Event(), threading.Event()
    real = batch.write_fields

    def slow(*args, **kwargs):
        held.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "write_fields", slow)
    select(qtbot, window, ["door_slam.wav"])
    window.metadata_editor.set_text("description", "held write")
    with message(qtbot, window, "Changed 1 fields"):
        window.metadata_editor.apply_button.click()
    window.metadata_editor.write_button.click()
    assert held.wait(10)
    search(qtbot, window, "glass")  # answered while the write waits
    assert names(window) == ["glass_break_01.wav"]
    with qtbot.waitSignal(window.bridge.written, timeout=20000) as written:
        release.set()
    assert len(written.args[0]["written"]) == 1


def test_the_detail_pane_says_who_edited_what_and_whether_it_is_written(qtbot, window):
    window.detail.autoplay.setChecked(False)
    with qtbot.waitSignal(window.bridge.detail_ready, timeout=10000):
        window.results.setCurrentIndex(window.model.index(names(window).index("door_slam.wav"), 0))
    select(qtbot, window, ["door_slam.wav"])
    window.metadata_editor.set_text("keywords", "slam")
    with qtbot.waitSignal(window.bridge.detail_ready, timeout=10000,
                          check_params_cb=lambda row: row["edits"]):  # fmt: skip
        window.metadata_editor.apply_button.click()
    text = window.detail.metadata.toPlainText()
    assert "Keywords by " in text and "(not written)" in text


def test_the_unwritten_edits_line_reads_right_for_one_file_and_many():
    from gui.metadata_editor import pending_text

    assert pending_text(0, 3) == ""
    assert pending_text(1, 1) == "This file has edits not written into it yet"
    assert pending_text(1, 200) == "1 of these 200 files has edits not written into them yet"
    assert pending_text(37, 200) == "37 of these 200 files have edits not written into them yet"
