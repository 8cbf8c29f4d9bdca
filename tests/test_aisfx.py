"""aisfx embedding: our network and torch preprocessing against the aisfx 0.1.2 package.

The package is never imported as a whole (its __init__ needs librosa/essentia, which are
not installed); single modules that only need torch/numpy are loaded from their files.
Tests that need the installed checkpoint skip when it is absent.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.models.aisfx.features import (
    AisfxFeatures,
    embed_blocks,
    file_vector,
    mel_filterbank,
    n_blocks,
    n_frames,
)
from engine.models.aisfx.model import (
    BLOCK_FRAMES,
    EMBED_DIM,
    HOP,
    MEL_BINS,
    N_FFT,
    NORM,
    SAMPLE_RATE,
    AisfxNet,
    ModelUnavailable,
    checkpoint_path,
    load_aisfx,
)
from tests.requires import unavailable

SR = SAMPLE_RATE
BLOCK_SECONDS = BLOCK_FRAMES * HOP / SR  # 2.3219954648526078
BLOCK_HOP_SECONDS = 50 * HOP / SR  # 1.1609977324263039


@pytest.fixture(scope="module")
def features() -> AisfxFeatures:
    return AisfxFeatures()


@pytest.fixture(scope="module")
def real_net() -> AisfxNet:
    if checkpoint_path() is None:
        unavailable("aisfx")
    return load_aisfx()


def _package_module(relative: str):
    """Load one file of the installed aisfx package without running aisfx/__init__."""
    path = checkpoint_path()
    if path is None:
        unavailable("aisfx")
    file = path.parent.parent / relative
    name = "_aisfx_" + relative.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tone(freq: float, seconds: float = 2.0, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    return (amp * torch.sin(2 * math.pi * freq * t)).to(torch.float32)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- determinism --------------------------------------------------------------------------


def test_same_input_twice_gives_identical_blocks_and_vectors(features):
    torch.manual_seed(1234)
    net = AisfxNet().eval()  # random weights: runs without the checkpoint
    audio = torch.randn(int(3.0 * SR)) * 0.3
    blocks_a = features.blocks(audio.clone())
    blocks_b = features.blocks(audio.clone())
    assert torch.equal(blocks_a, blocks_b)
    vec_a = embed_blocks(net, blocks_a)
    vec_b = embed_blocks(net, blocks_b)
    assert vec_a.dtype == torch.float32 and vec_a.shape == (len(blocks_a), EMBED_DIM)
    assert torch.equal(vec_a, vec_b)
    assert np.array_equal(file_vector(vec_a), file_vector(vec_b))


def test_file_vector_is_normalised_mean_of_normalised_blocks():
    vecs = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
    out = file_vector(vecs)
    expected = np.array([0.6, 0.8, 1.0]) / 3.0
    expected /= np.linalg.norm(expected)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert np.array_equal(file_vector(np.zeros((0, 4))), np.zeros(4, dtype=np.float32))


# --- block arithmetic ---------------------------------------------------------------------


def _essentia_frame_count(n: int, frame: int = N_FFT, hop: int = HOP) -> int:
    """Literal replay of essentia streaming FrameCutter::process() (framecutter.cpp) with
    startFromZero=false, validFrameThresholdRatio=0, the whole signal already available."""
    start = -((frame + 1) // 2)  # C++: _startIndex = -(_frameSize+1)/2
    stream, count = 0, 0
    while True:
        available = n - stream
        if available == 0:
            return count
        acquire, release = frame, min(hop, frame)
        if start < 0:
            acquire, release = frame + start, 0
        last = False
        if acquire >= available:
            acquire = available
            release = min(available, hop) if start >= 0 else 0
            last = start + frame // 2 >= stream + available  # centre at/after the end
        count += 1
        start += hop
        stream += release
        if last:
            return count


@pytest.mark.parametrize(
    ("n_samples", "frames", "blocks"),
    [
        (int(0.1 * SR), 6, 1),  # very short clip: one zero-padded block
        (99 * HOP, 100, 1),  # exactly 100 frames
        (99 * HOP + 1, 101, 2),  # 100 frames + 1 sample: a second, padded block
        (60 * SR, 2585, 51),  # ceil(2646000 / 1024) + 1 = 2585; 1 + ceil(2485 / 50) = 51
    ],
)
def test_block_counts(features, n_samples, frames, blocks):
    assert n_frames(n_samples) == frames == _essentia_frame_count(n_samples)
    assert n_blocks(frames) == blocks
    audio = torch.from_numpy(np.random.default_rng(0).standard_normal(n_samples) * 0.1)
    out = features.blocks(audio)
    assert out.shape == (blocks, BLOCK_FRAMES, MEL_BINS) and out.dtype == torch.float32


def test_frame_count_matches_essentia_framecutter_replay():
    for n in [1, 2, 1023, 1024, 1025, 2047, 2048, 2049, 3072, 4096, 4097, 10_000, 44_100]:
        assert n_frames(n) == _essentia_frame_count(n), n
    assert n_frames(0) == 0


def test_block_count_matches_package_formula():
    # preprocessing.blocking, drop_partial_block=False, minimum one block.
    for frames in range(0, 400):
        expected = max(1, int(np.ceil((frames - BLOCK_FRAMES) / 50 + 1)))
        assert n_blocks(frames) == expected, frames


def test_last_block_is_zero_padded_not_dropped(features):
    audio = torch.from_numpy(np.random.default_rng(1).standard_normal(99 * HOP + 1) * 0.1)
    spec = features.spectrogram(audio)  # 101 frames
    blocks = features.blocks(audio)
    assert torch.equal(blocks[0], spec[:100])
    assert torch.equal(blocks[1, :51], spec[50:101])
    assert not blocks[1, 49].eq(0).all()  # frame 99; frame 100 holds 1 sample * window[0] = 0
    assert blocks[1, 51:].eq(0).all()


def test_short_and_empty_clips_give_one_block(features):
    for n in (0, 1, 100, 2000):
        assert features.blocks(torch.zeros(n)).shape == (1, BLOCK_FRAMES, MEL_BINS)
    assert features.blocks(torch.zeros(2000)).eq(0).all()  # silence stays exactly zero


def test_blocks_match_package_blocking(features):
    preprocessing = _package_module("preprocessing.py")
    rng = np.random.default_rng(2)
    for frames in (51, 99, 100, 101, 149, 150, 151, 237):
        spec = rng.random((frames, MEL_BINS)).astype(np.float32)
        ref = preprocessing.blocking(spec, block_size=100, hop_size=50, drop_partial_block=False)
        count = n_blocks(frames)
        total = (count - 1) * 50 + 100
        padded = torch.nn.functional.pad(torch.from_numpy(spec), (0, 0, 0, total - frames))
        ours = padded.unfold(0, 100, 50).transpose(1, 2)
        assert ours.shape == ref.shape
        np.testing.assert_array_equal(ours.numpy(), ref.astype(np.float32))


def test_block_times():
    times = AisfxFeatures.block_times(3)
    assert len(times) == 3
    for b, (start, end) in enumerate(times):
        assert start == pytest.approx(b * 50 * 1024 / 44100)
        assert end == pytest.approx(start + 100 * 1024 / 44100)
    assert times[1][0] == pytest.approx(1.1609977324263039)
    assert times[0][1] == pytest.approx(2.3219954648526078)
    clipped = AisfxFeatures.block_times(2, duration=2.5)
    assert clipped[0] == pytest.approx((0.0, BLOCK_SECONDS))
    assert clipped[1] == pytest.approx((BLOCK_HOP_SECONDS, 2.5))
    assert AisfxFeatures.block_times(1, duration=0.1) == [(0.0, 0.1)]
    assert AisfxFeatures.block_times(0) == []


# --- mel filterbank -----------------------------------------------------------------------


def _essentia_melbands_reference() -> np.ndarray:
    """Literal loops of essentia MelBands::calculateFilterFrequencies + TriangularBands::
    createFilters (htkMel warping, weighting 'warping', normalize 'unit_sum')."""
    n_bands, spectrum_size = MEL_BINS, N_FFT // 2 + 1

    def hz2mel10(hz: float) -> float:
        return 2595.0 * math.log10(hz / 700.0 + 1.0)

    def mel102hz(mel: float) -> float:
        return 700.0 * (math.pow(10.0, mel / 2595.0) - 1.0)

    low, high = hz2mel10(0.0), hz2mel10(22050.0)
    increment = (high - low) / (n_bands + 1)
    edges = [mel102hz(low + i * increment) for i in range(n_bands + 2)]
    scale = (SR / 2.0) / (spectrum_size - 1)
    coeffs = np.zeros((n_bands, spectrum_size))
    for i in range(n_bands):
        fstep1 = hz2mel10(edges[i + 1]) - hz2mel10(edges[i])
        fstep2 = hz2mel10(edges[i + 2]) - hz2mel10(edges[i + 1])
        jbegin = math.ceil(edges[i] / scale)
        jend = math.floor(edges[i + 2] / scale)
        for j in range(jbegin, jend + 1):
            binfreq = j * scale
            if binfreq < edges[i + 1]:
                coeffs[i, j] = (hz2mel10(binfreq) - hz2mel10(edges[i])) / fstep1
            else:
                coeffs[i, j] = (hz2mel10(edges[i + 2]) - hz2mel10(binfreq)) / fstep2
        coeffs[i] /= coeffs[i].sum()
    return coeffs.T


def test_mel_filterbank_bands_sum_to_one():
    fb = mel_filterbank()
    assert fb.shape == (N_FFT // 2 + 1, MEL_BINS)
    assert (fb >= 0).all()
    np.testing.assert_allclose(fb.sum(axis=0), 1.0, rtol=0, atol=1e-12)
    assert ((fb > 0).sum(axis=0) >= 1).all()
    np.testing.assert_allclose(fb, _essentia_melbands_reference(), rtol=0, atol=1e-12)


def test_features_module_shapes(features):
    assert features.mel_fb.shape == (N_FFT // 2 + 1, MEL_BINS)
    assert features.window.shape == (N_FFT,)
    assert features.window[0] == 0 and features.window[-1] == 0  # symmetric Hann
    batch = torch.randn(3, 20_000)
    spec = features.spectrogram(batch)
    assert spec.shape == (3, n_frames(20_000), MEL_BINS)
    assert torch.equal(spec[1], features.spectrogram(batch[1]))


# --- features vs the package's preprocessing ----------------------------------------------


def _reference_spectrogram(audio: np.ndarray) -> np.ndarray:
    """numpy float64 re-implementation of aisfx 0.1.2's default preprocessing.

    librosa and essentia are not installed, so this follows the source instead:
    aisfx/spectrogram/spectrogram_librosa.py lines 34-37 (peak normalisation, our choice;
    the essentia path's EasyLoader scales by db2amp(-6 + 6) = 1);
    aisfx/spectrogram/spectrogram_essentia.py lines 96-133: FrameCutter(2048, 1024)
    with essentia defaults (first frame starts at -(2048+1)/2, last frame is the first
    whose centre is at/after the end; framecutter.cpp), Windowing(hann, normalized=False)
    (windowing.cpp Windowing::hann: 0.5 - 0.5 cos(2 pi i / (size - 1)), zero-phase
    rotation applied), Spectrum (|rfft|), MelBands(power, htkMel, warping, unit_sum)
    (melbands.cpp, triangularbands.cpp), UnaryOperator identity scale 1e4 shift 1, log10;
    aisfx/preprocessing.py lines 44 and 55 (divide by 9.457798957824707).
    """
    x = np.asarray(audio, dtype=np.float64)
    peak = np.max(np.abs(x))
    x = x / (peak if peak != 0 else 1.0)
    size = N_FFT
    window = np.array([0.5 - 0.5 * math.cos(2.0 * math.pi * i / (size - 1.0)) for i in range(size)])
    coeffs = _essentia_melbands_reference()
    frames = []
    start = -((size + 1) // 2)
    while True:
        frame = np.zeros(size)
        lo, hi = max(start, 0), min(start + size, len(x))
        if hi > lo:
            frame[lo - start : hi - start] = x[lo:hi]
        windowed = frame * window
        rotated = np.concatenate([windowed[size // 2 :], windowed[: size // 2]])  # zeroPhase
        spectrum = np.abs(np.fft.rfft(rotated))
        bands = (spectrum**2) @ coeffs
        frames.append(np.log10(bands * 1e4 + 1.0) / NORM)
        if start + size // 2 >= len(x):  # this frame's centre is at/after the end: last
            break
        start += HOP
    return np.array(frames)


def test_features_match_reference_spectrogram(features):
    rng = np.random.default_rng(3)
    n = int(1.5 * SR) + 123  # not a multiple of the hop
    t = np.arange(n) / SR
    audio = 0.3 * np.sin(2 * np.pi * (200 + 3000 * t) * t)  # chirp
    audio += 0.05 * rng.standard_normal(n)
    audio[int(0.6 * SR) : int(0.9 * SR)] = 0.0  # a silent gap
    audio = (0.7 * audio).astype(np.float32)
    ref = _reference_spectrogram(audio)
    ours = features.spectrogram(torch.from_numpy(audio)).numpy()
    assert ours.shape == ref.shape == (n_frames(n), MEL_BINS)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-7)
    assert ref.max() > 0.3  # a real signal, not a trivially small one


# --- loading --------------------------------------------------------------------------------

_EXECUTED: list[str] = []


def _record_execution(marker: str) -> None:
    """Would run if a checkpoint's pickle were unpickled without restrictions."""
    _EXECUTED.append(marker)
    Path(marker).write_text("executed")


class _CallsRecorder:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_record_execution, (self.marker,))


