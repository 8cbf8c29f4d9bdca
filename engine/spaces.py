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
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np
import torch

from engine import model_thread
from engine.cpu_lanes import CpuLanes, lane_count, split_even
from engine.model_thread import OnModelThread
from engine.models import inference_dtype

if TYPE_CHECKING:
    from engine.clap_features import ClapFeatures
    from engine.clap_model import LoadedClap

log = logging.getLogger(__name__)

Window = tuple[float, float, np.ndarray]
T = TypeVar("T")
R = TypeVar("R")


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


class PreparingSpace(EmbeddingSpace, Protocol):
    """A space that splits ``embed`` in two: ``prepare`` (one clip's windows or features;
    any thread, thread-safe) and ``embed_prepared`` (the model, on batches of prepared
    clips; the embedding thread). The pipeline runs ``prepare`` on its decode workers
    when the space's model has its own device (engine/embedder.py), so the two overlap.
    ``embed(clips)`` equals ``embed_prepared([prepare(c) for c in clips])``."""

    def prepare(self, clip: np.ndarray) -> object: ...

    def embed_prepared(self, items: list) -> list[Embedding]: ...


def pick_device(requested: str = "auto") -> str:
    """'cuda' when available (or asked for), else 'mps', else 'cpu'."""
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class _InLanes:
    """For spaces whose model runs its batches in CPU lanes (engine/cpu_lanes.py)."""

    device: str
    _lanes: CpuLanes | None = None
    _lanes_lock = threading.Lock()

    batch_size: int

    def _model_lanes(self) -> CpuLanes | None:
        """The lanes, made on first use; None on a GPU or a 1-core CPU. Any thread."""
        with self._lanes_lock:
            if self._lanes is None and lane_count(self.device) > 1:
                self._lanes = CpuLanes(lane_count(self.device))
            return self._lanes

    def _in_lanes(self, fn: Callable[[Sequence[T]], R], items: Sequence[T]) -> list[R]:
        """``fn`` over an even share of ``items`` per lane, side by side; over all of them
        on this thread when there are no lanes or at most one batch. Results in order."""
        lanes = self._model_lanes()
        if lanes is None or len(items) <= self.batch_size:
            return [fn(items)]
        return lanes.map(fn, split_even(items, lanes.lanes))


