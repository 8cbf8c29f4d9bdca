"""Library.index: the one scan -> embed -> learn sequence, and folders removed under it."""

import threading

import pytest

from engine.catalog.vectors import VectorStore
from engine.library import Library
from tests.audio_factory import write
from tests.fakes import FakeAisfx, FakeSpace, dc


def make_folder(root, count, level=0.0):
    for i in range(count):
        write(root / f"clip_{i:03d}.wav", dc(0.2, level), 8000)
    return root


def test_index_scans_embeds_and_reports_each_stage(tmp_path, library, monkeypatch):
    monkeypatch.setattr("engine.models.spaces.make_space", lambda name, device="auto": FakeSpace())
    root = make_folder(tmp_path / "a", 3)
    stages = []
    report = library.index([root], spaces=("fake",), progress=lambda s, p: stages.append(s))
    assert report.roots == [str(root.resolve())]
    assert report.scan.added == 3 and report.embed.files == 3 and not report.cancelled
    assert stages[0] == "scanning" and "embedding" in stages
    # "fake" is not the default find-similar space: nothing to learn for it.
    assert report.learned is None and report.learn_skipped is None
    again = library.index(spaces=("fake",))
    assert again.scan.touched == 0 and again.embed.files == 0


def test_index_without_models_or_embedding(tmp_path, library, monkeypatch):
    monkeypatch.setattr("engine.models.spaces.available_spaces", lambda names, device: [])
    root = make_folder(tmp_path / "a", 2)
    report = library.index([root])
    assert report.scan.added == 2 and report.embed is None and report.no_model
    scanned_only = library.index(embed=False)
    assert scanned_only.embed is None and not scanned_only.no_model


def test_index_says_why_text_search_was_not_learned(tmp_path, library, monkeypatch):
    monkeypatch.setattr("engine.models.spaces.make_space", lambda name, device="auto": FakeAisfx())
    report = library.index([make_folder(tmp_path / "a", 2)], spaces=("aisfx",))
    assert report.embed.files == 2
    assert report.learned is None and "only 2 files are described" in report.learn_skipped


def test_a_cancelled_scan_stops_before_embedding(tmp_path, library, monkeypatch):
    monkeypatch.setattr("engine.models.spaces.make_space", lambda name, device="auto": FakeSpace())
    cancel = threading.Event()
    cancel.set()
    report = library.index([make_folder(tmp_path / "a", 3)], spaces=("fake",), cancel=cancel)
    assert report.cancelled and report.embed is None


@pytest.mark.parametrize("stage", ["scanning", "embedding"])
def test_removing_a_folder_while_it_is_indexed_finishes_cleanly(
    tmp_path, library, stage, monkeypatch
):
    """The app's query thread may forget a folder while its indexing process is half way:
    indexing must finish (or skip that folder's files), never die."""
    monkeypatch.setattr("engine.models.spaces.make_space", lambda name, device="auto": FakeSpace())
    gone = make_folder(tmp_path / "gone", 40, 0.1)
    kept = make_folder(tmp_path / "kept", 5, 0.2)
    library.add_folders([gone, kept])
    if stage == "embedding":
        library.scan(workers=1)
    removed = []

    def progress(current, snapshot):
        if current == stage and not removed:
            # Another connection, as the app's query thread has.
            with Library(library.dir) as other:
                removed.append(other.remove_folder(gone))

    report = library.index(spaces=("fake",), progress=progress)
    assert removed and not report.cancelled
    paths = {r["path"] for r in library.catalog.query("SELECT path FROM files")}
    assert not any(p.startswith(str(gone.resolve())) for p in paths)
    assert sum(p.startswith(str(kept.resolve())) for p in paths) == 5
    store = VectorStore(library.catalog)
    space_id = store.space("fake")["id"]
    assert store.embedded_count(space_id) == 5
    assert not library.catalog.query("SELECT * FROM embed_errors")
    assert [f["path"] for f in library.folders()] == [str(kept.resolve())]


def test_indexing_leaves_each_spaces_saved_search_index_up_to_date(tmp_path, library, monkeypatch):
    """The indexing process saves the index for what it stored, so the next app start
    loads it instead of building it; a later run that adds files saves it again."""
    import json

    monkeypatch.setattr("engine.models.spaces.make_space", lambda name, device="auto": FakeSpace())
    root = make_folder(tmp_path / "a", 8)
    library.index([root], spaces=("fake",))
    space = VectorStore(library.catalog).space("fake")
    stamp = json.loads((library.dir / "fake.files.json").read_text())
    assert stamp["generation"] == VectorStore(library.catalog).generation(space["id"])
    assert stamp["count"] == 8
    # One more file: this process's index follows it in memory, and the saved one is
    # built whole again.
    make_folder(root / "more", 1, level=0.1)
    library.index(spaces=("fake",))
    stamp = json.loads((library.dir / "fake.files.json").read_text())
    assert stamp["count"] == 9
    assert stamp["generation"] == VectorStore(library.catalog).generation(space["id"])
