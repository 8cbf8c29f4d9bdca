"""Category-level knowledge: a query reaches sounds through sound-design categories.

File-level knowledge (engine/adapt/adapter.py) carries over to another library only as
far as its captions name the same things. Categories carry further: every UCS
subcategory is described in words (its names, explanation and synonyms), so a query
finds its categories by meaning, and a small classifier over the audio space says which
categories a sound belongs to. The classifier learns from captioned files whose caption
is softly assigned to the categories it reads like (a soft label, never a hard guess),
so it needs no hand labels: the training corpus's names teach it.

A file's score for a query is the expected log-probability of the query's categories
under the classifier, the query's categories weighted by how well they read like it.
Candidates for a large library come from the index through the categories' audio
prototypes (the mean standardised audio of what taught each category).

Pure computation and a validated file format; training runs on the caller's thread
(the one that owns the catalog), scoring on any thread that owns the object.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from engine.adapt.adapter import npz_members, reading, versioned_meta
from engine.catalog.sidefiles import written
from engine.catalog.vectors import normalise
from engine.errors import AdapterInvalid
from engine.scan.ucs import UcsTable

CATEGORIES_VERSION = "categories-v1"
MAX_CATEGORIES = 10_000
MAX_HIDDEN = 4096
MAX_AUDIO_DIM = 4096
_TEXT_DIM = 384  # all-MiniLM-L6-v2 (engine.models.text_encoder.DIM)
# A category's synonyms beyond this many add little and dilute its text vector.
SYNONYMS_PER_CATEGORY = 15
# Categories that taught the classifier less than this much soft-label mass are too
# thin to judge audio by; a query's weight on them is dropped.
MIN_CATEGORY_MASS = 1.0


@dataclass(frozen=True)
class CategoryOptions:
    """How category knowledge is learned and used (chosen on a split of the training
    corpus, docs/measurements.md)."""

    label_tau: float = 0.05  # caption -> categories softmax temperature
    query_tau: float = 0.05  # query -> categories
    hidden: int = 512
    steps: int = 300
    lr: float = 3e-3
    weight_decay: float = 1e-4
    dropout: float = 0.2
    seed: int = 0


def category_texts(ucs: UcsTable) -> tuple[list[str], list[str]]:
    """(CatIDs, their descriptions in words), in table order."""
    ids, texts = [], []
    for entry in ucs.by_catid.values():
        words = " ".join(entry.synonyms[:SYNONYMS_PER_CATEGORY])
        base = f"{entry.category.lower()} {entry.subcategory.lower()}"
        ids.append(entry.catid)
        texts.append(f"{base}. {entry.explanation} {words}".strip())
    return ids, texts


def softmax(x: np.ndarray, tau: float, axis: int = -1) -> np.ndarray:
    """Softmax of `x / tau` along `axis` (max subtracted first). Any thread."""
    z = x / tau
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


@dataclass
class CategoryKnowledge:
    """A trained category classifier over one audio space, with its categories' words."""

    text_identity: str
    audio_space: str
    audio_identity: str
    options: CategoryOptions
    catids: list[str]
    category_vectors: np.ndarray  # (c, 384) float32, L2-normalised
    w1: np.ndarray  # (d, h)
    b1: np.ndarray  # (h,)
    w2: np.ndarray  # (h, c)
    b2: np.ndarray  # (c,)
    prototypes: np.ndarray  # (c, d) float32, L2-normalised standardised audio
    mass: np.ndarray  # (c,) soft-label mass each category was taught with
    stats: dict[str, Any] = field(default_factory=dict)

    def query_distribution(self, text_vector: np.ndarray) -> np.ndarray:
        """(c,) how much the query reads like each (usable) category; sums to 1."""
        p = self.text_distribution(text_vector) * (self.mass >= MIN_CATEGORY_MASS)
        total = p.sum()
        return p / total if total > 0 else p

    def text_distribution(self, text_vector: np.ndarray) -> np.ndarray:
        """(c,) how much the query reads like each category, thin ones included."""
        return softmax(self.category_vectors @ text_vector, self.options.query_tau)

    def caption_distribution(self, caption_vectors: np.ndarray) -> np.ndarray:
        """(n, c) the soft labels captions (n, 384) teach: how much each reads like each
        category, as `train_categories` assigns them."""
        return softmax(caption_vectors @ self.category_vectors.T, self.options.label_tau, 1)

    def log_probs(self, audio: np.ndarray) -> np.ndarray:
        """(n, c) log P(category | sound) of standardised, L2-normalised audio vectors."""
        h = np.maximum(audio.astype(np.float32) @ self.w1 + self.b1, 0)
        logits = h @ self.w2 + self.b2
        m = logits.max(1, keepdims=True)
        return logits - m - np.log(np.exp(logits - m).sum(1, keepdims=True))

    def score(self, audio: np.ndarray, distribution: np.ndarray) -> np.ndarray:
        """(n,) expected log-probability of the query's categories for each sound."""
        if len(audio) == 0:
            return np.zeros(0, dtype=np.float32)
        return self.log_probs(audio) @ distribution

    def prototype(self, distribution: np.ndarray) -> np.ndarray:
        """(d,) the audio a query's categories were taught with (for index candidates)."""
        return normalise((distribution @ self.prototypes).reshape(1, -1))[0]

    # -- file ------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write atomically (numpy arrays and a JSON header; no pickles)."""
        meta = {
            "version": CATEGORIES_VERSION, "text_identity": self.text_identity,
            "audio_space": self.audio_space, "audio_identity": self.audio_identity,
            "options": asdict(self.options), "stats": self.stats,
        }  # fmt: skip
        arrays: dict[str, Any] = {
            "meta": np.array(json.dumps(meta)), "catids": np.array(self.catids, dtype=str),
            "category_vectors": self.category_vectors.astype(np.float16),
            "w1": self.w1.astype(np.float16), "b1": self.b1.astype(np.float32),
            "w2": self.w2.astype(np.float16), "b2": self.b2.astype(np.float32),
            "prototypes": self.prototypes.astype(np.float16),
            "mass": self.mass.astype(np.float32),
        }  # fmt: skip
        with written(path) as tmp:
            np.savez(tmp, **arrays)

    @classmethod
    def load(cls, path: Path) -> CategoryKnowledge:
        """Read a category file; AdapterInvalid (a ValueError) unless it is one, with
        consistent shapes within the caps (checked on the headers before loading)."""
        with reading(path, "Sonarium category knowledge"):
            _check_members(path)
            with np.load(path, allow_pickle=False) as data:
                meta = versioned_meta(data, CATEGORIES_VERSION)
                known = {f.name for f in fields(CategoryOptions)}
                options = CategoryOptions(
                    **{k: v for k, v in meta["options"].items() if k in known}
                )
                out = cls(
                    text_identity=str(meta["text_identity"]),
                    audio_space=str(meta["audio_space"]),
                    audio_identity=str(meta["audio_identity"]), options=options,
                    catids=[str(c) for c in data["catids"]],
                    category_vectors=data["category_vectors"].astype(np.float32),
                    w1=data["w1"].astype(np.float32), b1=data["b1"].astype(np.float32),
                    w2=data["w2"].astype(np.float32), b2=data["b2"].astype(np.float32),
                    prototypes=data["prototypes"].astype(np.float32),
                    mass=data["mass"].astype(np.float32), stats=meta.get("stats", {}),
                )  # fmt: skip
        finite = all(np.isfinite(a).all() for a in (out.w1, out.b1, out.w2, out.b2, out.prototypes))
        if not finite:
            raise AdapterInvalid(f"{path}: damaged category knowledge (values not finite)")
        return out


