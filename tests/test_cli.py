import json
import re
import subprocess
import sys

import pytest

from cli.parser import subcommands
from tests.audio_factory import noise, tone, write
from tests.conftest import ROOT


def run_cli(*args, library_dir, check=True):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args, "--library", str(library_dir)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_every_subcommand_is_documented_in_readme():
    readme = (ROOT / "README.md").read_text()
    commands = subcommands()
    assert set(commands) == {
        "add", "scan", "search", "similar", "eval", "adapt", "info", "folders", "remove",
        "errors", "collection", "settings", "model", "knowledge", "screenshot", "check",
        "meta", "rename", "suggest", "export", "loudness", "duplicates",
    }  # fmt: skip
    for command in commands:
        assert re.search(rf"`sonarium {command}\b", readme), command


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert block and readme.index("```bash") < 40
    launch, test = block.group(1).strip().splitlines()
    assert launch.endswith("main.py") and "pytest" in test
    assert test in (ROOT / ".ci" / "run").read_text()


def test_cli_end_to_end(tmp_path, library_dir):
    root = tmp_path / "My Sounds"
    write(root / "explosion_big.wav", noise(1.0, rate=48000, channels=2), 48000)
    write(root / "door knock.flac", tone(0.4), 44100)
    (root / "broken.wav").write_bytes(b"RIFF garbage")

    out = run_cli("add", str(root), library_dir=library_dir)
    assert "3 added" in out.stdout and "1 unreadable" in out.stdout

    again = run_cli("scan", library_dir=library_dir)
    assert "nothing changed" in again.stdout and "0 added" in again.stdout

    results = json.loads(run_cli("search", "explosion", "--json", library_dir=library_dir).stdout)
    # The name matches; the base knowledge may add the other sound after it, below the
    # match threshold ("more that sound alike"), never before it.
    assert results[0]["path"] == str(root / "explosion_big.wav") and results[0]["match"]
    assert all(not r["match"] for r in results[1:])
    first = results[0]
    assert {"path", "score", "duration", "sample_rate", "channels", "format"} <= first.keys()
    assert (first["sample_rate"], first["channels"], first["format"]) == (48000, 2, "WAV")
    assert first["duration"] == pytest.approx(1.0)

    info = json.loads(
        run_cli("info", str(root / "door knock.flac"), "--json", library_dir=library_dir).stdout
    )
    assert info["in_library"] and info["format"] == "FLAC" and info["peak_buckets"] > 0

    outside = write(tmp_path / "elsewhere.wav", tone(0.25), 8000)
    info = json.loads(run_cli("info", str(outside), "--json", library_dir=library_dir).stdout)
    assert not info["in_library"] and info["sample_rate"] == 8000

    errors = json.loads(run_cli("errors", "--json", library_dir=library_dir).stdout)
    assert [e["path"] for e in errors] == [str(root / "broken.wav")] and errors[0]["error"]

    folders = json.loads(run_cli("folders", "--json", library_dir=library_dir).stdout)
    assert folders[0]["path"] == str(root) and folders[0]["files"] == 3

    bad = run_cli("search", "dur:xyz", library_dir=library_dir, check=False)
    assert bad.returncode == 2 and "dur" in bad.stderr and "Traceback" not in bad.stderr

    run_cli("remove", str(root), library_dir=library_dir)
    assert json.loads(run_cli("folders", "--json", library_dir=library_dir).stdout) == []


def test_cli_errors_are_messages_not_tracebacks(tmp_path, library_dir):
    missing = run_cli("add", str(tmp_path / "nope"), library_dir=library_dir, check=False)
    assert missing.returncode == 2 and "not a folder" in missing.stderr
    assert "Traceback" not in missing.stderr
    unknown = run_cli("remove", str(tmp_path), library_dir=library_dir, check=False)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr


def test_library_env_variable_selects_the_library(tmp_path, monkeypatch):
    monkeypatch.setenv("SONARIUM_LIBRARY", str(tmp_path / "envlib"))
    write(tmp_path / "s" / "a.wav")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "add", str(tmp_path / "s"), "-q"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "envlib" / "catalog.sqlite").exists()


@pytest.mark.parametrize("command", ["folders", "scan", "remove"])
def test_global_options_before_the_command_are_kept(tmp_path, library_dir, command):
    """`sonarium --library X folders` acts on X, not on the default library (which
    library_dir points $SONARIUM_LIBRARY at)."""
    import main

    chosen = tmp_path / "chosen"
    root = tmp_path / "sounds"
    write(root / "a.wav", tone(0.2), 8000)
    assert main.main(["--library", str(chosen), "add", str(root), "--no-scan"]) == 0
    args = {"folders": ["--json"], "scan": ["--no-embed", "-q"], "remove": [str(root)]}[command]
    assert main.main(["--library", str(chosen), command, *args]) == 0
    assert (chosen / "catalog.sqlite").exists()
    assert not (library_dir / "catalog.sqlite").exists()
    # After the command the option means the same, and overrides the one before it.
    assert main.main(["--library", str(library_dir), "folders", "--library", str(chosen)]) == 0
    assert not (library_dir / "catalog.sqlite").exists()


