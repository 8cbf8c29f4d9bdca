import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"


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
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED
