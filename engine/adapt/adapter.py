"""Text search over an audio-only space, learned from the library's own captions.

aisfx has no text tower, but a real library is half well named: its captions (see
engine/adapt/captions.py) are weak descriptions of their audio. An adapter joins the frozen
sentence encoder (engine/models/text_encoder.py) to the frozen audio space with what those
pairs teach, in parts whose scores are summed (each z-scored over a fixed sample of
the library, so they add on one scale):

- nearest-caption expansion: the query's nearest captions (cosine ** POWER weights)
  average their files' standardised audio into a query vector (the "centroid"), ranked
  through the space's FAISS index;
- a kernel over those same neighbours: a file scores by how close it is to *any* of
  them (log-sum-exp), which keeps tight clusters (one drum kit's snares) from being
  blurred by the average;
- contrastive heads: linear projections of text and audio into a shared space trained
  with a soft-label contrastive loss whose targets come from caption-caption similarity
  (files with similar names are not negatives), optionally weighted per pair by
  cross-modal consistency (reliability);
- lent captions: each file's nearest described files by sound (itself first when it is
  described) lend it their captions, and it scores by the query's cosine to them
  (a table learned with the adapter; added after the three parts above).

Which parts are on, and their weights, were chosen by `sonarium eval
--hide-names` on the shared corpus (docs/measurements.md). Training is seeded and
deterministic; the adapter is derived data saved beside the catalog with both encoders'
identities and is never applied to vectors of another audio model.

This module holds the adapter itself: its options, the file saved beside the catalog
and when it is stale. Training is in engine/adapt/training.py, answering queries through
it in engine/adapt/text_space.py. Threads: all of them run on the thread that owns the
catalog.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from engine.adapt.captions import (
    MAX_CAPTION_CHARS,
    FileText,
    catalog_file_texts,
    useful_words,
)
from engine.catalog.db import Catalog
from engine.catalog.sidefiles import written
from engine.catalog.vectors import VectorStore
from engine.config import DEFAULT_SIMILAR_SPACE
from engine.errors import AdapterInvalid

ADAPTER_VERSION = "adapter-v1"
# What a file may declare before anything of it is loaded: a hostile or damaged one (a
# 1.5 MB zip that inflates to 3.5 GB) is refused on its members' headers.
MAX_ADAPTER_FILES = 5_000_000
MAX_ADAPTER_BYTES = 8 << 30
MAX_HEAD_BYTES = 64 << 20  # one projection head's matrix (384 x 256 float32 is 0.4 MB)
MAX_AUDIO_DIM = 4096
_TEXT_DIM = 384  # all-MiniLM-L6-v2 (engine.models.text_encoder.DIM)
# Described files an adapter learns from at most (a seeded sample above): about 2 KB each
# saved, so an adapter stays under 300 MB on a million-file library (bench/scale_bench.py).
MAX_PAIRS = 120_000


@dataclass(frozen=True)
class AdaptOptions:
    """How an adapter is trained and used. Defaults are the best measured combination."""

    neighbours: int = 20
    power: float = 3.0
    kernel_weight: float = 1.0
    kernel_tau: float = 0.1
    heads: bool = True
    heads_weight: float = 0.5
    soft_labels: bool = True
    reliability: bool = False
    knowledge: bool = True
    dim: int = 256
    steps: int = 300
    batch: int = 2048
    tau: float = 0.05
    label_tau: float = 0.05
    lr: float = 2e-3
    seed: int = 0
    min_pairs: int = 20
    # Each file's nearest described files (by sound, itself left out) lend it their
    # captions: a file scores by the query's similarity to them, softmax-weighted by how
    # close they sound, at `lend_weight` beside the parts above (0: off). Chosen on the
    # training corpus's queries (docs/measurements.md, captions lent by neighbours).
    lend_neighbours: int = 5
    lend_sharpness: float = 30.0
    lend_weight: float = 0.25

    def replace(self, **changes: Any) -> AdaptOptions:
        return AdaptOptions(**(asdict(self) | changes))


@dataclass
class AdaptProgress:
    stage: str  # "captions", "encoding", "training"
    done: int
    total: int

    # The names progress bars read from scan and embed snapshots.
    @property
    def files_done(self) -> int:
        return self.done

    @property
    def files_total(self) -> int:
        return self.total


@dataclass
class Adapter:
    """A trained adapter: captions, their text vectors, the heads and both identities."""

    text_identity: str
    audio_space: str
    audio_identity: str
    audio_generation: int
    options: AdaptOptions
    file_ids: np.ndarray  # (n,) int64: the captioned files it learned from
    captions: list[str]
    text_vectors: np.ndarray  # (n, 384) float32, L2-normalised
    # (n, dim) float16: the captioned files' standardised audio. Kept here, not looked up
    # by id, so an adapter also works on another library (--adapter).
    audio_vectors: np.ndarray
    weights: np.ndarray  # (n,) float32: per-pair reliability (ones when off)
    mean: np.ndarray  # audio standardisation over the library
    std: np.ndarray
    heads: dict[str, np.ndarray] | None = None  # wt, bt, wa, ba
    stats: dict[str, Any] = field(default_factory=dict)
    # Captions lent by neighbours (AdaptOptions.lend_*): the embedded files (sorted ids,
    # (n,)), each one's nearest captioned rows ((n, k) int32 into `captions`) and their
    # weights ((n, k) float16, summing to 1). None: not learned (base knowledge, whose
    # file ids mean nothing elsewhere; an adapter from before they existed).
    lend: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def save(self, path: Path) -> None:
        """Write atomically (a crash leaves the old adapter or none, never half of one)."""
        meta = {
            "version": ADAPTER_VERSION, "text_identity": self.text_identity,
            "audio_space": self.audio_space, "audio_identity": self.audio_identity,
            "audio_generation": self.audio_generation, "options": asdict(self.options),
            "stats": self.stats,
        }  # fmt: skip
        arrays: dict[str, Any] = {
            "meta": np.array(json.dumps(meta)), "file_ids": self.file_ids,
            "captions": np.array(self.captions, dtype=str),
            "text_vectors": self.text_vectors.astype(np.float16),
            "weights": self.weights, "mean": self.mean, "std": self.std,
            "audio_vectors": self.audio_vectors.astype(np.float16),
        }  # fmt: skip
        for key, value in (self.heads or {}).items():
            arrays["head_" + key] = value
        if self.lend is not None:
            arrays["lend_ids"], arrays["lend_rows"], arrays["lend_weights"] = self.lend
        with written(path) as tmp:
            np.savez(tmp, **arrays)

    @classmethod
    def load(cls, path: Path) -> Adapter:
        """Read an adapter file (numpy arrays only, never pickles); AdapterInvalid (a
        ValueError) if it is not one, is damaged (zip CRCs are checked as it is read) or
        declares more than MAX_ADAPTER_FILES / MAX_ADAPTER_BYTES."""
        with reading(path, "a Sonarium adapter"):
            _check_members(path)
            with np.load(path, allow_pickle=False) as data:
                meta = versioned_meta(data, ADAPTER_VERSION)
                known = {f.name for f in fields(AdaptOptions)}
                options = AdaptOptions(**{k: v for k, v in meta["options"].items() if k in known})
                heads = {k[5:]: data[k] for k in data.files if k.startswith("head_")} or None
                lend = None
                if "lend_ids" in data.files:
                    lend = (np.asarray(data["lend_ids"], dtype=np.int64),
                            np.asarray(data["lend_rows"], dtype=np.int32),
                            np.asarray(data["lend_weights"], dtype=np.float16))  # fmt: skip
                    rows = lend[1]
                    if rows.size and (rows.min() < 0 or rows.max() >= len(data["file_ids"])):
                        raise AdapterInvalid(f"{path}: lent captions point past the captions")
                    if np.any(np.diff(lend[0]) <= 0) or not np.isfinite(lend[2]).all():
                        raise AdapterInvalid(f"{path}: damaged lent captions")
                return cls(
                    text_identity=meta["text_identity"], audio_space=meta["audio_space"],
                    audio_identity=meta["audio_identity"],
                    audio_generation=int(meta["audio_generation"]), options=options,
                    # asarray: no copy where the stored type is the one used (a
                    # million-file adapter holds hundreds of MB).
                    file_ids=np.asarray(data["file_ids"], dtype=np.int64),
                    captions=[str(c) for c in data["captions"]],
                    text_vectors=np.asarray(data["text_vectors"], dtype=np.float32),
                    audio_vectors=np.asarray(data["audio_vectors"], dtype=np.float16),
                    weights=np.asarray(data["weights"], dtype=np.float32), mean=data["mean"],
                    std=data["std"], heads=heads, stats=meta.get("stats", {}), lend=lend,
                )  # fmt: skip

    def vocabulary(self) -> set[str]:
        # useful_words of every caption, over their distinct whitespace tokens (split in
        # one call: captions are split on whitespace first, and a large library's
        # captions are mostly distinct but share their tokens). Caption by caption took
        # 1.6 s for 120,000 pairs, distinct captions 0.2 s.
        tokens = set(" ".join(self.captions).split())
        return {w for token in tokens for w in useful_words(token)}


def npz_members(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype, int, int]]:
    """Member name -> (shape, dtype, declared bytes, stored bytes) of an .npz file, read
    from the array headers alone; AdapterInvalid for a member that is not a plain array
    (objects, more bytes stored than declared, a name twice). OSError/BadZipFile/ValueError
    pass through for the caller's own message."""
    members: dict[str, tuple[tuple[int, ...], np.dtype, int, int]] = {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            with z.open(info) as f:
                version = np.lib.format.read_magic(f)
                read = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read(f)
            size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            name = info.filename.removesuffix(".npy")
            if dtype.hasobject or info.file_size > size + 65_536 or name in members:
                raise AdapterInvalid(f"{path}: member {info.filename} is not a plain array")
            members[name] = (tuple(shape), dtype, size, info.file_size)
    return members


@contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    """Reading a knowledge file (an adapter, categories, classes): any error a damaged
    file raises becomes AdapterInvalid (a ValueError) naming `path` as not `what`; numpy
    says ValueError for pickled content, which is never loaded."""
    try:
        yield
    except AdapterInvalid:
        raise
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise AdapterInvalid(f"{path}: not {what} ({exc})") from exc


def versioned_meta(data: Any, version: str) -> dict[str, Any]:
    """The "meta" member of an open knowledge file; AdapterInvalid unless it says
    `version`."""
    meta = json.loads(str(data["meta"]))
    if meta.get("version") != version:
        raise AdapterInvalid(f"made by another version ({meta.get('version')!r})")
    return meta


def _check_members(path: Path) -> None:
    """AdapterInvalid unless the file's arrays have an adapter's names, dtypes and
    consistent shapes within the caps, read from their headers alone."""
    shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    total = 0
    for name, (shape, dtype, size, stored) in npz_members(path).items():
        if name.startswith("head_") and size > MAX_HEAD_BYTES:
            raise AdapterInvalid(f"{path}: {name} declares {size >> 20} MB")
        total += stored
        shapes[name] = (shape, dtype)
    if total > MAX_ADAPTER_BYTES:
        raise AdapterInvalid(f"{path}: declares {total >> 20} MB of arrays (at most "
                             f"{MAX_ADAPTER_BYTES >> 20} MB)")  # fmt: skip
    try:
        n = shapes["file_ids"][0][0]
        dim = shapes["mean"][0][0]
        expected = {
            "meta": (), "file_ids": (n,), "captions": (n,), "text_vectors": (n, _TEXT_DIM),
            "audio_vectors": (n, dim), "weights": (n,), "mean": (dim,), "std": (dim,),
        }  # fmt: skip
        if "lend_ids" in shapes:
            m, k = shapes["lend_rows"][0]
            expected |= {"lend_ids": (m,), "lend_rows": (m, k), "lend_weights": (m, k)}
        wrong = [k for k, shape in expected.items() if shapes[k][0] != shape]
    except (KeyError, IndexError, ValueError) as exc:
        raise AdapterInvalid(f"{path}: not a Sonarium adapter (no {exc})") from exc
    if (
        wrong
        or n > MAX_ADAPTER_FILES
        or dim > MAX_AUDIO_DIM
        or shapes["captions"][1].kind != "U"
        or shapes["captions"][1].itemsize > 4 * MAX_CAPTION_CHARS  # UCS-4
    ):
        raise AdapterInvalid(f"{path}: damaged adapter (wrong shape: {', '.join(wrong)})")


def adapter_path(library_dir: Path, audio_space: str = DEFAULT_SIMILAR_SPACE) -> Path:
    return library_dir / f"{audio_space}.adapter.npz"


def sources_stamp(texts: list[FileText]) -> str:
    """A hash of everything captions are made from (names, folders, tags, descriptions)."""
    import hashlib

    digest = hashlib.sha1()
    for f in texts:
        digest.update(repr(f).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


def read_meta(path: Path) -> dict[str, Any] | None:
    """An adapter file's identities and stamps without its arrays (None if unreadable)."""
    try:
        _check_members(path)  # headers only: a damaged or hostile file is just stale
        with np.load(path, allow_pickle=False) as data:  # members load lazily
            return json.loads(str(data["meta"]))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def is_stale(meta: dict[str, Any] | None, catalog: Catalog) -> bool:
    """True when the library changed since the adapter with this `read_meta` was trained
    (or there is none)."""
    if meta is None or meta.get("version") != ADAPTER_VERSION:
        return True
    if "lend_weight" not in meta.get("options", {}):
        return True  # learned before captions were lent: learned again once, to lend them
    store = VectorStore(catalog)
    space = store.space(meta["audio_space"])
    if space is None:
        return False  # nothing to learn from
    return (
        space["identity"] != meta["audio_identity"]
        or store.generation(space["id"]) != meta["audio_generation"]
        or meta.get("stats", {}).get("sources") != sources_stamp(catalog_file_texts(catalog))
    )


# -- training ------------------------------------------------------------------------------
