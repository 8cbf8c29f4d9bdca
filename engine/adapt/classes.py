"""The aisfx classifiers' UCS categories: knowledge learned on professional libraries.

aisfx (Ma & Lerch, ISMIR 2022) was trained with one classifier per sound-effects library,
three of them over UCS categories (Pro Sound Effects, Soundly, a UCS mix: tens of
thousands of professionally labelled sounds). The checkpoint keeps those classifiers but
names their classes by index only. Each library's classes are its UCS categories in
alphabetical order, a few missing, so `learn_classes` finds which ones are missing with a
monotone alignment of the classes to the sorted categories, scored by how each class's
probability goes with the categories the training corpus's names read like. Only that
alignment is learned here (a few hundred integers); what a class hears is aisfx's own.

A file's score for a query is the expected log-probability, summed over the three
classifiers, of the categories the query reads like: its distribution over UCS CatIDs
(the category knowledge's text side, engine/adapt/categories.py) folded into their
categories. The classifiers read the stored file vector scaled back to the raw
embedding's typical length (`scale`, measured when the knowledge is built), since the
catalog keeps vectors normalised.

Pure computation and a validated file format (NumPy arrays and a JSON header, no
pickles); any thread that owns the object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.adapt.adapter import npz_members, reading, versioned_meta
from engine.adapt.categories import softmax
from engine.catalog.sidefiles import written
from engine.errors import AdapterInvalid

CLASSES_VERSION = "aisfx-classes-v1"
# A class's probability never counts as less than this (a category no classifier has
# reads as unlikely, not impossible), nor does a missing category.
FLOOR = 1e-4
MAX_CLASSES = 1000
MAX_CATEGORIES = 1000
MAX_CATIDS = 10_000
MAX_WIDTH = 4096
_LAYERS = 3


@dataclass
class ClassHead:
    """One classifier: three linear layers (ReLU between), its classes' category index."""

    name: str
    layers: list[tuple[np.ndarray, np.ndarray]]  # (weight (out, in), bias (out,)) each
    category_of_class: np.ndarray  # (classes,) int: index into ClassKnowledge.categories

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(n, classes) softmax of the classifier over raw-scaled embeddings (n, in)."""
        h = x.astype(np.float32)
        for i, (w, b) in enumerate(self.layers):
            h = h @ w.T + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0)
        return softmax(h, 1.0, axis=1)


@dataclass
class ClassKnowledge:
    """The classifiers, what category each class is, and how CatIDs fold into categories."""

    audio_space: str
    audio_identity: str
    categories: list[str]  # UCS category names, sorted
    catids: list[str]  # the category knowledge's CatIDs, in its order
    category_of_catid: np.ndarray  # (catids,) int
    heads: list[ClassHead]
    scale: float
    stats: dict[str, Any] = field(default_factory=dict)

    def log_probs(self, raw: np.ndarray) -> np.ndarray:
        """(n, categories) log P(category | sound) summed over the classifiers, from
        stored (L2-normalised) file vectors."""
        x = np.asarray(raw, dtype=np.float32) * np.float32(self.scale)
        out = np.zeros((len(x), len(self.categories)), dtype=np.float32)
        for head in self.heads:
            part = np.full(out.shape, np.log(FLOOR), dtype=np.float32)
            part[:, head.category_of_class] = np.log(head.probabilities(x) + FLOOR)
            out += part
        return out

    def query_weights(self, catid_distribution: np.ndarray) -> np.ndarray:
        """(categories,) a query's distribution over CatIDs folded into categories."""
        weights = np.zeros(len(self.categories), dtype=np.float32)
        np.add.at(weights, self.category_of_catid, catid_distribution.astype(np.float32))
        return weights

    # -- file ------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write atomically (NumPy arrays and a JSON header; no pickles)."""
        meta = {
            "version": CLASSES_VERSION, "audio_space": self.audio_space,
            "audio_identity": self.audio_identity, "scale": self.scale,
            "heads": [h.name for h in self.heads], "stats": self.stats,
        }  # fmt: skip
        arrays: dict[str, Any] = {
            "meta": np.array(json.dumps(meta)),
            "categories": np.array(self.categories, dtype=str),
            "catids": np.array(self.catids, dtype=str),
            "category_of_catid": self.category_of_catid.astype(np.int32),
        }
        for i, head in enumerate(self.heads):
            arrays[f"h{i}_classes"] = head.category_of_class.astype(np.int32)
            for j, (w, b) in enumerate(head.layers):
                arrays[f"h{i}_w{j}"] = w.astype(np.float16)
                arrays[f"h{i}_b{j}"] = b.astype(np.float32)
        with written(path) as tmp:
            np.savez(tmp, **arrays)

    @classmethod
    def load(cls, path: Path) -> ClassKnowledge:
        """Read a classes file; AdapterInvalid (a ValueError) unless it is one, with
        consistent shapes within the caps (checked on the headers before loading)."""
        with reading(path, "Sonarium class knowledge"):
            count = _check_members(path)
            with np.load(path, allow_pickle=False) as data:
                meta = versioned_meta(data, CLASSES_VERSION)
                names = [str(n) for n in meta["heads"]]
                if len(names) != count:
                    raise AdapterInvalid(f"{path}: {count} classifiers, {len(names)} named")
                categories = [str(c) for c in data["categories"]]
                heads = [
                    ClassHead(
                        name, [
                            (data[f"h{i}_w{j}"].astype(np.float32),
                             data[f"h{i}_b{j}"].astype(np.float32))
                            for j in range(_LAYERS)
                        ],
                        data[f"h{i}_classes"].astype(np.int64),
                    )
                    for i, name in enumerate(names)
                ]  # fmt: skip
                out = cls(
                    audio_space=str(meta["audio_space"]),
                    audio_identity=str(meta["audio_identity"]),
                    categories=categories, catids=[str(c) for c in data["catids"]],
                    category_of_catid=data["category_of_catid"].astype(np.int64),
                    heads=heads, scale=float(meta["scale"]), stats=meta.get("stats", {}),
                )  # fmt: skip
        out._validate(path)
        return out

    def _validate(self, path: Path) -> None:
        c = len(self.categories)
        indices = [self.category_of_catid] + [h.category_of_class for h in self.heads]
        if any(len(i) and (i.min() < 0 or i.max() >= c) for i in indices):
            raise AdapterInvalid(f"{path}: damaged class knowledge (category out of range)")
        arrays = [a for h in self.heads for layer in h.layers for a in layer]
        if not all(np.isfinite(a).all() for a in arrays) or not np.isfinite(self.scale):
            raise AdapterInvalid(f"{path}: damaged class knowledge (values not finite)")
        if self.scale <= 0:
            raise AdapterInvalid(f"{path}: damaged class knowledge (scale {self.scale})")


