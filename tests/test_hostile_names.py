"""File names the OS holds but that are not valid UTF-8 (an old CD rip's Latin-1, a
Windows zip's CP437), or that hold newlines and terminal escapes: indexed, stored exactly,
searchable by their decodable words, shown escaped, played, rendered and dragged as the
very file, through the engine, the CLI and the GUI's drag data."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import soundfile as sf

from engine.audio.decode import decode_mono
from engine.audio.export import export_region
from engine.catalog.paths import ESCAPE, os_bytes, os_path, shown, to_catalog, words_text
from engine.catalog.text import printable
from engine.embed.pipeline import Embedder
from tests.audio_factory import tone, wav_bytes
from tests.fakes import FakeSpace
from tests.test_cli import run_cli

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or os.fsencode("\udce9") != b"\xe9",
    reason="needs a POSIX file system that takes any bytes in a name",
)

LATIN1 = b"caf\xe9 ambience.wav"  # "café" in Latin-1: not UTF-8
CP437 = b"T\x81R SCHLAG.wav"  # "TÜR" from a DOS zip
NEWLINE = "door\nslam.wav"
ESCAPES = "\x1b[31mred\u202ewav.gnal.wav"


def _make(folder: Path) -> dict[str, bytes]:
    """The hostile set plus a plain file, written through byte paths."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {
        "latin1": LATIN1,
        "cp437": CP437,
        "newline": os.fsencode(NEWLINE),
        "escapes": os.fsencode(ESCAPES),
        "u_ffff": os.fsencode(f"odd{ESCAPE}E9.wav"),  # the escape character itself
        "plain": b"plain.wav",
    }
    sub = os.path.join(os.fsencode(folder), b"Ordner \xfc")  # a folder that is not UTF-8
    os.mkdir(sub)
    for i, name in enumerate(names.values()):
        with open(os.path.join(os.fsencode(folder), name), "wb") as f:
            f.write(wav_bytes(tone(0.5 + 0.1 * i, rate=8000), 8000))
    with open(os.path.join(sub, b"inner.wav"), "wb") as f:
        f.write(wav_bytes(tone(0.3, rate=8000), 8000))
    names["inner"] = b"Ordner \xfc/inner.wav"
    return names


def test_the_catalog_form_round_trips_every_name():
    for raw in (LATIN1, CP437, b"a\xff\xfe", os.fsencode(f"x{ESCAPE}y"), "ü".encode()):
        text = os.fsdecode(raw)
        stored = to_catalog(text)
        stored.encode("utf-8")  # SQLite, JSON and Qt can hold it
        assert os_path(stored) == text and os_bytes(stored) == raw
    assert to_catalog("/plain/ü/é.wav") == "/plain/ü/é.wav"  # UTF-8 names are unchanged
    assert shown(to_catalog(os.fsdecode(LATIN1))) == "caf\\xe9 ambience.wav"
    assert words_text(to_catalog(os.fsdecode(LATIN1))).split() == ["caf", "ambience.wav"]
    # Injective: the escape character in a real name never collides with an escaped byte.
    assert to_catalog(os.fsdecode(b"odd\xe9")) != to_catalog(f"odd{ESCAPE}E9")
    # A prefix (a folder) of a path stays a prefix of its catalog form.
    folder = os.fsdecode(b"/lib/Ordner \xfc")
    assert to_catalog(folder + "/x.wav").startswith(to_catalog(folder) + "/")


def test_every_hostile_name_is_indexed_exactly_and_found_by_its_words(tmp_path, library):
    root = tmp_path / "lib"
    names = _make(root)
    library.add_folders([root])
    report = library.scan(workers=1)
    assert report.added == len(names) and report.errors == 0
    rows = library.catalog.query("SELECT * FROM files ORDER BY id")
    assert {r["status"] for r in rows} == {"ok"}
    on_disk = {os.path.join(os.fsencode(root), raw) for raw in names.values()}
    assert {os_bytes(r["path"]) for r in rows} == on_disk  # exact bytes, none lossy
    for r in rows:  # every stored path opens the very file it names
        assert os.path.exists(os_bytes(r["path"]))
        assert os.path.basename(os_bytes(r["path"])) == os_bytes(r["name"])
    # Searchable by the words that do decode.
    assert [r.name for r in library.search("ambience", mode="keyword")] == [
        to_catalog(os.fsdecode(LATIN1))
    ]
    assert len(library.search("schlag", mode="keyword")) == 1
    assert len(library.search("inner", mode="keyword")) == 1
    assert len(library.search("slam", mode="keyword")) == 1
    # A rescan changes nothing (the stored forms match what the walk lists).
    again = library.scan(workers=1)
    assert (again.unchanged, again.added, again.removed, again.errors) == (len(names), 0, 0, 0)


