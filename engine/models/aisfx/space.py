"""The aisfx embedding space: ~2.3 s blocks through the CNN, max-pooled file vectors."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from engine.errors import ModelUnavailable
from engine.models.cpu_lanes import InLanes
from engine.models.device import inference_dtype, pick_device
from engine.models.embedding import Embedding

if TYPE_CHECKING:
    from engine.models.aisfx.features import AisfxFeatures


class AisfxSpace(InLanes):
    """aisfx (Ma & Lerch, ISMIR 2022): a CNN trained on professional SFX libraries.

    Audio only. ~2.3 s blocks with 50% overlap are the file's windows (its moments).
    The file vector is the element-wise max of the normalised block vectors, compared
    after standardising each dimension over the library (chosen over the mean by the
    query-by-example eval: docs/measurements.md, file vector pooling).
    """

    name = "aisfx"
    has_text = False
    standardize = True
    pooling = "max"

    # Batches of 16 blocks on CPU: with the bf16 channels-last net the fastest size
    # measured (docs/measurements.md); oneDNN's kernel choice makes 32 slower.
    def __init__(self, device: str = "auto", batch_size: int | None = None) -> None:
        from engine.models.aisfx import model as aisfx_model

        self.sample_rate = aisfx_model.SAMPLE_RATE
        self.dim = aisfx_model.EMBED_DIM
        self.device = pick_device(device)
        self.batch_size = batch_size or (64 if self.device.startswith("cuda") else 16)
        path = aisfx_model.checkpoint_path()
        if path is None:
            raise ModelUnavailable(
                "the aisfx model is not installed: run setup.sh again, which installs it "
                "(pip install --no-deps aisfx==0.1.2)"
            )
        self._path: Path = path
        self._net: torch.nn.Module | None = None
        self._features: AisfxFeatures | None = None
        self._features_lock = threading.Lock()

    def identity(self) -> str:
        from engine.models.aisfx import model as aisfx_model

        digest = hashlib.blake2b(self._path.read_bytes(), digest_size=8).hexdigest()
        return f"aisfx-0.1.2:{digest}:{aisfx_model.PREPROCESSING_VERSION}:pool-{self.pooling}"

    def _load(self) -> torch.nn.Module:
        if self._net is None:
            from engine.models.aisfx.model import inference_net, load_aisfx

            bf16 = inference_dtype(self.device, torch.bfloat16) == torch.bfloat16
            self._net = inference_net(load_aisfx(self._path, device=self.device), bf16)
        return self._net

    def _feature_maker(self):
        with self._features_lock:
            if self._features is None:
                from engine.models.aisfx.features import AisfxFeatures

                # float32 features: much faster than float64, within 1.2e-7 of it.
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
        from engine.models.aisfx.features import AisfxFeatures, embed_blocks, max_pooled_vector

        if not items:
            return []
        net = self._load()
        blocks = [x if x.ndim == 3 else self._feature_maker().blocks(x) for x, _ in items]
        every = torch.cat(blocks)
        # The net is stateless in inference, so the lanes can share it (measured faster
        # than one forward on all threads: docs/measurements.md, model lanes).
        spans: range = range(len(every))
        vectors = torch.cat(self._in_lanes(
            lambda run: embed_blocks(net, every[run.start : run.stop], self.batch_size),  # type: ignore[attr-defined]
            spans,
        )).cpu().numpy()  # fmt: skip
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
