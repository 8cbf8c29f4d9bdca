"""CLAP: windows, torch log-mel against transformers' extractor, safe loading, the space.

The real laion weights can't be downloaded here, so a tiny randomly initialised ClapModel
(HTSAT audio tower with 2 stages of 1 block, 8-16 channels; 1-layer text tower; 8-d
projection) is saved with save_pretrained(safe_serialization=True) next to a ClapProcessor
whose tokenizer is a byte-level RobertaTokenizer built offline (256 byte symbols, no
merges). Everything then loads through the product's own load_clap / ClapSpace.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config import SETTINGS
from engine.errors import ModelUnavailable
from engine.models.clap import model as clap_model
from engine.models.clap.features import (
    PREPROCESSING_VERSION,
    ClapFeatures,
    MelSettings,
    log_mel,
    mel_filterbank,
    n_windows,
    pooled_vector,
    window_times,
    windows,
)
from engine.models.clap.model import load_clap
from engine.models.clap.space import ClapSpace
from engine.models.device import fast_bfloat16, inference_dtype
from engine.models.spaces import available_spaces
from tests.fakes import DIM, save_tiny_clap
from tests.fakes import extractor as _extractor

PRECISION_ENV = SETTINGS["precision"].env

SR = 48_000
WIN = 10 * SR


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    return save_tiny_clap(tmp_path_factory.mktemp("tiny-clap"))


@pytest.fixture(scope="module")
def space(tiny_folder) -> ClapSpace:
    """The space in float32 (loaded here), so vectors can be compared with transformers'
    own pipeline; bf16 is tested on its own below."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PRECISION_ENV, "float32")
        built = ClapSpace(str(tiny_folder), device="cpu")
        built._load()
    return built


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("SONARIUM_CLAP_MODEL", raising=False)
    return cache


def _noise(seconds: float, seed: int = 0, amp: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amp * rng.standard_normal(int(round(seconds * SR)))).astype(np.float32)


# --- windows ------------------------------------------------------------------------------


def test_short_clip_is_one_zero_padded_window():
    clip = _noise(0.5)
    wins, times = windows(clip, SR)
    assert wins.shape == (1, WIN) and wins.dtype == torch.float32
    assert torch.equal(wins[0, : len(clip)], torch.from_numpy(clip))
    assert torch.count_nonzero(wins[0, len(clip) :]) == 0  # zeros, never a repeat
    assert times == [(0.0, 0.5)]


def test_exact_and_one_sample_over_ten_seconds():
    clip = _noise(10.0)
    wins, times = windows(clip, SR)
    assert wins.shape == (1, WIN) and times == [(0.0, 10.0)]
    assert torch.equal(wins[0], torch.from_numpy(clip))

    longer = _noise(10.0 + 1 / SR, seed=1)
    wins, times = windows(longer, SR)
    assert wins.shape == (2, WIN)
    assert torch.equal(wins[0], torch.from_numpy(longer[:WIN]))
    assert wins[1, 0].item() == longer[-1]
    assert torch.count_nonzero(wins[1, 1:]) == 0
    assert times == [(0.0, 10.0), (10.0, (WIN + 1) / SR)]


def test_windows_cover_the_file_at_a_fixed_hop():
    wins, times = windows(_noise(25.0), SR)
    assert len(wins) == 3
    assert times == [(0.0, 10.0), (10.0, 20.0), (20.0, 25.0)]
    assert window_times(0, SR) == [(0.0, 0.0)] and n_windows(0, SR) == 1


def test_one_hour_is_360_windows_without_copying():
    hour = 3600 * SR
    assert n_windows(hour, SR) == 360
    assert n_windows(hour + 1, SR) == 361
    times = window_times(hour, SR)
    assert len(times) == 360 and times[0] == (0.0, 10.0) and times[-1] == (3590.0, 3600.0)
    # A zero-stride hour of silence: windows() returns a view, so no 700 MB is allocated.
    wins, times2 = windows(torch.zeros(1).expand(hour), SR)
    assert wins.shape == (360, WIN) and times2 == times


