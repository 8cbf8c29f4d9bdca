import json
import math
import os
import sqlite3

import pytest

from engine.errors import QueryError
from tests.audio_factory import noise, tone, write


@pytest.fixture
def sounds(tmp_path, library):
    root = tmp_path / "sfx"
    write(root / "Impacts" / "exploBig_01.wav", tone(1.5), 48000)
    write(root / "Impacts" / "metal_door_slam.wav", noise(0.3), 44100)
    write(root / "Impacts" / "wood_door_creak.flac", noise(4.0, rate=22050), 22050)
    write(root / "explosions" / "pcv637.wav", noise(0.5, channels=2), 44100)
    write(root / "Drums" / "BD_01.aiff", tone(0.2, freq=60), 44100)
    write(root / "Drums" / "gate_hit.ogg", noise(0.4), 44100)
    write(root / "DOORWood_Creaky Door Open_JD_Foley.wav", noise(0.6), 96000)
    library.add_folders([root])
    report = library.scan(workers=1)
    assert report.added == 7 and report.errors == 0
    return root


def names(results):
    return [r.name for r in results]


def test_name_match_ranks_above_folder_match(library, sounds):
    results = library.search("explo")
    # exploBig matches in its name; pcv637 only through its folder "explosions".
    assert names(results) == ["exploBig_01.wav", "pcv637.wav"]
    assert results[0].score > results[1].score


def test_files_matching_all_words_come_first_then_most_and_excludes_remove(library, sounds):
    assert set(names(library.search("door"))) == {
        "metal_door_slam.wav", "wood_door_creak.flac", "DOORWood_Creaky Door Open_JD_Foley.wav"
    }  # fmt: skip
    # All words first; then the files that match one of them (never nothing).
    found = names(library.search("door metal"))
    assert found[0] == "metal_door_slam.wav" and len(found) == 3
    assert names(library.search("metal door slam"))[0] == "metal_door_slam.wav"
    assert names(library.search("rusty metal door"))[0] == "metal_door_slam.wav"  # no "rusty"
    creaky = names(library.search("creaky wood door"))
    assert set(creaky[:2]) == {"wood_door_creak.flac", "DOORWood_Creaky Door Open_JD_Foley.wav"}
    assert creaky[2] == "metal_door_slam.wav"  # "door" alone: after both
    assert "metal_door_slam.wav" not in names(library.search("door -metal"))
    assert set(names(library.search("slam OR creak"))) == {
        "metal_door_slam.wav", "wood_door_creak.flac", "DOORWood_Creaky Door Open_JD_Foley.wav"
    }  # fmt: skip


def test_sound_design_abbreviations_match_their_spelled_out_words(tmp_path, library):
    root = tmp_path / "abbr"
    for name in ("AMB_City_Night.wav", "WSH_Fast_03.wav", "IMP_Metal.wav", "FTSTP_Gravel.wav",
                 "birds_morning.wav"):  # fmt: skip
        write(root / name, tone(0.1, 8000), 8000)
    library.add_folders([root])
    library.scan(workers=1)
    assert names(library.search("city ambience", mode="keyword"))[0] == "AMB_City_Night.wav"
    assert names(library.search("whoosh", mode="keyword")) == ["WSH_Fast_03.wav"]
    assert names(library.search("metal impact", mode="keyword"))[0] == "IMP_Metal.wav"
    assert names(library.search("footsteps gravel", mode="keyword"))[0] == "FTSTP_Gravel.wav"
    assert names(library.search("bird", mode="keyword")) == ["birds_morning.wav"]  # stemming
    assert names(library.search("atmos", mode="keyword")) == ["AMB_City_Night.wav"]


def test_camel_case_and_digit_splitting_is_searchable(library, sounds):
    assert names(library.search("bd")) == ["BD_01.aiff"]
    assert names(library.search("explo big"))[0] == "exploBig_01.wav"


def test_filters_apply_before_the_limit(library, sounds):
    assert names(library.search("dur:>3")) == ["wood_door_creak.flac"]
    assert names(library.search("door sr:96k")) == ["DOORWood_Creaky Door Open_JD_Foley.wav"]
    assert names(library.search("ch:stereo")) == ["pcv637.wav"]
    assert names(library.search("format:aiff")) == ["BD_01.aiff"]
    assert names(library.search("format:vorbis")) == ["gate_hit.ogg"]
    assert set(names(library.search("folder:drums"))) == {"BD_01.aiff", "gate_hit.ogg"}
    # A filtered page is never empty while matches exist, whatever the limit.
    assert names(library.search("door format:flac", limit=1)) == ["wood_door_creak.flac"]


def test_tags_and_favorites(library, sounds):
    slam = library.search("slam")[0]
    library.catalog.add_tags(slam.id, ["Hero Impact"])
    library.catalog.set_favorite(slam.id, True)
    assert names(library.search("tag:hero impact")) == []  # tag:hero then word impact
    assert names(library.search('tag:"Hero Impact"')) == ["metal_door_slam.wav"]
    assert names(library.search("hero")) == ["metal_door_slam.wav"]  # tags are searchable text
    assert names(library.search("fav")) == ["metal_door_slam.wav"]
    assert "metal_door_slam.wav" not in names(library.search("door -fav"))


def test_ucs_name_without_table(library, sounds):
    assert names(library.search("cat:DOORWood")) == ["DOORWood_Creaky Door Open_JD_Foley.wav"]
    assert names(library.search("cat:DOOR")) == ["DOORWood_Creaky Door Open_JD_Foley.wav"]


def test_ucs_table_names_categories(tmp_path, library, sounds):
    table = tmp_path / "ucs.json"
    table.write_text(
        json.dumps([{"CatID": "DOORWood", "Category": "DOORS", "SubCategory": "WOOD"}])
    )
    library.set_ucs_table(str(table))
    # A new mtime makes the rescan read the file again with the table.
    os.utime(sounds / "DOORWood_Creaky Door Open_JD_Foley.wav", ns=(1, 1))
    library.scan(workers=1)
    row = library.catalog.file_by_path(str(sounds / "DOORWood_Creaky Door Open_JD_Foley.wav"))
    assert (row["ucs_category"], row["ucs_subcategory"], row["ucs_fx_name"]) == (
        "DOORS", "WOOD", "Creaky Door Open"
    )  # fmt: skip
    assert names(library.search("cat:doors")) == ["DOORWood_Creaky Door Open_JD_Foley.wav"]
    # Category words are searchable text too (stemmed: "doors" also finds wood_door_creak).
    assert set(names(library.search("doors wood"))[:2]) == {
        "DOORWood_Creaky Door Open_JD_Foley.wav", "wood_door_creak.flac"
    }  # fmt: skip


def test_filters_only_lists_by_name_and_paging(library, sounds):
    all_files = names(library.search("", limit=100))
    assert len(all_files) == 7
    assert names(library.search("", limit=3)) + names(library.search("", limit=100, offset=3)) == (
        all_files
    )


def test_errors_are_not_search_results(tmp_path, library, sounds):
    (sounds / "broken_door.wav").write_bytes(b"not audio at all")
    library.scan(workers=1)
    assert "broken_door.wav" not in names(library.search("door"))
    assert [e["path"].endswith("broken_door.wav") for e in library.errors()] == [True]


def test_malformed_query_raises_query_error(library, sounds):
    with pytest.raises(QueryError):
        library.search('"door')