class AisfxSpace(_InLanes):
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

    # Batches of 16 blocks on CPU: with the bf16 channels-last net, oneDNN measured
    # 4.43x the naive loop at 16, 3.89x at 4, 3.57x at 1 and 3.03x at 32 (embed_bench,
    # 2-core Sapphire Rapids); its kernel choice, not cache size, makes 32 slower.
    def __init__(self, device: str = "auto", batch_size: int | None = None) -> None:
        from engine import aisfx_model

        self.sample_rate = aisfx_model.SAMPLE_RATE
        self.dim = aisfx_model.EMBED_DIM
        self.device = pick_device(device)
        self.batch_size = batch_size or (64 if self.device.startswith("cuda") else 16)
        self._path = aisfx_model.checkpoint_path()
        if self._path is None:
            raise aisfx_model.ModelUnavailable(
                "the aisfx model is not installed: run "
                "'.venv/bin/pip install --no-deps aisfx==0.1.2' (bash setup.sh does this)"
            )
        self._net = None
        self._features = None
        self._features_lock = threading.Lock()

    def identity(self) -> str:
        from engine import aisfx_model

        digest = hashlib.blake2b(self._path.read_bytes(), digest_size=8).hexdigest()
        return f"aisfx-0.1.2:{digest}:{aisfx_model.PREPROCESSING_VERSION}:pool-{self.pooling}"

    def _load(self) -> None:
        if self._net is None:
            from engine.aisfx_model import inference_net, load_aisfx

            bf16 = inference_dtype(self.device, torch.bfloat16) == torch.bfloat16
            self._net = inference_net(load_aisfx(self._path, device=self.device), bf16)

    def _feature_maker(self):
        with self._features_lock:
            if self._features is None:
                from engine.aisfx_features import AisfxFeatures

                # float32 features: 4x faster than float64, within 1.2e-7 of it.
                self._features = AisfxFeatures(dtype=torch.float32)
            return self._features

    def prepare(self, clip: np.ndarray) -> tuple[torch.Tensor, float]:
        """(spectrogram blocks (n, 100, 96), seconds) of a clip when the model runs on a
        GPU, so the decode workers make them while it computes; on CPU (audio, seconds),
        and the blocks are made on the embedding thread: there the model needs both
        cores, and features on the workers measured slower (they preempt it). Any thread.
        """
        audio = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32))
        seconds = len(clip) / self.sample_rate
        if self.device == "cpu":
            return audio, seconds
        return self._feature_maker().blocks(audio), seconds

    def embed_prepared(self, items: list[tuple[torch.Tensor, float]]) -> list[Embedding]:
        """Vectors for prepared clips, blocks batched across clips. Embedding thread."""
        from engine.aisfx_features import AisfxFeatures, embed_blocks, max_pooled_vector

        if not items:
            return []
        self._load()
        blocks = [x if x.ndim == 3 else self._feature_maker().blocks(x) for x, _ in items]
        every = torch.cat(blocks)
        # The net is stateless in inference, so the lanes can share it. Measured: 1.22x
        # the pipeline with one forward on all threads (embed_bench files, 6 alternating
        # pairs, median).
        vectors = torch.cat(self._in_lanes(
            lambda run: embed_blocks(self._net, every[run.start : run.stop], self.batch_size),
            range(len(every)),
        ))  # fmt: skip
        vectors = vectors.cpu().numpy() if isinstance(vectors, torch.Tensor) else vectors
        out, pos = [], 0
        for file_blocks, (_, seconds) in zip(blocks, items, strict=True):
            n = len(file_blocks)
            block_vecs = vectors[pos : pos + n]
            pos += n
            times = AisfxFeatures.block_times(n, duration=seconds)
            windows = [(s, e, v) for (s, e), v in zip(times, block_vecs, strict=True)]
            out.append(Embedding(max_pooled_vector(block_vecs), windows))
        return out

    def embed(self, clips: list[np.ndarray]) -> list[Embedding]:
        return self.embed_prepared([self.prepare(clip) for clip in clips])


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