# --- log-mel against transformers' ClapFeatureExtractor -----------------------------------


def _signals() -> dict[str, np.ndarray]:
    t = np.arange(WIN) / SR
    rng = np.random.default_rng(7)
    burst = np.zeros(WIN)
    burst[: SR // 2] = 0.5 * rng.standard_normal(SR // 2)
    return {
        "noise": 0.3 * rng.standard_normal(WIN),
        "tones": 0.9 * np.sin(2 * np.pi * 440 * t) + 0.01 * np.sin(2 * np.pi * 5000 * t),
        "burst": burst,  # then 9.5 s of digital silence (the -100 dB floor)
    }


@pytest.mark.parametrize("truncation", ["rand_trunc", "fusion"])
def test_filterbank_is_the_extractors(truncation):
    extractor = _extractor(truncation)
    settings = MelSettings.from_extractor(extractor)
    expected = extractor.mel_filters if truncation == "fusion" else extractor.mel_filters_slaney
    assert settings.mel_scale == ("htk" if truncation == "fusion" else "slaney")
    assert np.array_equal(mel_filterbank(settings), expected)


@pytest.mark.parametrize("truncation", ["rand_trunc", "fusion"])
def test_log_mel_matches_extractor_on_exactly_ten_seconds(truncation):
    """Tolerances, on exactly-10-s input (no crop, pad or randomness in the extractor):
    float64: max |ours - extractor| <= 1e-4 dB in every band (measured 4e-6). float32
    (the default): <= 1e-3 dB in bands within 80 dB of their frame's loudest band
    (measured 7e-4); bands further down differ by up to ~2 dB, the float32 FFT's rounding
    noise, so they are not compared; on broadband noise every band is within 1e-4 dB."""
    extractor = _extractor(truncation)
    settings = MelSettings.from_extractor(extractor)
    channels = 4 if truncation == "fusion" else 1
    signals = {k: v.astype(np.float32) for k, v in _signals().items()}
    batch = torch.from_numpy(np.stack(list(signals.values())))
    ours64 = ClapFeatures(settings, dtype=torch.float64)(batch)  # batched
    ours32 = ClapFeatures(settings)(batch)  # the default
    assert ours64.dtype == torch.float64 and ours32.dtype == torch.float32
    assert ours64.shape == (3, channels, 1001, 64)
    for i, (name, x) in enumerate(signals.items()):
        ref = extractor(x, sampling_rate=SR, return_tensors="pt")["input_features"][0]
        assert ref.shape == (channels, 1001, 64)
        ref = ref.double()
        assert (ours64[i] - ref).abs().max().item() <= 1e-4, name
        diff32 = (ours32[i].double() - ref).abs()
        near = ref > ref.amax(dim=-1, keepdim=True) - 80.0
        assert diff32[near].max().item() <= 1e-3, name
        if name == "noise":
            assert diff32.max().item() <= 1e-4
    # The convenience function is the same computation (up to the last bits: BLAS may
    # pick a different kernel for a batch of one than for three).
    single = log_mel(batch[:1], settings, torch.float64)
    assert (single - ours64[:1]).abs().max().item() <= 1e-9


@pytest.mark.parametrize("truncation", ["rand_trunc", "fusion"])
def test_zero_tail_frames_are_filled_not_computed_with_the_same_result(truncation):
    """Pieces shorter than a window (or windows with their real lengths) give exactly the
    log-mel of the zero-padded window, while transforming only the frames near audio."""
    settings = MelSettings.from_extractor(_extractor(truncation))
    features = ClapFeatures(settings)
    lengths = [0, 1, 1000, 48_000, 300_000, WIN - 1025, WIN - 1000, WIN]
    clips = [_noise(n / SR, seed=n) for n in lengths]
    padded = torch.stack([windows(c, SR)[0][0] for c in clips])
    full = features._log_mel(padded)
    pieces = features([torch.from_numpy(c) for c in clips])
    masked = features(padded, lengths)
    assert pieces.shape == full.shape == (len(lengths), settings.channels, 1001, 64)
    assert torch.equal(pieces, full) and torch.equal(masked, full)
    assert torch.equal(features(padded), full)
    with pytest.raises(ValueError, match="longer than"):
        features([torch.zeros(WIN + 1)])


# --- loading ------------------------------------------------------------------------------


def test_load_clap_from_a_folder(tiny_folder, no_network):
    loaded = load_clap(str(tiny_folder), device="cpu")
    assert loaded.device == "cpu" and loaded.dtype == inference_dtype("cpu")
    assert next(loaded.model.parameters()).dtype == loaded.dtype
    assert not loaded.model.training
    assert loaded.source == str(tiny_folder.resolve())
    assert loaded.revision.startswith("content-")
    assert loaded.identity == (
        f"clap:{tiny_folder.resolve()}@{loaded.revision}:{PREPROCESSING_VERSION}"
    )
    assert loaded.feature_extractor.sampling_rate == SR
    assert loaded.feature_extractor.truncation == "rand_trunc"


def test_precision_setting_and_bfloat16_tolerance(tiny_folder, monkeypatch, no_network):
    """float32 when the setting says so; on a CPU with fast bf16 kernels "auto" loads
    bfloat16, whose vectors stay within cosine 0.99 of float32 (random weights; the
    full-size architecture measured 0.99998 in bench notes)."""
    monkeypatch.setenv(PRECISION_ENV, "float32")
    assert inference_dtype("cpu") == torch.float32
    full = ClapSpace(str(tiny_folder), device="cpu")
    clips = [_noise(3.0, seed=8), _noise(12.0, seed=9)]
    reference = full.embed(clips)
    assert full._loaded.dtype == torch.float32
    monkeypatch.setenv(PRECISION_ENV, "auto")
    if not fast_bfloat16("cpu"):
        assert inference_dtype("cpu") == torch.float32
        pytest.skip("this CPU has no fast bfloat16 kernels: auto stays float32")
    fast = ClapSpace(str(tiny_folder), device="cpu")
    vectors = fast.embed(clips)
    assert fast._loaded.dtype == torch.bfloat16
    for a, b in zip(reference, vectors, strict=True):
        assert b.vector.dtype == np.float32
        assert float(a.vector @ b.vector) >= 0.99
    text = full.embed_text(["a dog barks"])[0] @ fast.embed_text(["a dog barks"])[0]
    assert float(text) >= 0.99


def test_hub_id_in_the_cache_loads_offline(tiny_folder, tmp_path, monkeypatch, no_network):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--someone--tiny-clap"
    shutil.copytree(tiny_folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    space = ClapSpace("someone/tiny-clap", device="cpu", cache_dir=str(tmp_path / "cache"))
    assert space.identity() == f"clap:someone/tiny-clap@{commit}:{PREPROCESSING_VERSION}"
    assert space.embed_text(["rain"]).shape == (1, DIM)


def test_download_reports_progress_and_fetches_no_pickles(
    tiny_folder, tmp_path, monkeypatch, no_network
):
    import huggingface_hub

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    calls = {}

    def fake_snapshot_download(repo_id, **kwargs):
        # What huggingface_hub 2.x does with tqdm_class: a bytes-written bar, a transfer
        # bar (not reported) and a file-count bar (not reported).
        calls.update(kwargs, repo_id=repo_id)
        bar_cls = kwargs["tqdm_class"]
        written = bar_cls(name="huggingface_hub.snapshot_download", unit="B", total=100)
        transfer = bar_cls(name="huggingface_hub.snapshot_download.transfer", unit="B")
        files = bar_cls(total=3, desc="Fetching 3 files")
        written.update(40)
        transfer.update(70)
        written.update(60)
        files.update(3)
        for bar in (written, transfer, files):
            bar.close()
        return str(tiny_folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    seen = []
    loaded = load_clap(
        "someone/tiny-clap", "cpu", lambda done, total: seen.append((done, total)),
        cache_dir=tmp_path / "empty",
    )  # fmt: skip
    assert seen == [(40, 100), (100, 100)]
    assert calls["repo_id"] == "someone/tiny-clap"
    assert calls["allow_patterns"] == ["*.json", "*.txt", "*.safetensors"]
    assert loaded.source == "someone/tiny-clap"

    def unreachable(repo_id, **kwargs):
        raise ConnectionError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    with pytest.raises(ModelUnavailable, match="check the network connection"):
        load_clap("someone/other-clap", "cpu", cache_dir=tmp_path / "empty")


# --- missing or unsafe models -------------------------------------------------------------


def test_missing_folder_fails_fast_with_a_fix(empty_hf_cache, no_network):
    started = time.monotonic()
    with pytest.raises(ModelUnavailable, match="no CLAP model folder at /nonexistent") as err:
        ClapSpace("/nonexistent")
    assert "hf download" in str(err.value) and "--local-dir" in str(err.value)
    with pytest.raises(ModelUnavailable):
        load_clap("/nonexistent")
    assert time.monotonic() - started < 1.0


def test_uncached_hub_id_offline_fails_fast_without_network(
    empty_hf_cache, monkeypatch, no_network
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(ModelUnavailable, match="offline mode is on") as err:
        ClapSpace("laion/clap-htsat-unfused")
    message = str(err.value)
    assert "laion/clap-htsat-unfused" in message and "hf download" in message
    assert "not in the Hugging Face cache" in message
    with pytest.raises(ModelUnavailable, match="offline mode is on"):
        load_clap("laion/clap-htsat-unfused")
    assert time.monotonic() - started < 1.0


def test_uncached_hub_id_never_downloads_when_building_the_space(
    empty_hf_cache, monkeypatch, no_network
):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ModelUnavailable, match="not downloaded yet"):
        ClapSpace("laion/clap-htsat-unfused")


def test_available_spaces_skip_clap_when_absent(empty_hf_cache, monkeypatch, no_network):
    from engine.models.aisfx.model import checkpoint_path

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    names = [s.name for s in available_spaces()]
    assert "clap" not in names and "mfcc" in names
    assert ("aisfx" in names) == (checkpoint_path() is not None)


def test_available_spaces_include_a_configured_clap(tiny_folder, monkeypatch, no_network):
    monkeypatch.setenv("SONARIUM_CLAP_MODEL", str(tiny_folder))
    assert "clap" in [s.name for s in available_spaces(("mfcc", "clap"))]


class _TouchesMarker:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_only_folder_is_refused_unread(tiny_folder, tmp_path, monkeypatch):
    import pickle

    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_folder / "config.json", folder / "config.json")
    shutil.copy(tiny_folder / "processor_config.json", folder / "processor_config.json")
    marker = tmp_path / "unpickled"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_TouchesMarker(str(marker))))

    def forbidden(*args, **kwargs):
        raise AssertionError("a pickle was read")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    for build in (lambda: ClapSpace(str(folder)), lambda: load_clap(str(folder), "cpu")):
        with pytest.raises(ModelUnavailable, match="only pickle weights") as err:
            build()
        assert "model.safetensors" in str(err.value)
    assert not marker.exists()

    # Next to safetensors, a pickle is simply ignored.
    for item in tiny_folder.iterdir():
        if item.is_file() and not (folder / item.name).exists():
            shutil.copy(item, folder / item.name)
    assert load_clap(str(folder), "cpu").model is not None
    assert not marker.exists()