def test_metadata_of_a_hostile_name_is_read(tmp_path, library):
    """BWF and iXML of a file whose name is not UTF-8 are read like any other's."""
    root = tmp_path / "lib"
    root.mkdir()
    ixml = b"<BWFXML><NOTE>rain on a tin roof</NOTE></BWFXML>"
    data = bytearray(wav_bytes(tone(0.2, rate=8000), 8000))
    data += b"iXML" + len(ixml).to_bytes(4, "little") + ixml
    data[4:8] = (len(data) - 8).to_bytes(4, "little")
    with open(os.path.join(os.fsencode(root), LATIN1), "wb") as f:
        f.write(bytes(data))
    library.add_folders([root])
    library.scan(workers=1)
    (row,) = library.catalog.query("SELECT * FROM files")
    assert row["status"] == "ok" and row["ixml_note"] == "rain on a tin roof"
    assert len(library.search("tin roof", mode="keyword")) == 1


def test_hostile_names_decode_render_and_describe(tmp_path, library):
    root = tmp_path / "lib"
    _make(root)
    library.add_folders([root])
    library.scan(workers=1)
    stored = library.catalog.query("SELECT path FROM files WHERE name LIKE 'caf%'")[0]["path"]
    audio, rate = decode_mono(stored)
    assert rate == 8000 and len(audio) == 4000
    clip = export_region(stored, 0.1, 0.3, folder=tmp_path / "clips")
    assert sf.info(str(clip)).frames == 1600
    # `info` takes the OS path a terminal passes (with surrogates) and the catalog path.
    by_os = library.info(os.fsdecode(os.path.join(os.fsencode(root), LATIN1)))
    assert by_os["in_library"] and by_os["path"] == stored
    assert library.info(stored)["id"] == by_os["id"]
    # Vectors and similar-by-path work for the odd name too.
    Embedder(library.catalog, [FakeSpace()], workers=1).run()
    count = library.catalog.query("SELECT COUNT(*) AS n FROM file_vectors")[0]["n"]
    assert count == library.counts()["files"]


def test_the_cli_prints_hostile_names_escaped_on_one_line(tmp_path, library_dir):
    root = tmp_path / "lib"
    names = _make(root)
    run_cli("add", str(root), "--no-embed", library_dir=library_dir)
    out = run_cli("search", "ambience", "--mode", "keyword", library_dir=library_dir).stdout
    assert "caf\\xe9 ambience.wav" in out and ESCAPE not in out
    listing = run_cli("search", "format:wav", "--mode", "keyword", library_dir=library_dir).stdout
    lines = [line for line in listing.splitlines() if ".wav" in line]
    assert len(lines) == len(names)  # the newline name did not split a result
    assert "\x1b" not in listing and "\u202e" not in listing
    assert "door\\nslam.wav" in listing and "\\x1b[31mred\\u202e" in listing
    # JSON carries the catalog form, which is valid UTF-8 and names the file exactly.
    data = json.loads(
        run_cli("search", "ambience", "--mode", "keyword", "--json", library_dir=library_dir).stdout
    )
    assert os_bytes(data[0]["path"]) == os.path.join(os.fsencode(root), LATIN1)
    # `info` with the name as the shell passes it (raw bytes in argv).
    info = run_cli(
        "info", os.fsdecode(os.path.join(os.fsencode(root), LATIN1)), library_dir=library_dir
    )
    assert "caf\\xe9 ambience.wav" in info.stdout


def test_printable_escapes_what_would_move_a_terminal():
    assert printable("a\nb\x1b[2J\u202ec") == "a\\nb\\x1b[2J\\u202ec"
    assert printable(to_catalog(os.fsdecode(b"\xe9t\xe9"))) == "\\xe9t\\xe9"
    assert printable("café ✓") == "café ✓"


def test_drag_urls_carry_the_exact_bytes(tmp_path, library):
    pytest.importorskip("PySide6")
    from PySide6.QtCore import QUrl

    from gui.file_urls import file_url, local_path

    stored = to_catalog(os.fsdecode(b"/lib/caf\xe9 #1%.wav"))
    url = file_url(stored)
    encoded = bytes(url.toEncoded().data())
    assert encoded == b"file:///lib/caf%E9%20%231%25.wav"
    assert local_path(url) == stored
    assert local_path(QUrl.fromLocalFile("/lib/plain é.wav")) == "/lib/plain é.wav"
    assert local_path(QUrl("https://example.com/x.wav")) is None
