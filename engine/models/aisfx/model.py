"""The aisfx embedding network (Ma & Lerch, ISMIR 2022), defined here and loaded safely.

aisfx 0.1.2 ships its weights as ``aisfx/models/checkpoint.pth``: a pickle of
``(state_dict, ds_dict)`` where ``state_dict`` holds the whole ``CrossNet`` (embedding
network plus per-dataset classifier heads) and ``ds_dict`` maps dataset names to
``(numpy.int64 index, n_classes)``. We only need the embedding network, which
:class:`AisfxNet` re-declares with the same parameter names as
``aisfx.models.cnn2d.EmbeddingNet('max', 3, 1, 64)``.

The package itself is never imported: its ``__init__`` imports librosa/essentia, which
are not installed. The checkpoint is found with :func:`importlib.util.find_spec` and
read with ``torch.load(weights_only=True)`` and an explicit allowlist of the three numpy
globals that ``ds_dict`` needs, so a tampered file cannot run code while loading.

Threads: every function here may be called from any thread; the module holds no state.
An :class:`AisfxNet` instance is an ordinary ``torch.nn.Module``: use one instance from
one thread at a time (the embedding thread).
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

# Shared with the other loaders; re-exported here for callers that import it from this module.
from engine.errors import ModelUnavailable

# Preprocessing constants of aisfx 0.1.2 (aisfx/inference.py lines 7-18 and
# aisfx/preprocessing.py ``spectrogram_normalize``'s 'original' maximum).
SAMPLE_RATE = 44100
N_FFT = 2048
HOP = 1024
MEL_BINS = 96
F_MIN = 0.0
F_MAX = 22050.0
BLOCK_FRAMES = 100
BLOCK_HOP = 50
NORM = 9.457798957824707
EMBED_DIM = 512

# Stored with every vector: bump it whenever AisfxFeatures changes its output.
PREPROCESSING_VERSION = "essentia-htk96-unitsum-logshift-peaknorm-b100h50:v1"

INSTALL_HINT = "run setup.sh again, which installs it (pip install --no-deps aisfx==0.1.2)"

_PREFIX = "embedding_net."


class _ConvBlock(nn.Module):
    """Two 3x3 convolutions (padding 1, no bias), each followed by BatchNorm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = functional.relu(self.bn1(self.conv1(x)))
        return functional.relu(self.bn2(self.conv2(x)))


class AisfxNet(nn.Module):
    """The aisfx embedding CNN: (batch, 100 frames, 96 mel bins) -> (batch, 512).

    Four conv blocks (1->64->128->256->512 channels); 2x2 max pooling after the first
    three, none after the fourth; then mean over frequency and max over time. Its
    ``state_dict`` keys equal the checkpoint's ``embedding_net.*`` keys without the
    prefix. Use an instance from one thread at a time.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv_block1 = _ConvBlock(1, 64)
        self.conv_block2 = _ConvBlock(64, 128)
        self.conv_block3 = _ConvBlock(128, 256)
        self.conv_block4 = _ConvBlock(256, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed spectrogram blocks: ``x`` is (batch, time, mel); returns (batch, 512)."""
        x = x.unsqueeze(1)  # (batch, 1, time, mel)
        x = functional.max_pool2d(self.conv_block1(x), kernel_size=2)
        x = functional.max_pool2d(self.conv_block2(x), kernel_size=2)
        x = functional.max_pool2d(self.conv_block3(x), kernel_size=2)
        x = self.conv_block4(x)  # the package pools with (1, 1) here: a no-op
        x = x.mean(dim=3)  # over frequency -> (batch, 512, time)
        return x.max(dim=2).values  # over time -> (batch, 512)


