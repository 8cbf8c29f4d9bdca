"""The MFCC-statistics baseline space (no model, no windows)."""

from __future__ import annotations

import numpy as np
import torch

from engine.models.embedding import Embedding


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