class ClapSpace(_InLanes):
    """CLAP (LAION, via transformers): audio and text in one space, for text search.

    Audio is cut into 10 s windows, the last zero-padded (engine/clap_features.py); the
    windows are the file's moments and the file vector is the normalised mean of the
    normalised window vectors, each weighted by its seconds of real audio. Compared by
    plain cosine: no standardisation, since text vectors share the space.

    Constructing checks the model is on this machine (a folder, or a Hub id in the HF
    cache) and raises ModelUnavailable at once when it isn't; it never downloads (use
    engine.clap_model.load_clap or download for that). The weights load on first use.
    ``embed`` is for the embedding thread and ``embed_text`` for the query thread; a lock
    makes an instance serve them one call at a time.
    """

    name = "clap"
    has_text = True
    standardize = False
    text_cache_size = 1024

    def __init__(
        self,
        model: str | None = None,
        device: str = "auto",
        batch_size: int | None = None,
        *,
        cache_dir: str | None = None,
    ) -> None:
        from engine import clap_model
        from engine.clap_features import MelSettings
        from engine.models import ModelUnavailable

        self.model = model or clap_model.configured_model()
        self._resolved = clap_model.resolve_local(self.model, cache_dir)  # fast, no network
        folder = str(self._resolved.folder)
        try:
            from transformers import ClapConfig, ClapFeatureExtractor

            config = ClapConfig.from_pretrained(folder, local_files_only=True)
            extractor = ClapFeatureExtractor.from_pretrained(folder, local_files_only=True)
        except Exception as exc:
            raise ModelUnavailable(
                f"the CLAP model in {folder} has unreadable configs ({type(exc).__name__}: "
                f"{exc}); download it again ({clap_model.DEFAULT_MODEL} or your folder)"
            ) from exc
        self.settings = MelSettings.from_extractor(extractor)
        self.sample_rate = self.settings.sample_rate
        self.dim = int(config.projection_dim)
        self.device = pick_device(device)
        # Small batches on CPU bound memory (a window's float64 STFT alone is ~8 MB); the
        # real model's best CPU batch size is unmeasured (no weights here).
        self.batch_size = batch_size or (32 if self.device.startswith("cuda") else 4)
        self._loaded: LoadedClap | None = None
        self._features: ClapFeatures | None = None
        self._features_lock = threading.Lock()
        self._lock = threading.Lock()
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def identity(self) -> str:
        return self._resolved.identity

    def _load(self) -> LoadedClap:
        if self._loaded is None:
            from engine.clap_model import load_resolved

            self._loaded = load_resolved(self._resolved, self.device)
        return self._loaded

    def _feature_maker(self) -> ClapFeatures:
        with self._features_lock:
            if self._features is None:
                from engine.clap_features import ClapFeatures

                # On a GPU the log-mel runs there. Complex STFT support on MPS is
                # incomplete: CPU there.
                where = self.device if self.device.startswith("cuda") else "cpu"
                self._features = ClapFeatures(self.settings, where)
            return self._features

    def prepare(self, clip: np.ndarray) -> tuple[list[torch.Tensor], list[tuple[float, float]]]:
        """One clip's windows for :meth:`embed_prepared`: views of the clip (the last one
        unpadded) and their (start, end) seconds. Any thread.

        The log-mels are made where the model runs (its lanes on CPU, else its device):
        on CPU the model needs both cores, and log-mels made on the decode workers
        measured slower (0.79x the bare model against 0.85x), since they preempt it.
        """
        from engine.clap_features import HOP_SECONDS, window_times

        rate, size = self.sample_rate, self.settings.window_samples
        hop = int(round(HOP_SECONDS * rate))
        audio = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32))
        times = window_times(len(audio), rate, self.settings.window_seconds, HOP_SECONDS)
        return [audio[w * hop : w * hop + size] for w in range(len(times))], times

    def embed_prepared(self, items: list[tuple[list[torch.Tensor], list]]) -> list[Embedding]:
        """Vectors for prepared clips, windows batched across clips. Embedding thread."""
        from engine.clap_features import pooled_vector

        with self._lock:
            loaded = self._load()
            features = self._feature_maker()
            refs = [(c, w) for c, (_, times) in enumerate(items) for w in range(len(times))]
            vectors = [np.zeros((len(t), self.dim), dtype=np.float32) for _, t in items]

            def run(part: Sequence[tuple[int, int]]) -> None:
                for start in range(0, len(part), self.batch_size):
                    chunk = part[start : start + self.batch_size]
                    with torch.inference_mode():
                        mels = features([items[c][0][w] for c, w in chunk])
                    for (c, w), vec in zip(chunk, self._audio_vectors(mels, loaded), strict=True):
                        vectors[c][w] = vec

            # Each lane takes an even share of the windows, in batches of batch_size.
            # Concurrent forwards are safe: the audio layers only ever rewrite their
            # window size from the input size, which is the same for every window.
            self._in_lanes(run, refs)
        out = []
        for (_, spans), vecs in zip(items, vectors, strict=True):
            weights = np.array([end - start for start, end in spans])
            windows_out = [(s, e, v) for (s, e), v in zip(spans, vecs, strict=True)]
            out.append(Embedding(pooled_vector(vecs, weights), windows_out))
        return out

    def _audio_vectors(self, mels: torch.Tensor, loaded: LoadedClap) -> np.ndarray:
        features = mels.to(loaded.device, loaded.dtype)
        # Every window is exactly one model input long, so none is "longer" (fusion models
        # then use the global mel only, as CLAP does for audio up to 10 s).
        is_longer = torch.zeros((len(mels), 1), dtype=torch.bool, device=loaded.device)
        with torch.inference_mode():
            out = loaded.model.get_audio_features(input_features=features, is_longer=is_longer)
        vectors = out if isinstance(out, torch.Tensor) else out.pooler_output
        return torch.nn.functional.normalize(vectors.float(), dim=-1).cpu().numpy()

    def embed(self, clips: list[np.ndarray]) -> list[Embedding]:
        """Embed mono clips at ``sample_rate``, windows batched across clips (see
        :func:`engine.clap_features.windows` for the geometry). Embedding thread."""
        return self.embed_prepared([self.prepare(clip) for clip in clips])

    def _text_vectors(self, texts: list[str]) -> np.ndarray:
        loaded = self._loaded
        assert loaded is not None
        # Roberta positions start after the padding index: max_position_embeddings - 2.
        limit = loaded.model.config.text_config.max_position_embeddings - 2
        max_length = min(int(getattr(loaded.tokenizer, "model_max_length", limit)), limit)
        tokens = loaded.tokenizer(
            texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            out = loaded.model.get_text_features(
                input_ids=tokens["input_ids"].to(loaded.device),
                attention_mask=tokens["attention_mask"].to(loaded.device),
            )
        vectors = out if isinstance(out, torch.Tensor) else out.pooler_output
        return torch.nn.functional.normalize(vectors.float(), dim=-1).cpu().numpy()

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32 L2-normalised text vectors; recent texts are cached."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._text_cache))
            fresh: dict[str, np.ndarray] = {}
            if missing:
                self._load()
                for start in range(0, len(missing), 64):
                    part = missing[start : start + 64]
                    fresh.update(zip(part, self._text_vectors(part), strict=True))
            rows = [fresh[t] if t in fresh else self._text_cache[t] for t in texts]
            for text in texts:
                if text in fresh:
                    self._text_cache[text] = fresh[text]
                self._text_cache.move_to_end(text)
            while len(self._text_cache) > self.text_cache_size:
                self._text_cache.popitem(last=False)
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack(rows).astype(np.float32, copy=False)


SPACE_NAMES = ("aisfx", "mfcc", "clap")
# Spaces whose file vectors are standardised per dimension over the library before
# cosine (known without building the space, so indexes can be built without a model).
STANDARDIZED = {"aisfx", "mfcc"}
DEFAULT_SIMILAR_SPACE = "aisfx"


def make_space(name: str, device: str = "auto") -> EmbeddingSpace:
    """Build a space by name; raises ModelUnavailable (or ValueError) when it can't be.

    "clap" uses engine.clap_model.configured_model() ($SONARIUM_CLAP_MODEL, else the
    default) and fails at once, without network, when that model isn't on this machine.
    """
    if name == "aisfx":
        return AisfxSpace(device=device)
    if name == "mfcc":
        return MfccSpace()
    if name == "clap":
        return ClapSpace(device=device)
    raise ValueError(f"unknown embedding space '{name}' (known: {', '.join(SPACE_NAMES)})")


_SHARED: dict[tuple[str, str], EmbeddingSpace] = {}
_SHARED_LOCK = threading.Lock()


def shared_space(name: str, device: str = "auto") -> EmbeddingSpace:
    """A process-wide instance of a space, built on first use and kept until exit.

    Models are large to load, and destroying torch modules from a Qt worker thread
    crashed PySide6 6.12 apps here (segfault in the module's deallocation), so spaces
    used for queries live as long as the process, on engine.model_thread's thread: every
    method call is run there, whichever thread makes it.
    """
    model = None
    if name == "clap":
        from engine.clap_model import configured_model

        model = configured_model()  # another configured model is another instance
    key = (name, device, model)
    with _SHARED_LOCK:
        if key not in _SHARED:
            # Built and used on the model thread (engine/model_thread.py says why).
            _SHARED[key] = OnModelThread(model_thread.run(make_space, name, device))
        return _SHARED[key]


def available_spaces(names: tuple[str, ...] = SPACE_NAMES, device: str = "auto") -> list:
    """The spaces that can be built here; a missing model is logged, not raised."""
    spaces = []
    for name in names:
        try:
            spaces.append(make_space(name, device))
        except Exception as exc:
            # CLAP weights are an optional download: their absence is the normal case.
            level = logging.INFO if name == "clap" else logging.WARNING
            log.log(level, "embedding space %s unavailable: %s", name, exc)
    return spaces
