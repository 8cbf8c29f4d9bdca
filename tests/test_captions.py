"""Captions from what the catalog knows, and UCS knowledge for captions and queries."""

import json

import pytest

from engine.adapt.captions import FileText, build_captions, knowledge_words, useful_words
from engine.scan.ucs import UcsTable

UCS_ROWS = [
    {
        "Category": "AIR", "SubCategory": "BURST", "CatID": "AIRBrst",
        "Explanations": "Sharp air releases, pressure releases",
        "Synonyms": ["blast", "kerboom", "poof"],
    },
    {
        "Category": "GLASS", "SubCategory": "BREAK", "CatID": "GLASBrk",
        "Explanations": "Glass breaking and shattering", "Synonyms": ["shatter", "smash"],
    },
    {"Category": "WOOD", "SubCategory": "BREAK", "CatID": "WOODBrk", "Synonyms": ["smash"]},
    {"Category": "ROCK", "SubCategory": "BREAK", "CatID": "ROCKBrk", "Synonyms": ["smash"]},
]  # fmt: skip


@pytest.fixture
def ucs(tmp_path):
    path = tmp_path / "ucs.json"
    path.write_text(json.dumps(UCS_ROWS))
    return UcsTable.load(path)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Door_Wood_Creak_Slow.wav", ["door", "wood", "creak", "slow"]),
        ("BL_03.wav", []),
        ("pcv637.ogg", []),
        ("Track 12.wav", []),  # "track" numbers a file, it does not describe one
        ("exploBig_take2_final", ["explo", "big"]),
        ("glass-smash_3f9a2b7c1d", ["glass", "smash"]),
        ("deadbeefcafe", []),  # a hash, even when all letters
        ("Pluie forte à Paris", ["pluie", "forte", "paris"]),
    ],
)
def test_useful_words(text, words):
    assert useful_words(text) == words


def test_uninformative_names_give_no_caption_and_folders_add_context():
    files = [
        FileText(1, "pcv637.ogg", ("Weather", "Rain")),
        FileText(2, "BL_01.wav", ("Drums",)),
        FileText(3, "Door_Wood_Creak_Slow_03.wav", ("Foley", "Doors")),
        FileText(4, "x.wav", (), description="Heavy rain on a tin roof"),
        FileText(5, "07.wav", (), tags=("thunder", "far")),
    ]
    captions = build_captions(files)
    assert set(captions) == {3, 4, 5}
    # Own words first, then folder words nearest first; nothing repeated.
    assert captions[3] == "door wood creak slow doors foley"
    assert captions[4] == "heavy rain tin roof"
    assert captions[5] == "thunder far"


def test_words_in_a_large_share_of_the_library_are_dropped():
    files = [FileText(i, f"Kit_Snare_{i:02d}.wav", ("Acme Kit",)) for i in range(30)]
    files.append(FileText(99, "Kit_Cowbell.wav", ("Acme Kit",)))
    captions = build_captions(files)
    # "kit" and "acme" are everywhere: they say nothing about one sound. "snare" is in
    # most files too, so those files end up with nothing to say and give no pair.
    assert captions == {99: "cowbell"}


def test_ucs_category_and_explanation_enrich_captions(ucs):
    files = [FileText(1, "AIRBrst_Tire Pop_JD_Field.wav", ucs_catid="AIRBrst")]
    with_knowledge = build_captions(files, ucs)[1]
    assert with_knowledge.startswith("air tire pop field burst. ")
    assert with_knowledge.endswith("Sharp air releases, pressure releases")
    assert "Sharp air" not in build_captions(files, ucs, knowledge=False)[1]


def test_query_expansion_reaches_categories_through_synonyms(ucs):
    vocabulary = {"explosion", "air", "burst", "glass", "door"}
    assert knowledge_words("kerboom", ucs, vocabulary) == "air burst"
    assert knowledge_words("shatter", ucs, vocabulary) == "glass break"
    # Known words are direct evidence: leave such queries alone.
    assert knowledge_words("glass shatter", ucs, vocabulary) == ""
    # A synonym of many categories is too broad to expand.
    assert knowledge_words("smash", ucs, vocabulary) == ""
    assert knowledge_words("kerboom", None, vocabulary) == ""
    # Words the sentence encoder knows whole are left to it.
    assert knowledge_words("shatter", ucs, vocabulary, lambda w: w == "shatter") == ""
    assert knowledge_words("kerboom", ucs, vocabulary, lambda w: w == "shatter") == "air burst"


def test_ucs_table_reads_explanations_and_synonyms_from_json_and_csv(tmp_path, ucs):
    assert ucs.by_catid["AIRBrst"].explanation.startswith("Sharp air")
    assert [e.catid for e in ucs.by_synonym["smash"]] == ["GLASBrk", "WOODBrk", "ROCKBrk"]
    csv_path = tmp_path / "ucs.csv"
    csv_path.write_text(
        "Category,SubCategory,CatID,Explanations,Synonyms - Comma Separated\n"
        'AIR,BURST,AIRBrst,Sharp air releases,"blast, Kerboom"\n'
    )
    table = UcsTable.load(csv_path)
    assert table.by_catid["AIRBrst"].explanation == "Sharp air releases"
    assert [e.catid for e in table.by_synonym["kerboom"]] == ["AIRBrst"]


def test_one_huge_description_never_makes_a_huge_caption():
    from itertools import product

    from engine.adapt.captions import MAX_CAPTION_CHARS

    # A 1.6 MB iXML note of different words (repeated words are dropped anyway).
    words = ["".join(p) for p in product("bdfglmnprst", "aeiou", "bdfglmnprst", "aeiou", "lnr")]
    note = "rain on a tin roof " + " ".join(words * 30)
    assert len(note) > 1_500_000
    files = [FileText(1, "take_1.wav", description=note), FileText(2, "door_slam.wav")]
    captions = build_captions(files)
    assert captions[1].startswith("rain tin roof")
    assert len(captions[1]) <= MAX_CAPTION_CHARS and captions[2] == "door slam"