def test_folder_with_another_model_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ModelUnavailable, match="not CLAP"):
        clap_model.resolve_local(str(tmp_path))


# --- the space ----------------------------------------------------------------------------


def test_space_shape_and_identity(space, tiny_folder):
    assert (space.name, space.has_text, space.standardize) == ("clap", True, False)
    assert space.sample_rate == SR and space.dim == DIM
    assert space.identity().startswith(f"clap:{tiny_folder.resolve()}@content-")
    assert space.identity().endswith(PREPROCESSING_VERSION)


def test_embed_is_deterministic_and_pools_windows(space):
    short, long = _noise(0.5, seed=1), _noise(12.0, seed=2)
    first = space.embed([short, long])
    second = space.embed([short, long])
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a.vector, b.vector)
        for (s1, e1, v1), (s2, e2, v2) in zip(a.windows, b.windows, strict=True):
            assert (s1, e1) == (s2, e2) and np.array_equal(v1, v2)
    emb_short, emb_long = first
    assert [(s, e) for s, e, _ in emb_short.windows] == [(0.0, 0.5)]
    assert [(s, e) for s, e, _ in emb_long.windows] == [(0.0, 10.0), (10.0, 12.0)]
    for emb in first:
        assert emb.vector.dtype == np.float32 and emb.vector.shape == (DIM,)
        assert abs(np.linalg.norm(emb.vector) - 1.0) < 1e-5
        for _, _, vec in emb.windows:
            assert abs(np.linalg.norm(vec) - 1.0) < 1e-5
    # File vector: the mean of the window vectors weighted by their seconds of audio.
    vecs = np.stack([v for _, _, v in emb_long.windows])
    expected = (10.0 * vecs[0] + 2.0 * vecs[1]) / 12.0
    np.testing.assert_allclose(emb_long.vector, expected / np.linalg.norm(expected), atol=1e-6)
    np.testing.assert_allclose(
        pooled_vector(vecs, np.array([10.0, 2.0])), emb_long.vector, atol=1e-7
    )  # fmt: skip
    # Batching across clips doesn't change a clip's vectors beyond float noise.
    alone = space.embed([long])[0]
    np.testing.assert_allclose(alone.vector, emb_long.vector, atol=1e-5)