class _CallsOsSystem:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class _PlainCustomObject:
    pass


@pytest.mark.parametrize("payload", ["recorder", "os.system", "custom-class"])
def test_load_refuses_pickled_code(tmp_path, payload):
    marker = tmp_path / "executed"
    state = {f"embedding_net.{k}": v for k, v in AisfxNet().state_dict().items()}
    evil = {
        "recorder": _CallsRecorder(str(marker)),
        "os.system": _CallsOsSystem(str(marker)),
        "custom-class": _PlainCustomObject(),
    }[payload]
    path = tmp_path / "checkpoint.pth"
    torch.save((state, {"ds": evil}), path)
    _EXECUTED.clear()
    with pytest.raises(ModelUnavailable):
        load_aisfx(path)
    assert not marker.exists()
    assert _EXECUTED == []


def test_load_reports_missing_and_broken_files(tmp_path):
    with pytest.raises(ModelUnavailable, match="aisfx==0.1.2"):
        load_aisfx(tmp_path / "nope.pth")
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelUnavailable):
        load_aisfx(broken)
    wrong = tmp_path / "wrong.pth"
    torch.save({"embedding_net.conv_block1.conv1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ModelUnavailable):
        load_aisfx(wrong)


def test_clean_checkpoint_with_our_layout_loads(tmp_path):
    torch.manual_seed(0)
    net = AisfxNet()
    path = tmp_path / "ok.pth"
    torch.save(({f"embedding_net.{k}": v for k, v in net.state_dict().items()}, {}), path)
    loaded = load_aisfx(path)
    assert not loaded.training
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


# --- against the package's network (needs the checkpoint) ---------------------------------


def test_network_matches_package_embedding_net(real_net):
    """Tolerance: max |ours - package| < 1e-5 on the same input (identical ops expected)."""
    cnn2d = _package_module("models/cnn2d.py")
    theirs = cnn2d.EmbeddingNet("max", 3, 1, 64)
    theirs.load_state_dict(real_net.state_dict(), strict=True)
    theirs.eval()
    torch.manual_seed(0)
    x = torch.rand(2, 100, 96)
    with torch.inference_mode():
        ours, ref = real_net(x), theirs(x)
    assert ours.shape == ref.shape == (2, EMBED_DIM)
    assert (ours - ref).abs().max().item() < 1e-5


def test_real_weights_tone_is_closer_to_tone_than_to_noise(features, real_net):
    def vector(audio: torch.Tensor) -> np.ndarray:
        return file_vector(embed_blocks(real_net, features.blocks(audio)))

    noise = torch.from_numpy(np.random.default_rng(4).uniform(-0.5, 0.5, 2 * SR)).float()
    tone_1k, tone_11k, white = vector(_tone(1000.0)), vector(_tone(1100.0)), vector(noise)
    assert _cosine(tone_1k, tone_11k) > _cosine(tone_1k, white)


def test_bfloat16_vectors_stay_within_tolerance_of_float32():
    """The fast paths must not move vectors: cosine >= 0.9999 to the float32 net.

    Covers bf16 autocast and the inference copy the pipeline uses (BatchNorm folded into
    the convolutions; bf16 channels-last weights), which must also leave its source net
    untouched.
    """
    from engine.models.aisfx.features import embed_blocks
    from engine.models.aisfx.model import checkpoint_path, inference_net, load_aisfx

    if checkpoint_path() is None:
        unavailable("aisfx")
    net = load_aisfx()
    blocks = torch.rand(6, 100, 96, generator=torch.Generator().manual_seed(3))
    full = embed_blocks(net, blocks, batch_size=4)
    autocast = embed_blocks(net, blocks, batch_size=4, bfloat16=True)
    folded = inference_net(net, bfloat16=False)
    fast = inference_net(net, bfloat16=True)
    assert next(fast.parameters()).dtype == torch.bfloat16
    assert next(net.parameters()).dtype == torch.float32
    assert all(
        isinstance(m, torch.nn.BatchNorm2d) for m in (net.conv_block1.bn1, net.conv_block4.bn2)
    )
    cos = torch.nn.functional.cosine_similarity
    assert cos(full, autocast).min().item() >= 0.9999
    assert cos(full, embed_blocks(folded, blocks, batch_size=4)).min().item() >= 0.99999
    fast_vectors = embed_blocks(fast, blocks, batch_size=4)
    assert fast_vectors.dtype == torch.float32
    assert cos(full, fast_vectors).min().item() >= 0.9999
    # The fold keeps every convolution's output, not only the pooled vector.
    probe = torch.rand(2, 1, 100, 96, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        ref = net.conv_block1(probe)
        got = folded.conv_block1(probe)
    assert (ref - got).abs().max().item() < 1e-4


def test_cpu_lanes_share_the_blocks_and_give_the_same_vectors(real_net, monkeypatch):
    """On a multi-core CPU a batch's blocks are split evenly between two lanes that run
    the net side by side, one torch thread each; vectors match one lane's within the
    inference net's own tolerance (different thread counts sum in a different order)."""
    import threading

    from engine.models.aisfx.space import AisfxSpace

    rng = np.random.default_rng(7)
    clips = [(0.1 * rng.standard_normal(int(s * 44100))).astype(np.float32) for s in (21, 4, 13)]
    space = AisfxSpace(device="cpu")
    monkeypatch.setattr("engine.models.cpu_lanes.lane_count", lambda device: 1)
    one_lane = space.embed(clips)
    assert space._lanes is None

    previous = torch.get_num_threads()
    calls = []
    real_embed_blocks = embed_blocks

    def recording(net, blocks, batch_size=64, bfloat16=False):
        calls.append((threading.current_thread().name, torch.get_num_threads(), len(blocks)))
        return real_embed_blocks(net, blocks, batch_size, bfloat16)

    try:
        torch.set_num_threads(2)
        monkeypatch.setattr("engine.models.cpu_lanes.lane_count", lambda device: 2)
        monkeypatch.setattr("engine.models.aisfx.features.embed_blocks", recording)
        two_lanes = space.embed(clips)
    finally:
        torch.set_num_threads(previous)
        if space._lanes is not None:
            space._lanes.close()
    blocks = sum(len(e.windows) for e in one_lane)
    assert blocks > space.batch_size
    assert sorted(n for _, _, n in calls) == [blocks // 2, blocks - blocks // 2]
    assert len({name for name, _, _ in calls}) == 2
    assert all(name.startswith("sonarium-lane") and threads == 1 for name, threads, _ in calls)
    for a, b in zip(one_lane, two_lanes, strict=True):
        assert [w[:2] for w in a.windows] == [w[:2] for w in b.windows]
        assert float(a.vector @ b.vector) > 0.9999