def inference_net(net: AisfxNet, bfloat16: bool) -> AisfxNet:
    """A copy of ``net`` prepared for fast inference; ``net`` itself is left untouched.

    Each BatchNorm is folded into the convolution before it (torch's own
    ``fuse_conv_bn_eval``: same function, one op fewer per layer, cosine 0.9999998 to the
    unfused net). With ``bfloat16`` the weights are stored as bfloat16 and the tensors
    use the channels-last layout: oneDNN then runs the convolutions on AMX/AVX-512-BF16
    without converting weights on every call (autocast does): faster than autocast and
    than float32, with vectors within cosine 0.99998 of float32 (docs/measurements.md).
    Feed it with
    :func:`engine.models.aisfx.features.embed_blocks`, which casts the input to the net's
    dtype. Any thread; use the copy from one thread.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fast = copy.deepcopy(net).eval()
    for block in (fast.conv_block1, fast.conv_block2, fast.conv_block3, fast.conv_block4):
        block.conv1 = fuse_conv_bn_eval(block.conv1, block.bn1)
        block.conv2 = fuse_conv_bn_eval(block.conv2, block.bn2)
        block.bn1, block.bn2 = nn.Identity(), nn.Identity()  # type: ignore[assignment]
    if bfloat16:
        # Module.to takes memory_format at run time; torch's overloads omit it.
        fast = fast.to(dtype=torch.bfloat16, memory_format=torch.channels_last)  # type: ignore[call-overload]
    return fast


def checkpoint_path() -> Path | None:
    """Where aisfx's ``models/checkpoint.pth`` is, or None when aisfx is not installed.

    Finds the package without importing it. Any thread; the module holds no state.
    """
    try:
        spec = importlib.util.find_spec("aisfx")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    for root in roots:
        path = Path(root) / "models" / "checkpoint.pth"
        if path.is_file():
            return path
    return None


def _numpy_scalar_reconstructor() -> object:
    """numpy's ``multiarray.scalar``, which numpy 2 moved from numpy.core to numpy._core."""
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2 (and 1.26's forward stub)
    except ImportError:  # pragma: no cover - older numpy
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    return scalar


def _allowed_globals() -> list:
    """The only non-torch globals the checkpoint may name (for ``ds_dict``'s np.int64s).

    The pickle says ``numpy.core.multiarray.scalar`` (written with numpy 1.x), so the
    function is registered under that name whatever module it lives in now.
    """
    return [
        (_numpy_scalar_reconstructor(), "numpy.core.multiarray.scalar"),
        np.dtype,
        np.dtypes.Int64DType,
    ]


def _reason(exc: Exception) -> str:
    """One line about why loading failed (torch's own advice to disable weights_only left out)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines and lines[0].startswith("Weights only load failed") and len(lines) > 1:
        useful = [line for line in lines[1:] if "GLOBAL" in line or "Unpickler" in line]
        lines = useful or lines[1:]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _read_checkpoint(path: str | Path | None, device: str | torch.device) -> tuple[Path, object]:
    """(path, what the checkpoint holds), read with the safe unpickler only; raises
    ModelUnavailable when the file is missing, unreadable or refused. Any thread."""
    if path is None:
        path = checkpoint_path()
        if path is None:
            raise ModelUnavailable(f"the aisfx package is not installed: {INSTALL_HINT}")
    path = Path(path)
    if not path.is_file():
        raise ModelUnavailable(f"aisfx checkpoint not found at {path}: {INSTALL_HINT}")
    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            loaded = torch.load(path, map_location=torch.device(device), weights_only=True)
    except Exception as exc:  # any failure here means "no usable model"
        raise ModelUnavailable(
            f"could not load the aisfx checkpoint {path} safely ({_reason(exc)}); reinstall "
            "it (pip install --force-reinstall --no-deps aisfx==0.1.2)"
        ) from exc
    return path, loaded


def load_aisfx(path: str | Path | None = None, device: str | torch.device = "cpu") -> AisfxNet:
    """Load the aisfx embedding network in eval mode on ``device``.

    ``path`` defaults to the installed package's checkpoint. Loading never unpickles
    arbitrary objects (``weights_only=True`` plus :func:`_allowed_globals`). Raises
    :class:`ModelUnavailable` when the file is missing, unreadable, refused by the safe
    unpickler or does not hold the expected weights. Any thread; no module state.
    """
    path, loaded = _read_checkpoint(path, device)
    weights = loaded[0] if isinstance(loaded, tuple | list) and loaded else loaded
    if not isinstance(weights, Mapping):
        raise ModelUnavailable(
            f"{path} does not hold aisfx weights (got {type(weights).__name__}): {INSTALL_HINT}"
        )
    state = {
        key[len(_PREFIX) :]: value
        for key, value in weights.items()
        if isinstance(key, str) and key.startswith(_PREFIX)
    }
    net = AisfxNet()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelUnavailable(
            f"{path} does not match the aisfx embedding network ({exc}): {INSTALL_HINT}"
        ) from exc
    return net.to(device).eval()


# The checkpoint's classifier heads for sound-effects libraries labelled with UCS
# categories (Pro Sound Effects, Soundly, a UCS mix; aisfx's README), in ds_dict's names.
UCS_HEADS = ("prosfx", "soundlyTrain", "ucsMixed")


def load_ucs_heads(
    path: str | Path | None = None,
) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """The UCS-labelled classifier heads of the checkpoint: name -> [(weight (out, in),
    bias (out,))] for its three linear layers (ReLU between them), float32 NumPy arrays.

    The checkpoint names its classes by index only; engine/adapt/classes.py learns which
    UCS category each index is. Read with the safe unpickler; raises ModelUnavailable
    when a head is missing or malformed. Any thread; no module state.
    """
    path, loaded = _read_checkpoint(path, "cpu")
    ok = isinstance(loaded, tuple | list) and len(loaded) == 2
    weights, datasets = (loaded[0], loaded[1]) if ok else (None, None)  # type: ignore[index]
    if not isinstance(weights, Mapping) or not isinstance(datasets, Mapping):
        raise ModelUnavailable(f"{path} does not hold aisfx's classifier heads: {INSTALL_HINT}")
    heads: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for name in UCS_HEADS:
        try:
            index, classes = int(datasets[name][0]), int(datasets[name][1])
            layers = [
                (
                    weights[f"fc.{index}.{layer}.weight"].float().numpy().copy(),
                    weights[f"fc.{index}.{layer}.bias"].float().numpy().copy(),
                )
                for layer in (0, 2, 4)
            ]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise ModelUnavailable(f"{path}: no usable '{name}' head ({exc!r})") from exc
        dims = [w.shape for w, _ in layers]
        if dims[0][1] != EMBED_DIM or dims[2][0] != classes or dims[1][1] != dims[0][0]:
            raise ModelUnavailable(f"{path}: the '{name}' head has unexpected shapes {dims}")
        heads[name] = layers
    return heads
