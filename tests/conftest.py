import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    from tests.requires import check

    check(item)


@pytest.fixture
def library_dir(tmp_path, monkeypatch):
    """An empty library folder; SONARIUM_LIBRARY points at it for subprocesses."""
    path = tmp_path / "library"
    monkeypatch.setenv("SONARIUM_LIBRARY", str(path))
    return path


@pytest.fixture
def library(library_dir):
    from engine.library import Library

    lib = Library(library_dir)
    yield lib
    lib.close()


@pytest.fixture
def shared_dir():
    """../shared when present; skipped without it on a laptop, a failure in CI (which has it)."""
    from tests.requires import in_ci

    if not SHARED.is_dir():
        if in_ci():
            pytest.fail("CI must have ../shared beside the project", pytrace=False)
        pytest.skip("../shared is not present")
    return SHARED