def test_every_global_option_reaches_the_engine(tmp_path, monkeypatch):
    import main
    from engine import config

    for s in config.SETTINGS.values():
        if s.env:  # set then deleted, so that teardown removes what main() exports
            monkeypatch.setenv(s.env, "x")
            monkeypatch.delenv(s.env)
    assert [config.value(n) for n in ("device", "precision", "clap_model")] == [
        "auto",
        "auto",
        config.DEFAULT_CLAP_MODEL,
    ]
    lib = str(tmp_path / "lib")
    argv = ["--device", "cpu", "folders", "--precision", "float32", "--model", "/m/clap"]
    assert main.main([*argv, "--library", lib]) == 0
    assert config.value("device") == "cpu"
    assert config.value("precision") == "float32"
    assert config.value("clap_model") == "/m/clap"
    monkeypatch.setenv("SONARIUM_DEVICE", "quantum")
    assert config.value("device") == "auto"  # an unknown choice reads as the default


def test_collections_through_the_cli(tmp_path, library_dir):
    root = tmp_path / "sfx"
    a = write(root / "door_slam.wav", tone(0.3), 8000)
    b = write(root / "glass_break.wav", noise(0.3), 8000)
    run_cli("add", str(root), "--no-embed", "-q", library_dir=library_dir)
    out = run_cli("collection", "add", "Reel 3", str(a), str(b), library_dir=library_dir)
    assert "Reel 3: 2 files" in out.stdout
    listed = json.loads(run_cli("collection", "list", "--json", library_dir=library_dir).stdout)
    assert [(c["name"], c["files"]) for c in listed] == [("Reel 3", 2)]
    shown = json.loads(
        run_cli("collection", "show", "reel 3", "--json", library_dir=library_dir).stdout
    )
    assert sorted(r["name"] for r in shown) == ["door_slam.wav", "glass_break.wav"]
    found = run_cli("search", 'col:"Reel 3" glass', "--json", library_dir=library_dir).stdout
    assert [r["name"] for r in json.loads(found)] == ["glass_break.wav"]
    # Names match whatever their case; a quote cannot be part of one (col:"..." syntax).
    again = run_cli("collection", "add", "reel 3", str(a), library_dir=library_dir)
    assert "reel 3: 2 files" in again.stdout and "Traceback" not in again.stderr
    quoted = run_cli("collection", "add", 'say "hi"', str(a), library_dir=library_dir, check=False)
    assert quoted.returncode == 2 and "double quote" in quoted.stderr
    run_cli("collection", "remove", "Reel 3", str(a), library_dir=library_dir)
    shown = json.loads(
        run_cli("collection", "show", "Reel 3", "--json", library_dir=library_dir).stdout
    )
    assert [r["name"] for r in shown] == ["glass_break.wav"]
    outside = write(tmp_path / "elsewhere.wav", tone(0.2), 8000)
    bad = run_cli("collection", "add", "Reel 3", str(outside), library_dir=library_dir, check=False)
    assert bad.returncode == 2 and "not a file of the library" in bad.stderr
    assert "Traceback" not in bad.stderr
    run_cli("collection", "delete", "Reel 3", library_dir=library_dir)
    assert "no collections" in run_cli("collection", library_dir=library_dir).stdout
    # The files stay in the library.
    assert (
        len(json.loads(run_cli("search", "dur:<60", "--json", library_dir=library_dir).stdout)) == 2
    )


def test_engine_errors_get_the_clis_how(tmp_path, library_dir):
    root = tmp_path / "s"
    write(root / "a.wav", tone(0.2), 8000)
    run_cli("add", str(root), "--no-embed", "-q", library_dir=library_dir)
    proc = run_cli("similar", str(root / "a.wav"), "--space", "mfcc", library_dir=library_dir,
                   check=False)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: no sounds are embedded in the 'mfcc' space yet" in proc.stderr
    assert "run 'sonarium scan'" in proc.stderr


