import struct

import mutagen.flac
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.scan.metadata import read_metadata, read_riff_chunks
from engine.scan.ucs import UcsTable, parse_ucs
from tests.audio_factory import tone, wav_bytes, write


def chunk(cid: bytes, body: bytes) -> bytes:
    pad = b"\x00" if len(body) % 2 else b""
    return cid + struct.pack("<I", len(body)) + body + pad


def bwf(description="", originator="", date="", clock="", ixml=None, info=None) -> bytes:
    """A WAV with bext, iXML and LIST/INFO chunks inserted before its fmt/data chunks."""
    plain = wav_bytes()
    extra = b""
    bext = (
        description.encode().ljust(256, b"\x00")
        + originator.encode().ljust(32, b"\x00")
        + b"\x00" * 32
        + date.encode().ljust(10, b"\x00")
        + clock.encode().ljust(8, b"\x00")
        + b"\x00" * 264
    )
    extra += chunk(b"bext", bext)
    if ixml is not None:
        extra += chunk(b"iXML", ixml.encode())
    if info:
        body = b"INFO" + b"".join(chunk(k, v.encode() + b"\x00") for k, v in info.items())
        extra += chunk(b"LIST", body)
    body = b"WAVE" + extra + plain[12:]
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_bwf_bext_ixml_and_info(tmp_path):
    path = tmp_path / "take.wav"
    path.write_bytes(
        bwf(
            "Door slam, heavy oak", "Sonarium Rec", "2026-11-28", "10:20:30",
            "<BWFXML><NOTE>close mic</NOTE><PROJECT>Film</PROJECT><SCENE>12A</SCENE>"
            "<TAKE>3</TAKE></BWFXML>",
            {b"INAM": "Oak Door", b"ICMT": "recorded in a barn"},
        )
    )  # fmt: skip
    meta = read_metadata(path)
    assert meta["description"] == "Door slam, heavy oak"
    assert meta["originator"] == "Sonarium Rec"
    assert meta["origination_date"] == "2026-11-28 10:20:30"
    assert (meta["ixml_note"], meta["ixml_project"], meta["ixml_scene"], meta["ixml_take"]) == (
        "close mic", "Film", "12A", "3"
    )  # fmt: skip
    assert meta["embedded_tags"]["title"] == "Oak Door"
    assert meta["embedded_tags"]["comment"] == "recorded in a barn"


def test_bwf_metadata_is_searchable(tmp_path, library):
    root = tmp_path / "rec"
    root.mkdir()
    (root / "T001.wav").write_bytes(bwf("Creaky barn door", "Field", ixml="<BWFXML/>"))
    library.add_folders([root])
    library.scan(workers=1)
    assert [r.name for r in library.search("barn")] == ["T001.wav"]
    info = library.info(root / "T001.wav")
    assert info["description"] == "Creaky barn door" and info["in_library"] is True


@pytest.mark.parametrize(
    "garbage",
    [
        b"RIFF\xff\xff\xff\xffWAVEbext\xff\xff\xff\x7f",  # chunk larger than the file
        b"RIFF\x10\x00\x00\x00WAVEiXML\x05\x00\x00\x00<a><",  # broken XML
        b"RIFF\x04\x00\x00\x00WAVE",  # no chunks
        b"RIFX\x00\x00\x00\x00WAVE",  # not little-endian RIFF
        b"",
    ],
)
def test_malformed_chunks_give_no_fields_and_no_exception(tmp_path, garbage):
    path = tmp_path / "bad.wav"
    path.write_bytes(garbage)
    assert read_riff_chunks(path) == {}


@settings(max_examples=40, deadline=None)
@given(
    description=st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=60),
    originator=st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=30),
)
def test_bext_round_trip(tmp_path_factory, description, originator):
    # Fields are fixed-size byte arrays: round-trip what fits, as stripped text.
    description = description.encode()[:256].decode("utf-8", "ignore").strip()
    path = tmp_path_factory.mktemp("bext") / "x.wav"
    path.write_bytes(bwf(description, originator))
    meta = read_riff_chunks(path)
    assert meta.get("description") == (description or None)
    assert meta.get("originator") == (originator.strip() or None)


def test_flac_vorbis_comments_through_mutagen(tmp_path):
    path = write(tmp_path / "thunder.flac", tone(0.3))
    audio = mutagen.flac.FLAC(str(path))
    audio["title"] = "Distant thunder"
    audio["genre"] = "Ambience"
    audio.save()
    tags = read_metadata(path)["embedded_tags"]
    assert tags["title"] == "Distant thunder" and tags["genre"] == "Ambience"


def test_ucs_parsing_with_and_without_table(tmp_path):
    name = "DOORWood-Barn_Creaky Door Open_JD_Foley_take2"
    parsed = parse_ucs(name, None)
    assert parsed["ucs_catid"] == "DOORWood" and parsed["ucs_fx_name"] == "Creaky Door Open"
    assert parsed["ucs_creator"] == "JD" and parsed["ucs_source"] == "Foley"
    assert parsed["ucs_category"] is None
    assert parse_ucs("BD_01", None) is None
    assert parse_ucs("exploBig", None) is None
    table = UcsTable([])
    table = UcsTable.load(_write_csv(tmp_path))
    assert parse_ucs(name, table)["ucs_category"] == "DOORS"
    assert parse_ucs("Door_Open_a_b", table) is None  # shape fits, CatID unknown


def _write_csv(tmp_path):
    path = tmp_path / "ucs.csv"
    path.write_text("Category,SubCategory,CatID\nDOORS,WOOD,DOORWood\n", encoding="utf-8")
    return path


def test_shared_ucs_table_loads(shared_dir):
    table = UcsTable.load(shared_dir / "ucs" / "ucs-8.2.1-en.json")
    assert len(table.by_catid) == 752
    parsed = parse_ucs("AIRBrst_Tire Burst_XX_Lib", table)
    assert (parsed["ucs_category"], parsed["ucs_subcategory"]) == ("AIR", "BURST")


def test_bad_ucs_table_is_rejected(tmp_path, library):
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    from engine.errors import LibraryError

    with pytest.raises(LibraryError):
        library.set_ucs_table(str(bad))