def test_cpu_lanes_share_the_windows_and_give_the_same_vectors(space, monkeypatch):
    """On a multi-core CPU the windows of a call are split evenly between two lanes that
    run the audio tower side by side, one torch thread each; the vectors match a single
    lane's within float noise (different thread counts sum in a different order)."""
    clips = [_noise(seconds, seed=i) for i, seconds in enumerate([0.5, 12.0, 31.0, 3.0, 25.0])]
    monkeypatch.setattr("engine.models.cpu_lanes.lane_count", lambda device: 1)
    space._lanes = None
    one_lane = space.embed(clips)
    assert space._lanes is None

    previous = torch.get_num_threads()
    model = space._loaded.model
    real = model.get_audio_features
    calls = []

    def recording(**kwargs):
        calls.append((threading.current_thread().name, torch.get_num_threads(),
                      len(kwargs["input_features"])))  # fmt: skip
        return real(**kwargs)

    try:
        torch.set_num_threads(2)
        monkeypatch.setattr("engine.models.cpu_lanes.lane_count", lambda device: 2)
        monkeypatch.setattr(model, "get_audio_features", recording)
        two_lanes = space.embed(clips)
        assert torch.get_num_threads() == 2  # the calling thread keeps its threads
    finally:
        torch.set_num_threads(previous)
        if space._lanes is not None:
            space._lanes.close()
        space._lanes = None
    # 1 + 2 + 4 + 1 + 3 = 11 windows: 6 and 5 per lane, in batches of at most 4.
    lanes = sorted({name for name, _, _ in calls})
    assert len(lanes) == 2 and all(name.startswith("sonarium-lane") for name in lanes)
    assert {threads for _, threads, _ in calls} == {1}
    per_lane = [sorted(n for name, _, n in calls if name == lane) for lane in lanes]
    assert sorted(per_lane) == [[1, 4], [2, 4]]
    for a, b in zip(one_lane, two_lanes, strict=True):
        assert [(s, e) for s, e, _ in a.windows] == [(s, e) for s, e, _ in b.windows]
        np.testing.assert_allclose(a.vector, b.vector, atol=1e-5)
        for (_, _, v1), (_, _, v2) in zip(a.windows, b.windows, strict=True):
            np.testing.assert_allclose(v1, v2, atol=1e-5)