def _check_members(path: Path) -> int:
    """How many classifiers the file holds; AdapterInvalid unless its members are plain
    arrays whose shapes chain (each layer's input is the last one's output)."""
    shapes = {name: member[0] for name, member in npz_members(path).items()}
    try:
        count = 0
        while f"h{count}_classes" in shapes:
            count += 1
        (c,) = shapes["categories"]
        (n,) = shapes["catids"]
        wrong = [] if shapes["category_of_catid"] == (n,) and shapes["meta"] == () else ["catids"]
        for i in range(count):
            width = None
            for j in range(_LAYERS):
                out, inp = shapes[f"h{i}_w{j}"]
                if (width is not None and inp != width) or shapes[f"h{i}_b{j}"] != (out,):
                    wrong.append(f"h{i}_w{j}")
                if max(out, inp) > MAX_WIDTH:
                    wrong.append(f"h{i}_w{j}")
                width = out
            if shapes[f"h{i}_classes"] != (width,) or (width or 0) > MAX_CLASSES:
                wrong.append(f"h{i}_classes")
    except (KeyError, ValueError, TypeError) as exc:
        raise AdapterInvalid(f"{path}: not Sonarium class knowledge (no {exc})") from exc
    if wrong or count == 0 or c > MAX_CATEGORIES or n > MAX_CATIDS:
        raise AdapterInvalid(f"{path}: damaged class knowledge ({', '.join(wrong) or 'empty'})")
    return count


def monotone_alignment(scores: np.ndarray) -> list[int]:
    """The strictly increasing map of rows (classes) into columns (sorted categories) with
    the largest total score: rows <= columns, each row one column, order kept."""
    k, c = scores.shape
    if k > c:
        raise ValueError(f"{k} classes cannot align to {c} categories")
    best = np.full((k + 1, c + 1), -np.inf)
    best[0, :] = 0.0
    took = np.zeros((k + 1, c + 1), dtype=bool)
    for i in range(1, k + 1):
        for j in range(i, c + 1):
            take = best[i - 1, j - 1] + scores[i - 1, j - 1]
            if take >= best[i, j - 1]:
                best[i, j], took[i, j] = take, True
            else:
                best[i, j] = best[i, j - 1]
    out = [0] * k
    i, j = k, c
    while i > 0:
        if took[i, j]:
            out[i - 1] = j - 1
            i -= 1
        j -= 1
    return out


def _standardised(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / (x.std(0) + 1e-9)


def learn_classes(
    raw: np.ndarray,
    labels: np.ndarray,
    heads: dict[str, list[tuple[np.ndarray, np.ndarray]]],
    *,
    categories: list[str],
    catids: list[str],
    category_of_catid: np.ndarray,
    scale: float,
    audio_space: str,
    audio_identity: str,
) -> ClassKnowledge:
    """Align each classifier's classes to the sorted `categories`.

    `raw` (n, d) are captioned files' stored vectors, `labels` (n, categories) the soft
    categories their captions read like. A class goes with a category as far as its
    probability and the category's label correlate over the files; the alignment keeps
    the classes' order (monotone_alignment). Deterministic.
    """
    if list(categories) != sorted(categories):
        raise ValueError("categories must be sorted (the classes are in alphabetical order)")
    lz = _standardised(labels.astype(np.float64))
    out: list[ClassHead] = []
    alignment: dict[str, float] = {}
    for name, layers in heads.items():
        head = ClassHead(name, layers, np.zeros(layers[-1][0].shape[0], dtype=np.int64))
        pz = _standardised(head.probabilities(raw * np.float32(scale)).astype(np.float64))
        corr = pz.T @ lz / max(len(raw), 1)
        mapping = monotone_alignment(corr)
        head.category_of_class = np.array(mapping, dtype=np.int64)
        alignment[name] = round(float(np.mean(corr[np.arange(len(mapping)), mapping])), 4)
        out.append(head)
    return ClassKnowledge(
        audio_space=audio_space, audio_identity=audio_identity, categories=list(categories),
        catids=list(catids), category_of_catid=np.asarray(category_of_catid, dtype=np.int64),
        heads=out, scale=float(scale),
        stats={"pairs": len(raw), "mean_aligned_correlation": alignment},
    )  # fmt: skip
