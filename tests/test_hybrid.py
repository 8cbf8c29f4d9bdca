"""Hybrid ranking with a fake embedder whose vectors the test chooses."""

import numpy as np
import pytest

from engine.embed.pipeline import Embedder
from engine.search.hybrid import hybrid_search
from engine.search.similar import SimilarIndex
from tests.audio_factory import write
from tests.test_similar import FakeSpace, dc


class FakeTextSpace(FakeSpace):
    """Audio like FakeSpace (a DC level picks a direction); text words pick directions."""

    WORDS = {"thunder": 0, "rain": 1, "door": 2, "bird": 3}

    def embed_text(self, texts):
        out = np.zeros((len(texts), 4), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                if word in self.WORDS:
                    out[i, self.WORDS[word]] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


@pytest.fixture
def hybrid(tmp_path, library):
    root = tmp_path / "s"
    # Audio directions: 0 = "thunder", 1 = "rain", 2 = "door", 3 = "bird".
    write(root / "pcv637.wav", dc(3, 0.0), 8000)  # thunder, meaningless name
    write(root / "storm_thunder_far.wav", dc(1, 0.01), 8000)  # thunder, good name
    write(root / "thunder_logo_sting.wav", dc(1, 0.1), 8000)  # named thunder, sounds like rain
    write(root / "BD_01.wav", dc(1, 0.2), 8000)  # door
    write(root / "long" / "xx_take2.wav", dc(12, 0.3), 8000)  # bird, 12 s
    library.add_folders([root])
    library.scan(workers=1)
    space = FakeTextSpace()
    Embedder(library.catalog, [space]).run()
    return library, SimilarIndex(library.catalog, library.dir), space


def names(results):
    return [r.name for r in results]


def test_content_finds_badly_named_files(hybrid):
    library, index, space = hybrid
    results = hybrid_search(library.catalog, index, space, "thunder", limit=3, content_only=True)
    assert set(names(results)[:2]) == {"pcv637.wav", "storm_thunder_far.wav"}
    assert "thunder_logo_sting.wav" not in names(results)[:2]


def test_fusion_puts_files_matching_both_first(hybrid):
    library, index, space = hybrid
    results = hybrid_search(library.catalog, index, space, "thunder", limit=5)
    assert names(results)[0] == "storm_thunder_far.wav"  # first by name and by sound
    assert {"pcv637.wav", "thunder_logo_sting.wav"} <= set(names(results))
    assert results[0].score == pytest.approx(max(r.score for r in results))
    assert 0 < results[-1].score <= results[0].score <= 1.0


def test_filters_apply_before_the_limit(hybrid):
    library, index, space = hybrid
    results = hybrid_search(library.catalog, index, space, "thunder dur:>2", limit=1)
    assert names(results) == ["pcv637.wav"]
    results = hybrid_search(library.catalog, index, space, "bird dur:<2", limit=1)
    assert names(results) != ["xx_take2.wav"]
    assert hybrid_search(library.catalog, index, space, "thunder -storm", limit=5)
    assert "storm_thunder_far.wav" not in names(
        hybrid_search(library.catalog, index, space, "thunder -storm", limit=5)
    )


def test_results_carry_their_best_moment(hybrid):
    library, index, space = hybrid
    results = hybrid_search(library.catalog, index, space, "bird", limit=1, content_only=True)
    assert names(results) == ["xx_take2.wav"]
    assert results[0].start is not None and results[0].end == results[0].start + 1.0


def test_filters_only_falls_back_to_keyword_listing(hybrid):
    library, index, space = hybrid
    results = hybrid_search(library.catalog, index, space, "dur:>5", limit=10)
    assert names(results) == ["xx_take2.wav"]
