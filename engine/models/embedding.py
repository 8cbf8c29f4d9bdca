"""What every embedding space is: the Embedding it returns and the protocols it follows.

Each space has a name, an identity (model, revision, preprocessing version) stored with
its vectors, a sample rate, and `embed` for a batch of mono clips. `embed` may be called
from the embedding thread only (models are not shared between threads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

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


class PreparingSpace(EmbeddingSpace, Protocol):
    """A space that splits ``embed`` in two: ``prepare`` (one clip's windows or features;
    any thread, thread-safe) and ``embed_prepared`` (the model, on batches of prepared
    clips; the embedding thread). The pipeline runs ``prepare`` on its decode workers
    when the space's model has its own device (engine/embed/pipeline.py), so the two overlap.
    ``embed(clips)`` equals ``embed_prepared([prepare(c) for c in clips])``."""

    def prepare(self, clip: np.ndarray) -> object: ...

    def embed_prepared(self, items: list) -> list[Embedding]: ...