def test_an_overlong_or_undecodable_query_is_refused_with_a_message(library):
    from engine.search.query import MAX_QUERY_CHARS

    with pytest.raises(QueryError, match="too long"):
        library.search("door " * (MAX_QUERY_CHARS // 5 + 1), mode="keyword")
    # A terminal's undecodable bytes arrive as lone surrogates.
    with pytest.raises(QueryError, match="not text"):
        library.search("tag:caf\udce9", mode="keyword")
    assert library.search("door " * (MAX_QUERY_CHARS // 5 - 1), mode="keyword") == []


def test_filtering_content_candidates_needs_no_sql_variable_per_id(tmp_path, library):
    """The default search filters the content ranking's candidates in SQL: however many
    there are (past this SQLite's limit on variables), one statement of fixed size."""
    from engine.search.hybrid import _allowed
    from engine.search.query import parse_query

    root = tmp_path / "s"
    write(root / "a.wav", tone(0.2, rate=8000), 8000)
    write(root / "b.wav", tone(2.5, rate=8000), 8000)
    library.add_folders([root])
    library.scan(workers=1)
    ids = [r["id"] for r in library.catalog.query("SELECT id FROM files ORDER BY name")]
    limit = library.catalog.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    candidates = list(range(10**6, 10**6 + limit + 1_000)) + ids
    assert _allowed(library.catalog, parse_query("dur:<1"), candidates) == {ids[0]}
    assert _allowed(library.catalog, parse_query("-a"), candidates) == {ids[1]}


def test_a_filter_only_page_is_read_in_name_order_not_sorted_whole(library, sounds):
    """A query of filters lists files by name through files_name_order, so a page of a
    million-file library stops after its rows (the plan is checked, not a timing)."""
    statements: list[str] = []
    library.catalog.conn.set_trace_callback(statements.append)
    try:
        results = library.search("dur:<1", limit=2, offset=1, mode="keyword")
    finally:
        library.catalog.conn.set_trace_callback(None)
    every = [r.name for r in library.search("dur:<1", limit=100, mode="keyword")]
    assert every == sorted(every, key=str.lower) and len(every) == 5
    assert names(results) == every[1:3]
    listing = next(s for s in statements if "ORDER BY f.name" in s)
    explained = library.catalog.conn.execute(f"EXPLAIN QUERY PLAN {listing}")
    plan = " ".join(str(row) for row in explained)
    assert "files_name_order" in plan and "TEMP B-TREE" not in plan


def test_ranking_reads_lower_tiers_only_while_the_page_is_not_full(library, sounds, monkeypatch):
    """Files matching fewer words are looked up only when those matching more do not fill
    the page, and fill it in order of words matched. A query of three words reads its
    pairs beside the full match (on the catalog's readers); single words only after."""
    from engine.search import keyword

    expressions: list[str] = []
    top_matches = keyword._top_matches

    def recorded(conn, expression, *args):
        expressions.append(expression)  # list.append is atomic: helpers may call this
        return top_matches(conn, expression, *args)

    monkeypatch.setattr(keyword, "_top_matches", recorded)
    full = library.search("wood door creak", limit=1, mode="keyword")
    first = sorted(expressions)
    expressions.clear()
    more = library.search("wood door creak", limit=10, mode="keyword")
    words = ['"wood"*', '"door"*', '"creak"*']
    assert sorted(e.count("AND") for e in first) == [1, 1, 1, 2]  # all words; 3 pairs
    assert sorted(expressions) == sorted(first + words)  # then the 3 single words
    assert names(full) == ["wood_door_creak.flac"]
    # Two files match all three words (DOORWood_Creaky...: door, wood, creak*), by BM25;
    # then the one that matches only "door".
    assert names(more) == [
        "wood_door_creak.flac", "DOORWood_Creaky Door Open_JD_Foley.wav", "metal_door_slam.wav"
    ]  # fmt: skip


def test_a_tier_read_beside_on_helper_threads_ranks_as_read_alone(library, sounds, monkeypatch):
    """The subsets of a query's words, read at once on the catalog's readers, give the
    same page as read one after another on the owning connection; a word typed twice
    counts once."""
    from engine.search import keyword

    queries = ["wood door creak", "metal door hit", "door slam creak wood", "door door creak"]
    monkeypatch.setattr(keyword, "_HELPERS", 2)  # whatever this machine's cores
    beside = {q: [(r.id, r.score) for r in library.search(q, mode="keyword")] for q in queries}
    monkeypatch.setattr(keyword, "_HELPERS", 0)
    alone = {q: [(r.id, r.score) for r in library.search(q, mode="keyword")] for q in queries}
    assert beside == alone and all(beside.values())
    assert beside["door door creak"] == [
        (r.id, r.score) for r in library.search("door creak", mode="keyword")
    ]


def test_a_helpers_malformed_expression_reaches_the_caller(library, sounds, monkeypatch):
    from engine.search import keyword

    top_matches = keyword._top_matches

    def refusing(conn, expression, *args):
        if conn is not library.catalog.conn:  # only what a helper thread reads
            raise QueryError("cannot search for that: test")
        return top_matches(conn, expression, *args)

    monkeypatch.setattr(keyword, "_top_matches", refusing)
    monkeypatch.setattr(keyword, "_HELPERS", 1)
    with pytest.raises(QueryError):
        library.search("wood door creak", mode="keyword")


def test_fusion_ranks_by_words_matched_bm25_and_content_as_a_chance():
    """The fusion is a chance per file: more of the query's words, a better BM25 or a
    content score further above the candidates' mean each raise it; a file only one leg
    brought still counts; without keyword hits the content-only calibration answers."""
    from engine.search import hybrid

    content = ([(1, 0.9), (2, 0.5), (4, 0.5), (3, 0.1)], (0.5, 0.2))  # z = 2, 0, 0, -2
    keyword = [(4, 8.0, 2), (2, 8.0, 1), (5, 2.0, 1)]  # (id, BM25, words matched of 2)
    ranked = hybrid.fuse(content, keyword, 2)
    chance = dict(ranked)
    assert sorted(chance) == [1, 2, 3, 4, 5]
    assert [p for _, p in ranked] == sorted(chance.values(), reverse=True)
    assert all(0.0 < p < 1.0 for p in chance.values())
    assert chance[4] > chance[2]  # both words beat one, at the same BM25...
    assert chance[2] > chance[5]  # ...a better BM25 beats a worse one
    assert chance[1] > chance[3]  # content: two spreads above beats two below
    ids, x = hybrid.fusion_features(content, keyword, 2)
    row = dict(zip(ids.tolist(), x.tolist(), strict=True))
    assert row[5] == [hybrid.CONTENT_MISSING_Z, 0.5, 0.25]  # not among content's hits
    assert row[2] == [0.0, 0.5, 1.0] and row[4] == [0.0, 1.0, 1.0] and row[1] == [2.0, 0, 0]
    # No keyword hits: the content-only calibration, in content order.
    alone = hybrid.fuse(content, [], 2)
    assert [fid for fid, _ in alone] == [1, 2, 4, 3]
    expected = 1 / (1 + math.exp(-(hybrid.CONTENT_ONLY_BIAS + 2 * hybrid.CONTENT_ONLY_Z)))
    assert alone[0][1] == pytest.approx(expected)
    # A file without words of its own is not marked down for missing the query's words:
    # it gets the content-only relevance; a named one missing them, the fusion's.
    unnamed = hybrid.fuse(content, keyword, 2, lambda ids: ids != 3)
    alone_3 = 1 / (1 + math.exp(-(hybrid.CONTENT_ONLY_BIAS - 2 * hybrid.CONTENT_ONLY_Z)))
    assert dict(unnamed)[3] == pytest.approx(alone_3)
    assert dict(unnamed)[1] == pytest.approx(chance[1])
    # Ties break by id, so the same legs always give the same page.
    assert hybrid.fuse(([(7, 1.0), (6, 1.0)], (1.0, 1.0)), [], 1)[0][0] == 6