def test_names_with_control_characters_are_printed_escaped(tmp_path, library_dir):
    """A name may hold a newline, an escape sequence or a bidi override: the terminal gets
    them escaped on one line; --json keeps the original (the catalog is unchanged)."""
    root = tmp_path / "hostile"
    name = "door\nslam\x1b[31m\u202egnp.wav"
    write(root / name, tone(0.2), 8000)
    (root / "bad\x07bell.wav").write_bytes(b"RIFF garbage")
    run_cli("add", str(root), "--no-embed", "-q", library_dir=library_dir)
    out = run_cli("search", "door", "--keyword-only", library_dir=library_dir).stdout
    lines = [line for line in out.splitlines() if "door" in line]
    assert len(lines) == 1 and "\x1b" not in out and "\u202e" not in out
    assert "door\\nslam\\x1b[31m\\u202egnp.wav" in lines[0]
    errors = run_cli("errors", library_dir=library_dir).stdout
    assert "\x07" not in errors and "bad\\x07bell.wav" in errors
    as_json = json.loads(run_cli("search", "door", "--json", library_dir=library_dir).stdout)
    assert as_json[0]["name"] == name


def test_a_damaged_catalog_is_an_error_not_a_traceback(tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "catalog.sqlite").write_bytes(b"\x00garbage" * 500)
    proc = run_cli("folders", library_dir=damaged, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: the library's catalog" in proc.stderr and "damaged" in proc.stderr


def test_model_command_reports_a_missing_model(tmp_path, library_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    proc = run_cli("model", str(tmp_path / "no-such-model"), library_dir=library_dir, check=False)
    assert proc.returncode == 1 and "not available here" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_precision_flag_reaches_the_engine(tmp_path, monkeypatch, capsys):
    import torch

    import main
    from engine.config import SETTINGS
    from engine.models.device import inference_dtype, precision_setting

    precision_env = SETTINGS["precision"].env

    monkeypatch.setenv(precision_env, "auto")  # restored after the test
    assert main.main(["folders", "--library", str(tmp_path / "lib"), "--precision", "float32"]) == 0
    assert precision_setting() == "float32"
    assert inference_dtype("cpu") == inference_dtype("cuda") == torch.float32
    monkeypatch.setenv(precision_env, "no-such-precision")
    assert precision_setting() == "auto"
    with pytest.raises(SystemExit):
        main.main(["folders", "--precision", "float8"])


def test_check_verifies_the_catalog_and_side_files(tmp_path, library_dir):
    import sqlite3

    root = tmp_path / "s"
    write(root / "a.wav", tone(0.2), 8000)
    run_cli("add", str(root), "--no-embed", "-q", library_dir=library_dir)
    ok = run_cli("check", library_dir=library_dir)
    assert ok.stdout.startswith("catalog: ok (1 files, 0 unreadable, 0 offline)")
    (library_dir / "aisfx.adapter.npz").write_bytes(b"PK\x03\x04 truncated")
    out = run_cli("check", library_dir=library_dir).stdout
    assert "aisfx.adapter.npz: damaged, will be learned again" in out
    conn = sqlite3.connect(library_dir / "catalog.sqlite")
    conn.execute("INSERT INTO favorites VALUES (424242, 0)")  # foreign keys are off here
    conn.commit()
    conn.close()
    bad = run_cli("check", "--json", library_dir=library_dir, check=False)
    assert bad.returncode == 1
    result = json.loads(bad.stdout)
    assert not result["ok"] and "favorites row" in result["catalog"][0]
    text = run_cli("check", library_dir=library_dir, check=False)
    assert text.returncode == 1 and "DAMAGED" in text.stdout and ".recover" in text.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["search", "door", "--limit", "-1"], "must be from 1 to"),
        (["search", "door", "--limit", "10000000000"], "must be from 1 to"),
        (["similar", "x.wav", "--start", "-2"], "0 seconds or more"),
        (["similar", "x.wav", "--end", "nan"], "0 seconds or more"),
        (["eval", "q.json", "--hide-names", "1.5"], "at most 1"),
    ],
)
def test_bad_arguments_are_refused_with_a_usage_message(args, says, library_dir):
    proc = run_cli(*args, library_dir=library_dir, check=False)
    assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr


def test_results_below_the_match_threshold_follow_a_separator(capsys):
    from cli.output import print_results
    from engine.search.keyword import SearchResult

    def result(i, match):
        return SearchResult(
            id=i, path=f"/s/{i}.wav", name=f"{i}.wav", folder="/s", score=0.9 - i / 10,
            duration=1.0, sample_rate=48000, channels=1, format="WAV", subtype="PCM_16",
            bit_depth=16, size=1, match=match,
        )  # fmt: skip

    print_results([result(0, True), result(1, True), result(2, False), result(3, False)], False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "-- 2 more that sound alike --" and lines[3].endswith("/s/2.wav")
    print_results([result(0, True)], False)
    assert "sound alike" not in capsys.readouterr().out
