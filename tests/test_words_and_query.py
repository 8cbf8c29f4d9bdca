import pytest

from engine.errors import QueryError
from engine.search.query import parse_query
from engine.search.words import name_words, split_words


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("exploBig", ["explo", "Big"]),
        ("LrgExpl", ["Lrg", "Expl"]),
        ("BD_01", ["BD", "01"]),
        ("kick-drum 02", ["kick", "drum", "02"]),
        ("HTTPServer", ["HTTP", "Server"]),
        ("pcv637", ["pcv", "637"]),
        ("VP Kick 1", ["VP", "Kick", "1"]),
        ("Tür_knallt", ["Tür", "knallt"]),
        ("__--  ", []),
    ],
)
def test_split_words(text, words):
    assert split_words(text) == words


def test_name_words_keeps_the_unsplit_stem():
    assert name_words("exploBig.wav").split() == ["explo", "Big", "exploBig"]


def test_plain_words_are_anded_prefixes():
    q = parse_query("glass break")
    assert q.match == '"glass"* AND "break"*'
    assert q.filters == []


def test_short_words_match_whole_and_phrases_keep_order():
    q = parse_query('sn "metal door"')
    assert q.match == '("sn" OR "snare") AND "metal door"'  # with its spelled-out form
    assert q.groups == ['("sn" OR "snare")', '"metal door"']


def test_or_binds_tighter_than_and():
    q = parse_query("door OR gate wood")
    assert q.match == '("door"* OR "gate"*) AND "wood"*'


def test_excluded_words():
    q = parse_query("door -creak")
    assert q.match == '"door"*'
    assert q.exclude == ['"creak"*']


def test_filters_become_sql():
    q = parse_query("dur:<2 sr:48k ch:stereo format:wav tag:Impact fav cat:DOOR folder:foley")
    assert q.match is None
    sql, params = q.where()
    assert "f.duration < ?" in sql and 2.0 in params
    assert "f.sample_rate" in sql and 48000.0 in params
    assert "f.channels" in sql and 2.0 in params
    assert "WAV" in params and "Impact" in params and "DOOR" in params
    assert "favorites" in sql and "%foley%" in params


def test_offline_files_are_left_out_unless_the_query_asks():
    assert parse_query("door").where() == ("f.offline = 0", [])
    assert parse_query("door offline:any").where() == ("1", [])
    assert parse_query("door is:offline").where() == ("f.offline = 1", [])
    assert parse_query("offline:only").where() == ("f.offline = 1", [])
    with pytest.raises(QueryError, match="offline:any"):
        parse_query("offline:maybe")


@pytest.mark.parametrize(
    ("spec", "sql", "params"),
    [
        ("dur:1..5", "f.duration >= ? AND f.duration <= ?", [1.0, 5.0]),
        ("dur:..5", "f.duration <= ?", [5.0]),
        ("dur:500ms", "f.duration BETWEEN ? AND ?", [0.45, 0.55]),
        ("dur:>=2m", "f.duration >= ?", [120.0]),
        ("sr:44.1k", "f.sample_rate = ?", [44100.0]),
        ("-format:mp3", "NOT ((upper(f.format) IN (?) OR upper(f.subtype) = ?))", ["MP3", "MP3"]),
    ],
)
def test_filter_forms(spec, sql, params):
    got_sql, got_params = parse_query(spec).where()
    assert got_sql == "f.offline = 0 AND " + sql  # offline files are left out by default
    assert (
        got_params == pytest.approx(params)
        if all(isinstance(p, float) for p in params)
        else (got_params == params)
    )


@pytest.mark.parametrize(
    "text",
    [
        '"unclosed',
        "dur:abc",
        "dur:",
        "sr:fast",
        "dur:2parsecs",
        "OR door",
        "door OR",
        "foo:bar",
        "dur:..",
        "is:loud",
    ],
)
def test_malformed_queries_raise_query_error(text):
    with pytest.raises(QueryError) as info:
        parse_query(text)
    assert str(info.value)


def test_punctuation_only_query_is_empty():
    q = parse_query("!!! ---")
    assert q.match is None and q.exclude == []