def test_embed_text_is_normalised_and_cached(space, monkeypatch):
    space.embed_text(["warm up"])  # loads the model
    model = space._loaded.model
    real = model.get_text_features
    batches = []

    def counting(**kwargs):
        batches.append(kwargs["input_ids"].shape[0])
        return real(**kwargs)

    monkeypatch.setattr(model, "get_text_features", counting)
    texts = ["a dog barks", "rain on a tin roof", "a dog barks"]
    vecs = space.embed_text(texts)
    assert vecs.shape == (3, DIM) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vecs[0], vecs[2])
    assert batches == [2]  # the duplicate was embedded once
    again = space.embed_text(texts)
    assert batches == [2]  # all cached: no model call
    assert np.array_equal(again, vecs)
    space.embed_text(["rain on a tin roof", "thunder"])
    assert batches == [2, 1]  # only the new text
    assert space.embed_text([]).shape == (0, DIM)


@pytest.mark.parametrize("seconds", [10.0, 0.5])
def test_window_vectors_match_the_transformers_pipeline(space, seconds):
    """Our windows + log-mel + model == ClapFeatureExtractor + model on the same input:
    exactly 10 s (no crop), or 0.5 s zero-padded (the extractor's padding="pad").
    Tolerance: max abs difference 1e-5 between normalised 8-d vectors."""
    clip = _noise(seconds, seed=5)
    ours = space.embed([clip])[0].windows[0][2]
    loaded = space._loaded
    inputs = loaded.feature_extractor(clip, sampling_rate=SR, padding="pad", return_tensors="pt")
    with torch.inference_mode():
        out = loaded.model.get_audio_features(
            input_features=inputs["input_features"], is_longer=inputs["is_longer"]
        )
    theirs = torch.nn.functional.normalize(out.pooler_output, dim=-1)[0].numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_library_search_uses_clap_end_to_end(tiny_folder, tmp_path, monkeypatch):
    """Scan → CLAP embedding through the pipeline → `search` blends content and keywords,
    with moments; random weights, so this checks the mechanics, not the quality."""
    import engine.models.spaces as spaces_module
    from engine.embed.pipeline import Embedder
    from engine.library import Library
    from tests.audio_factory import noise, write

    monkeypatch.setenv("SONARIUM_CLAP_MODEL", str(tiny_folder))
    monkeypatch.setattr(spaces_module, "_SHARED", {})
    root = tmp_path / "lib"
    write(root / "rain_on_roof.wav", noise(12.0, rate=48000, seed=1), 48000)
    write(root / "pcv637.wav", noise(3.0, rate=48000, seed=2), 48000)
    with Library(tmp_path / "catalog") as lib:
        lib.add_folders([root])
        lib.scan(workers=1)
        report = Embedder(lib.catalog, [spaces_module.make_space("clap")]).run()
        assert report.files == 2
        assert lib.text_space() is not None and lib.text_space().name == "clap"
        results = lib.search("rain", limit=5)
        assert {r.name for r in results} == {"rain_on_roof.wav", "pcv637.wav"}
        assert results[0].name == "rain_on_roof.wav"  # named for it and a content hit
        long_one = next(r for r in results if r.name == "rain_on_roof.wav")
        assert long_one.start in (0.0, 10.0) and long_one.end > long_one.start
        content = lib.search("rain", limit=5, mode="content")
        assert len(content) == 2 and all(0 < r.score <= 1 for r in content)
