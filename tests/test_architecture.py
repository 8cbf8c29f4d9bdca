"""The house rules, checked: rooms, import boundaries, no cycles, settings documented, mypy.

Import rules are checked two ways: statically (every import statement of every engine
module, lazy ones included, read with ast) and by importing in a fresh interpreter
(what actually loads).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

ENGINE = ROOT / "engine"
QT = ("PySide6", "shiboken6", "gui", "cli")
HEAVY = ("torch", "torchaudio", "faiss", "transformers")
# Rooms (and modules) that must start fast: scanning and keyword search never wait for
# torch or faiss to load, and the player and export never need them.
LIGHT = (
    "engine.catalog", "engine.scan", "engine.search.words", "engine.search.query",
    "engine.search.keyword", "engine.audio.player", "engine.audio.export",
    "engine.audio.decode", "engine.config", "engine.errors", "engine.library",
    # Curating never waits for models, but for its suggestions (engine.curate.suggest).
    "engine.curate.write", "engine.curate.riff", "engine.curate.aiff", "engine.curate.tags",
    "engine.curate.batch", "engine.curate.csv_io", "engine.curate.rename",
    "engine.curate.copy",
)  # fmt: skip
TOP_LEVEL_MODULES = {"__init__", "library", "config", "errors", "index_worker"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def engine_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ENGINE.rglob("*.py"))}


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Absolute module names a file imports (lazily too, unless top_level_only; imports
    under `if TYPE_CHECKING:` never run and are left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            counted = top or not top_level_only
            if isinstance(child, ast.Import) and counted:
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and counted:
                found.add(child.module)
                found.update(f"{child.module}.{a.name}" for a in child.names)
            inner = top and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            visit(child, inner)

    visit(tree, True)
    return found


def is_under(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == r or name.startswith(r + ".") for r in roots)


def test_engine_is_rooms_one_level_deep_each_with_a_docstring():
    rooms = sorted(p.name for p in ENGINE.iterdir() if (p / "__init__.py").exists())
    assert rooms == [
        "adapt", "audio", "catalog", "curate", "embed", "eval", "models", "scan", "search",
    ]  # fmt: skip
    loose = {p.stem for p in ENGINE.glob("*.py")}
    assert loose == TOP_LEVEL_MODULES
    for name, path in engine_modules().items():
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert docstring and len(docstring) > 20, f"{name} has no docstring"
    # Only the model room has rooms inside (one per model family).
    nested = sorted(str(p.parent.relative_to(ENGINE)) for p in ENGINE.glob("*/*/__init__.py"))
    assert nested == ["models/aisfx", "models/clap"]


def test_no_engine_module_imports_qt_or_a_front_end():
    for name, path in engine_modules().items():
        bad = [i for i in imports(path) if is_under(i, QT)]
        assert not bad, f"{name} imports {bad}"


def test_light_rooms_never_import_torch_faiss_or_transformers():
    for name, path in engine_modules().items():
        if not is_under(name, LIGHT) or name == "engine.library":
            continue  # the façade loads heavy rooms lazily, on first use of a model
        bad = [i for i in imports(path) if is_under(i, HEAVY)]
        assert not bad, f"{name} imports {bad}"
        heavy_rooms = ("engine.models", "engine.embed", "engine.adapt", "engine.eval")
        bad = [i for i in imports(path) if is_under(i, heavy_rooms)]
        assert not bad, f"{name} imports {bad}"
        bad = [i for i in imports(path) if is_under(i, ("engine.search.similar",))]
        assert not bad, f"{name} imports {bad}"


def test_importing_every_engine_module_loads_no_qt_and_light_ones_load_no_torch():
    names = sorted(n for n in engine_modules() if n != "engine.index_worker")
    light = sorted(n for n in names if is_under(n, LIGHT))
    code = (
        "import importlib, json, sys\n"
        f"for n in {light!r}: importlib.import_module(n)\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        f"for n in {names!r}: importlib.import_module(n)\n"
        "qt = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6'))\n"
        "print(json.dumps({'heavy_after_light': heavy, 'qt': qt}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == {"heavy_after_light": [], "qt": []}


def test_no_import_cycles_between_engine_modules():
    modules = engine_modules()
    graph = {
        name: {i for i in imports(path, top_level_only=True) if i in modules and i != name}
        for name, path in modules.items()
    }
    # A package's __init__ is imported before any of its modules: not a cycle.
    for name in graph:
        graph[name] = {i for i in graph[name] if not name.startswith(i + ".")}
    visiting: list[str] = []
    done: set[str] = set()

    def walk(node: str) -> None:
        if node in done:
            return
        assert node not in visiting, " -> ".join([*visiting[visiting.index(node) :], node])
        visiting.append(node)
        for nxt in sorted(graph[node]):
            walk(nxt)
        visiting.pop()
        done.add(node)

    for name in sorted(graph):
        walk(name)


def test_every_room_is_on_the_architecture_map():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for room in sorted(p.parent for p in ENGINE.rglob("__init__.py")):
        rel = room.relative_to(ROOT).as_posix() + "/"
        if rel == "engine/":
            continue
        assert f"`{rel}`" in doc, f"{rel} is not in docs/architecture.md"
    for top in ("cli/", "gui/", "engine/library.py", "engine/index_worker.py"):
        assert f"`{top}`" in doc, top


def test_every_setting_is_documented_in_readme():
    from engine import config

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for s in config.SETTINGS.values():
        if s.env:
            assert f"`{s.env}`" in readme, s.env
        if s.cli_flag:
            assert s.cli_flag in readme, s.cli_flag
        if s.choices and s.cli_flag:  # the option with all its choices, as the table writes it
            spelled = f"{s.cli_flag} " + "\\|".join(s.choices)
            assert spelled in readme, spelled
        if s.env and s.default:  # the settings table's row says the default
            row = next(line for line in readme.splitlines() if f"`{s.env}`" in line)
            assert f"`{s.default}`" in row, row


def test_defaults_have_one_home():
    """The values engine.config owns are not spelled out again anywhere else."""
    from engine import config

    owned = {
        config.DEFAULT_CLAP_MODEL: "the CLAP model id",
        "SONARIUM_": "an environment variable name",
    }
    allowed = {ENGINE / "config.py"}
    for folder in ("engine", "cli", "gui"):
        for path in (ROOT / folder).rglob("*.py"):
            if path in allowed:
                continue
            text = path.read_text(encoding="utf-8")
            for value, what in owned.items():
                assert f'"{value}' not in text, f"{path.relative_to(ROOT)} repeats {what}"
    suffix_lists = re.compile(r"\{[^}]*\"\.wav\"[^}]*\"\.flac\"")
    for folder in ("engine", "cli", "gui"):
        for path in (ROOT / folder).rglob("*.py"):
            if path not in allowed:
                assert not suffix_lists.search(path.read_text(encoding="utf-8")), path


def test_console_script_is_the_same_entry_as_main_py():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"sonarium": "cli.main:run"}
    via_main = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--help"], capture_output=True, text=True
    )
    entry = "import sys; sys.argv[0] = 'sonarium'; from cli.main import run; run()"
    via_entry = subprocess.run(
        [sys.executable, "-c", entry, "--help"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert via_main.returncode == via_entry.returncode == 0
    assert via_main.stdout == via_entry.stdout and "collection" in via_main.stdout


def test_every_entry_prepares_its_process_before_numpy_loads():
    """The CLI and the app (main.py, the console script) set PROCESS_ENVIRONMENT before
    anything imports numpy, and leave a variable the user set alone; importing the
    catalog leaves pandas unimported (and importable)."""
    import os

    from engine.config import PROCESS_ENVIRONMENT

    probe = (
        "import sys, json, os; import cli; numpy = 'numpy' in sys.modules; import cli.main; "
        "import engine.catalog.db; pandas = 'pandas' in sys.modules; "
        f"print(json.dumps({{k: os.environ.get(k) for k in {list(PROCESS_ENVIRONMENT)!r}}} | "
        "{'pandas': pandas, 'numpy': numpy}))"
    )
    env = {k: v for k, v in os.environ.items() if k not in PROCESS_ENVIRONMENT}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {**PROCESS_ENVIRONMENT, "pandas": False, "numpy": False}
    mine = {**env, **{k: "7" for k in PROCESS_ENVIRONMENT}}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=mine
    )  # fmt: skip
    mine_seen = {**{k: "7" for k in PROCESS_ENVIRONMENT}, "pandas": False, "numpy": False}
    assert json.loads(out.stdout) == mine_seen
    import importlib.util

    if importlib.util.find_spec("pandas") is not None:
        after = "import engine.catalog.db, pandas; print(pandas.__name__)"
        done = subprocess.run(
            [sys.executable, "-c", after], capture_output=True, text=True, cwd=ROOT
        )
        assert done.stdout.strip() == "pandas", done.stderr


@pytest.mark.slow
def test_mypy_is_clean_on_the_engine():
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"], capture_output=True, text=True,
        cwd=ROOT, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
