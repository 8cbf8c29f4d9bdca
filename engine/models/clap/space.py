"""The CLAP embedding space: 10 s windows through the audio tower, text through the text tower."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from engine.errors import ModelUnavailable
from engine.models.cpu_lanes import InLanes
from engine.models.device import pick_device
from engine.models.embedding import Embedding

if TYPE_CHECKING:
    from engine.models.clap.features import ClapFeatures
    from engine.models.clap.model import LoadedClap


class ClapSpace(InLanes):
    """CLAP (LAION, via transformers): audio and text in one space, for text search.

    Audio is cut into 10 s windows, the last zero-padded (engine/models/clap/features.py); the
    windows are the file's moments and the file vector is the normalised mean of the
    normalised window vectors, each weighted by its seconds of real audio. Compared by
    plain cosine: no standardisation, since text vectors share the space.

    Constructing checks the model is on this machine (a folder, or a Hub id in the HF
    cache) and raises ModelUnavailable at once when it isn't; it never downloads (use
    engine.models.clap.model.load_clap or download for that). The weights load on first use.
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
        from engine.models.clap import model as clap_model
        from engine.models.clap.features import MelSettings

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
            from engine.models.clap.model import load_resolved

            self._loaded = load_resolved(self._resolved, self.device)
        return self._loaded

    def _feature_maker(self) -> ClapFeatures:
        with self._features_lock:
            if self._features is None:
                from engine.models.clap.features import ClapFeatures

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
        measured slower, since they preempt it (docs/measurements.md).
        """
        from engine.models.clap.features import HOP_SECONDS, window_times

        rate, size = self.sample_rate, self.settings.window_samples
        hop = int(round(HOP_SECONDS * rate))
        audio = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32))
        times = window_times(len(audio), rate, self.settings.window_seconds, HOP_SECONDS)
        return [audio[w * hop : w * hop + size] for w in range(len(times))], times

    def embed_prepared(self, items: list[tuple[list[torch.Tensor], list]]) -> list[Embedding]:
        """Vectors for prepared clips, windows batched across clips. Embedding thread."""
        from engine.models.clap.features import pooled_vector

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
        :func:`engine.models.clap.features.windows` for the geometry). Embedding thread."""
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