def _check_members(path: Path) -> None:
    """AdapterInvalid unless the members are plain arrays of consistent shapes."""
    shapes = {name: member[0] for name, member in npz_members(path).items()}
    try:
        c = shapes["catids"][0]
        d, h = shapes["w1"]
        expected = {
            "meta": (), "category_vectors": (c, _TEXT_DIM), "b1": (h,), "w2": (h, c),
            "b2": (c,), "prototypes": (c, d), "mass": (c,),
        }  # fmt: skip
        wrong = [k for k, shape in expected.items() if shapes[k] != shape]
    except (KeyError, ValueError, IndexError) as exc:
        raise AdapterInvalid(f"{path}: not Sonarium category knowledge (no {exc})") from exc
    if wrong or c > MAX_CATEGORIES or h > MAX_HIDDEN or d > MAX_AUDIO_DIM:
        raise AdapterInvalid(f"{path}: damaged category knowledge ({', '.join(wrong)})")


def train_categories(
    caption_vectors: np.ndarray,
    audio: np.ndarray,
    ucs: UcsTable,
    *,
    text_identity: str,
    audio_space: str,
    audio_identity: str,
    encoder: Any,
    options: CategoryOptions | None = None,
) -> CategoryKnowledge:
    """Learn the classifier from captioned files (seeded, deterministic on CPU).

    `caption_vectors` (n, 384) are the files' caption vectors, `audio` (n, d) their
    standardised L2-normalised audio vectors; `encoder` encodes the category texts.
    """
    import torch
    from torch.nn import functional

    options = options or CategoryOptions()
    catids, texts = category_texts(ucs)
    cats = normalise(np.asarray(encoder.encode(texts), dtype=np.float32))
    labels = softmax(caption_vectors.astype(np.float32) @ cats.T, options.label_tau, axis=1)
    generator = torch.Generator().manual_seed(options.seed)
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    y = torch.from_numpy(labels.astype(np.float32))
    d, c = x.shape[1], y.shape[1]

    def init(rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
        bound = 1.0 / rows**0.5
        w = (torch.rand(rows, cols, generator=generator) * 2 - 1) * bound
        b = (torch.rand(cols, generator=generator) * 2 - 1) * bound
        return w.requires_grad_(), b.requires_grad_()

    w1, b1 = init(d, options.hidden)
    w2, b2 = init(options.hidden, c)
    opt = torch.optim.Adam([w1, b1, w2, b2], lr=options.lr, weight_decay=options.weight_decay)
    loss_value = float("nan")
    with torch.enable_grad():
        for _ in range(options.steps):
            h = torch.relu(x @ w1 + b1)
            keep = (torch.rand(h.shape, generator=generator) >= options.dropout).float()
            h = h * keep / (1 - options.dropout)
            loss = -(y * functional.log_softmax(h @ w2 + b2, 1)).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_value = float(loss.detach())
    prototypes = normalise(labels.T @ audio.astype(np.float32))
    weights = [t.detach().numpy().copy() for t in (w1, b1, w2, b2)]
    return CategoryKnowledge(
        text_identity=text_identity, audio_space=audio_space, audio_identity=audio_identity,
        options=options, catids=catids, category_vectors=cats, w1=weights[0], b1=weights[1],
        w2=weights[2], b2=weights[3], prototypes=prototypes,
        mass=labels.sum(0).astype(np.float32),
        stats={"pairs": len(audio), "categories": c, "loss": round(loss_value, 4)},
    )  # fmt: skip
