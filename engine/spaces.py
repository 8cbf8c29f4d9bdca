"""Embedding spaces: models that turn audio into vectors for find-similar and search.

Each space has a name, an identity (model, revision, preprocessing version) stored with
its vectors, a sample rate, and `embed` for a batch of mono clips. Spaces whose model is
missing are simply not available; the others keep working. `embed` may be called from
the embedding thread only (models are not shared between threads).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

log = logging.getLogger(__name__)

Window = tuple[float, float, np.ndarray]


@dataclass
class Embedding:
    """One clip's vectors: the file vector and its windows (start s, end s, vector)."""

    vector: np.ndarray
    windows: list[Window]


class EmbeddingSpace(Protocol):
    name: str
    sample_rate: int
    dim: int
    has_text: bool
    # Standardise each dimension over the library before cosine (statistics-based spaces).
    standardize: bool

    def identity(self) -> str: ...

    def embed(self, clips: list[np.ndarray]) -> list[Embedding]: ...


def pick_device(requested: str = "auto") -> str:
    """'cuda' when available (or asked for), else 'mps', else 'cpu'."""
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class AisfxSpace:
    """aisfx (Ma & Lerch, ISMIR 2022): a CNN trained on professional SFX libraries.

    Audio only. ~2.3 s blocks with 50% overlap are the file's windows (its moments).
    The file vector is the element-wise max of the normalised block vectors, compared
    after standardising each dimension over the library: on the shared corpus's
    query-by-example eval this measured mAP@10 0.3095, against 0.2966 for the plain
    normalised mean (bench notes in README).
    """

    name = "aisfx"
    has_text = False
    standardize = True
    pooling = "max"

    # Small batches: on CPU, per-block cost rises with batch size (cache), measured
    # 12 ms/block at 2-4 against 17 ms at 32 with bf16 on a 2-core Sapphire Rapids.
    def __init__(self, device: str = "auto", batch_size: int = 4) -> None:
        from engine import aisfx_model

        self.sample_rate = aisfx_model.SAMPLE_RATE
        self.dim = aisfx_model.EMBED_DIM
        self.device = pick_device(device)
        self.batch_size = batch_size
        self._path = aisfx_model.checkpoint_path()
        if self._path is None:
            raise aisfx_model.ModelUnavailable(
                "the aisfx model is not installed: run "
                "'.venv/bin/pip install --no-deps aisfx==0.1.2' (bash setup.sh does this)"
            )
        self._net = None
        self._features = None
        self._bf16 = False

    def identity(self) -> str:
        from engine import aisfx_model

        digest = hashlib.blake2b(self._path.read_bytes(), digest_size=8).hexdigest()
        return f"aisfx-0.1.2:{digest}:{aisfx_model.PREPROCESSING_VERSION}:pool-{self.pooling}"

    def _load(self) -> None:
        if self._net is None:
            from engine.aisfx_features import AisfxFeatures, fast_precision_available
            from engine.aisfx_model import load_aisfx

            self._net = load_aisfx(self._path, device=self.device)
            # float32 features: 4x faster than float64, within 1.2e-7 of it.
            self._features = AisfxFeatures(dtype=torch.float32)
            self._bf16 = fast_precision_available(self.device)

    def embed(self, clips: list[np.ndarray]) -> list[Embedding]:
        from engine.aisfx_features import embed_blocks, max_pooled_vector

        self._load()
        assert self._features is not None
        all_blocks, counts = [], []
        for clip in clips:
            blocks = self._features.blocks(torch.from_numpy(np.ascontiguousarray(clip)))
            all_blocks.append(blocks)
            counts.append(len(blocks))
        vectors = embed_blocks(
            self._net, torch.cat(all_blocks), batch_size=self.batch_size, bfloat16=self._bf16
        )
        vectors = vectors.cpu().numpy() if isinstance(vectors, torch.Tensor) else vectors
        out, pos = [], 0
        for clip, n in zip(clips, counts, strict=True):
            block_vecs = vectors[pos : pos + n]
            pos += n
            times = self._features.block_times(n, duration=len(clip) / self.sample_rate)
            windows = [(s, e, v) for (s, e), v in zip(times, block_vecs, strict=True)]
            out.append(Embedding(max_pooled_vector(block_vecs), windows))
        return out


class MfccSpace:
    """Baseline: mean and standard deviation of 20 MFCCs per file (no windows)."""

    name = "mfcc"
    has_text = False
    standardize = True
    sample_rate = 22050
    dim = 40

    def __init__(self) -> None:
        import torchaudio

        self._mfcc = torchaudio.transforms.MFCC(
            sample_rate=self.sample_rate,
            n_mfcc=20,
            melkwargs={"n_fft": 1024, "hop_length": 512, "n_mels": 64, "center": True},
        )

    def identity(self) -> str:
        return "mfcc20-meanstd:v1"

    def embed(self, clips: list[np.ndarray]) -> list[Embedding]:
        out = []
        with torch.inference_mode():
            for clip in clips:
                x = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32))
                if len(x) < 1024:
                    x = torch.nn.functional.pad(x, (0, 1024 - len(x)))
                m = self._mfcc(x)  # (20, frames)
                vec = torch.cat([m.mean(dim=1), m.std(dim=1, unbiased=False)]).numpy()
                out.append(Embedding(vec.astype(np.float32), []))
        return out


SPACE_NAMES = ("aisfx", "mfcc")
# Spaces whose file vectors are standardised per dimension over the library before
# cosine (known without building the space, so indexes can be built without a model).
STANDARDIZED = {"aisfx", "mfcc"}
DEFAULT_SIMILAR_SPACE = "aisfx"


def make_space(name: str, device: str = "auto") -> EmbeddingSpace:
    """Build a space by name; raises ModelUnavailable (or ValueError) when it can't be."""
    if name == "aisfx":
        return AisfxSpace(device=device)
    if name == "mfcc":
        return MfccSpace()
    raise ValueError(f"unknown embedding space '{name}' (known: {', '.join(SPACE_NAMES)})")


_SHARED: dict[tuple[str, str], EmbeddingSpace] = {}
_SHARED_LOCK = threading.Lock()


def shared_space(name: str, device: str = "auto") -> EmbeddingSpace:
    """A process-wide instance of a space, built on first use and kept until exit.

    Models are large to load, and destroying torch modules from a Qt worker thread
    crashed PySide6 6.12 apps here (segfault in the module's deallocation), so spaces
    used for queries live as long as the process. Each space's embed() must still be
    called from one thread at a time (the query thread).
    """
    key = (name, device)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = make_space(name, device)
        return _SHARED[key]


def available_spaces(names: tuple[str, ...] = SPACE_NAMES, device: str = "auto") -> list:
    """The spaces that can be built here; a missing model is logged, not raised."""
    spaces = []
    for name in names:
        try:
            spaces.append(make_space(name, device))
        except Exception as exc:
            log.warning("embedding space %s unavailable: %s", name, exc)
    return spaces
