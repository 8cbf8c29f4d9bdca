"""Category suggestions: from the names of a file's nearest sounds, its sound (category
knowledge) and its own words; accepted one by one or in bulk above a confidence, undone
like any edit. Mechanics on the fake audio space and bag-of-words encoder; the command
line on the real aisfx model with the shipped base knowledge."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from engine.adapt.base import build_base
from engine.adapt.text_space import AdaptedTextSpace
from engine.curate.suggest import name_catids, suggest
from engine.errors import LibraryError, NotIndexed
from engine.search.similar import SimilarIndex
from tests.audio_factory import noise, tone, write
from tests.conftest import ROOT
from tests.fakes import SMALL, FakeAisfx, WordEncoder, build
from tests.requires import needs_models
from tests.test_base_knowledge import FAST, UCS


@pytest.fixture
def named(tmp_path, library):
    root = build(tmp_path, library, FakeAisfx())
    encoder = WordEncoder()
    base = build_base(library.catalog, UCS, tmp_path / "knowledge", options=SMALL,
                      category_options=FAST, encoder=encoder)  # fmt: skip
    index = SimilarIndex(library.catalog, library.dir)
    space = AdaptedTextSpace(library.catalog, index, base.adapter, UCS, encoder,
                             categories=base.categories, own_statistics=True)  # fmt: skip
    ids = {r["name"]: r["id"] for r in library.catalog.query("SELECT id, name FROM files")}
    return root, space, index, ids, encoder


def test_an_unnamed_file_gets_the_category_its_neighbours_are_named_for(named, library):
    _, space, index, ids, encoder = named
    found = suggest(library.catalog, space, index, UCS, [ids["pcv637.wav"], ids["zz_0042.wav"]],
                    encoder=encoder)  # fmt: skip
    bird, door = found[ids["pcv637.wav"]], found[ids["zz_0042.wav"]]
    assert bird[0]["catid"] == "BIRDSong" and bird[0]["category"] == "BIRDS"
    assert door[0]["catid"] == "DOORWood"
    for suggestions in (bird, door):
        confidences = [s["confidence"] for s in suggestions]
        assert len(suggestions) == 3 and confidences == sorted(confidences, reverse=True)
        assert 0 < sum(confidences) <= 1.0001


def test_the_neighbours_names_decide_and_the_classifier_stands_in_without_them(named, library):
    _, space, index, ids, encoder = named
    door = ids["zz_0042.wav"]
    with_names = suggest(library.catalog, space, index, UCS, [door], encoder=encoder)[door]
    # Every named file hidden: only the classifier over the sound is left to say.
    hidden = frozenset(i for n, i in ids.items() if n not in ("pcv637.wav", "zz_0042.wav"))
    alone = suggest(library.catalog, space, index, UCS, [door], exclude=hidden,
                    encoder=encoder)[door]  # fmt: skip
    assert alone[0]["catid"] == "DOORWood"  # the classifier learned doors sound so
    assert with_names[0]["confidence"] > alone[0]["confidence"]  # the names agree: surer


def test_a_files_own_words_count(named, library):
    _, space, index, ids, encoder = named
    bird_named_door = ids["door_slam_0.wav"]
    plain = suggest(library.catalog, space, index, UCS, [bird_named_door], use_words=False,
                    encoder=encoder)[bird_named_door]  # fmt: skip
    worded = suggest(library.catalog, space, index, UCS, [bird_named_door], encoder=encoder)[
        bird_named_door
    ]
    share = {s["catid"]: s["confidence"] for s in worded}
    assert worded[0]["catid"] == "DOORWood"
    assert share["DOORWood"] >= next(s["confidence"] for s in plain if s["catid"] == "DOORWood")


def test_a_name_means_a_category_only_when_it_clearly_does(named):
    _, space, _, _, encoder = named
    texts = ["thunder crack", "", "bird", "thunder rain door bird"]
    meant = name_catids(space, texts, encoder=encoder)
    assert meant[:3] == ["WTHRThun", None, "BIRDSong"]
    shares = [space.categories.query_distribution(v).max() for v in encoder.encode(texts[3:])]
    assert (meant[3] is None) == (shares[0] <= 0.5)  # four categories at once: none clearly


def test_accepting_suggestions_sets_the_category_as_an_undoable_edit(named, library, tmp_path):
    _, _, _, ids, _ = named
    table = tmp_path / "ucs.csv"
    table.write_text("CatID,Category,SubCategory\nBIRDSong,BIRDS,SONG\n", encoding="utf-8")
    library.set_ucs_table(str(table))
    result = library.accept_suggestions({ids["pcv637.wav"]: {"catid": "BIRDSong"}})
    assert result["files"] == 1
    fields = library.metadata(ids["pcv637.wav"])["fields"]
    assert (fields["catid"], fields["category"], fields["subcategory"]) == (
        "BIRDSong", "BIRDS", "SONG",
    )  # fmt: skip
    assert [r.name for r in library.search("birds song", mode="keyword")][:1]
    with pytest.raises(LibraryError, match="not a CatID"):
        library.accept_suggestions({ids["zz_0042.wav"]: "NOPEWhat"})
    library.undo_edit()
    assert library.metadata(ids["pcv637.wav"])["fields"]["catid"] == ""


def test_without_category_knowledge_for_its_model_the_library_says_so(named, library):
    # The shipped knowledge is for the real aisfx model, not the fake one.
    with pytest.raises(NotIndexed, match="category suggestions need"):
        library.suggest_categories()


@needs_models
def test_the_suggest_command_with_the_shipped_knowledge(tmp_path, library_dir):
    root = tmp_path / "sounds"
    for i in range(6):
        write(root / f"alarm_beep_{i}.wav", tone(0.6, 22050, freq=1000 + 50 * i), 22050)
        write(root / f"rain_hiss_{i}.wav", noise(0.6, 22050, seed=i), 22050)
    write(root / "take_0042.wav", tone(0.6, 22050, freq=1120), 22050)

    def cli(*args):
        return subprocess.run(
            [sys.executable, str(ROOT / "main.py"), *args, "--library", str(library_dir)],
            capture_output=True, text=True, cwd=ROOT, timeout=600,
        )  # fmt: skip

    assert cli("add", str(root)).returncode == 0
    shown = cli("suggest", str(root / "take_0042.wav"), "--json")
    assert shown.returncode == 0, shown.stderr
    got = json.loads(shown.stdout)["suggestions"][0]["suggestions"]
    assert len(got) == 3 and all(s["catid"] for s in got)
    assert np.isclose(sum(s["confidence"] for s in got), sum(s["confidence"] for s in got))
    accepted = cli("suggest", "--uncategorised", "--accept", "--min-confidence", "0")
    assert accepted.returncode == 0 and "set the CatID of 13 files" in accepted.stdout
    meta = json.loads(cli("meta", str(root / "take_0042.wav"), "--json").stdout)
    assert meta["fields"]["catid"] == got[0]["catid"]
    assert cli("suggest").returncode == 2
