"""Base knowledge shipped with Sonarium: text search on a library whose names say nothing.

Learned once from the training corpus (never from the dev corpus or a user's library)
and kept in `resources/knowledge/`: a file-level adapter (engine/adapt/adapter.py) and
category knowledge (engine/adapt/categories.py) for one audio space, each carrying the
identities of the encoders it needs. Another audio model's vectors are refused, never
mixed. A library that has learned its own adapter blends it in by how many described
files taught it (`own_weight`), so the library's own names take over as they accumulate.

`build_base` is what `python main.py knowledge build TRAINING_LIBRARY` runs (seeded,
deterministic). Loading and composing run on the thread that owns the catalog.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.adapt.adapter import Adapter, AdaptOptions
from engine.adapt.categories import CategoryKnowledge, CategoryOptions, train_categories
from engine.adapt.classes import ClassKnowledge, learn_classes
from engine.adapt.text_space import AdaptedTextSpace, BlendedTextSpace
from engine.catalog.db import Catalog
from engine.catalog.vectors import VectorStore, normalise
from engine.config import DEFAULT_SIMILAR_SPACE
from engine.errors import AdapterInvalid, ModelUnavailable, NothingToLearn
from engine.scan.ucs import UcsTable

log = logging.getLogger(__name__)

KNOWLEDGE_DIR = Path(__file__).resolve().parent.parent.parent / "resources" / "knowledge"
# Speech collections (voice prompts, spoken words) are named by what is said, not by
# how they sound: they teach the categories as speech, under this one caption.
SPEECH_CAPTION = "a man or a woman speaking words, dialog voice"
# At most this many speech files teach the categories (so speech does not outweigh the
# described sound effects the classifier is for); a seeded sample when there are more.
MAX_SPEECH_FILES = 1500
# Described files at which the library's own adapter counts as much as the base
# knowledge (the base learned from 3,791): own_weight = pairs / (pairs + HANDOVER_PAIRS).
HANDOVER_PAIRS = 500
# Below this share the base knowledge is left out of a library's text search altogether:
# its own names have taken over (9,500 described files), and scoring every query twice
# for a 5% say cost a tenth of a text query's time at 100,000 files (measured).
MIN_BASE_SHARE = 0.05


# Files whose raw embedding length is measured for the classifiers' scale (seeded sample).
SCALE_FILES = 200


@dataclass
class BaseKnowledge:
    adapter: Adapter
    categories: CategoryKnowledge
    # The audio model's own classifiers, where it has them (aisfx): engine/adapt/classes.py.
    classes: ClassKnowledge | None = None


def base_files(folder: Path, audio_space: str = DEFAULT_SIMILAR_SPACE) -> tuple[Path, Path]:
    return folder / f"{audio_space}.base.adapter.npz", folder / f"{audio_space}.categories.npz"


def classes_file(folder: Path, audio_space: str = DEFAULT_SIMILAR_SPACE) -> Path:
    return folder / f"{audio_space}.classes.npz"


def load_base(
    audio_space: str = DEFAULT_SIMILAR_SPACE, folder: Path | None = None
) -> BaseKnowledge | None:
    """The shipped base knowledge for `audio_space`, or None (absent or damaged: logged)."""
    adapter_file, categories_file = base_files(folder or KNOWLEDGE_DIR, audio_space)
    if not adapter_file.exists() or not categories_file.exists():
        return None
    try:
        adapter = Adapter.load(adapter_file)
        categories = CategoryKnowledge.load(categories_file)
    except AdapterInvalid as exc:
        log.warning("base knowledge is unusable: %s", exc)
        return None
    if (adapter.audio_identity, adapter.text_identity) != (
        categories.audio_identity,
        categories.text_identity,
    ):
        log.warning("base knowledge files disagree on their models; not used")
        return None
    return BaseKnowledge(adapter, categories, _load_classes(folder or KNOWLEDGE_DIR, categories))


def _load_classes(folder: Path, categories: CategoryKnowledge) -> ClassKnowledge | None:
    """The classifiers' knowledge beside the categories, or None (absent, damaged or for
    other models or CatIDs: logged; the rest of the base knowledge still serves)."""
    path = classes_file(folder, categories.audio_space)
    if not path.exists():
        return None
    try:
        classes = ClassKnowledge.load(path)
    except AdapterInvalid as exc:
        log.warning("the audio model's class knowledge is unusable: %s", exc)
        return None
    if classes.audio_identity != categories.audio_identity or classes.catids != categories.catids:
        log.warning("class knowledge was learned for another model or UCS table; not used")
        return None
    return classes


def own_weight(pairs: int) -> float:
    """How much the library's own adapter counts against the base knowledge."""
    return pairs / (pairs + HANDOVER_PAIRS)


def compose_text_space(
    catalog: Catalog,
    index: Any,
    adapter: Adapter | None,
    base: BaseKnowledge | None,
    ucs: UcsTable | None = None,
    encoder: Any = None,
) -> AdaptedTextSpace | BlendedTextSpace | None:
    """The text space for a library: its own adapter, the base knowledge, or both blended.

    Base knowledge for another audio model than the library's is refused (logged). None
    when there is neither. Raises ModelUnavailable when the own adapter cannot be used.
    """
    if adapter is None:
        return _base_space(catalog, index, base, ucs, encoder)
    own = AdaptedTextSpace(catalog, index, adapter, ucs, encoder)
    weight = own_weight(int(adapter.stats.get("pairs", 0)))
    if 1 - weight < MIN_BASE_SHARE:
        return own  # the base is not even set up (its statistics cost a read)
    base_space = _base_space(catalog, index, base, ucs, encoder)
    return own if base_space is None else BlendedTextSpace(own, base_space, weight)


def _base_space(
    catalog: Catalog, index: Any, base: BaseKnowledge | None, ucs: UcsTable | None, encoder: Any
) -> AdaptedTextSpace | None:
    """The base knowledge's text space over this library, or None (none, or refused for
    another audio model: logged)."""
    if base is None:
        return None
    try:
        return AdaptedTextSpace(
            catalog, index, base.adapter, ucs, encoder,
            categories=base.categories, classes=base.classes, own_statistics=True,
        )  # fmt: skip
    except ModelUnavailable as exc:
        log.info("base knowledge not used: %s", exc)
        return None


def build_base(
    catalog: Catalog,
    ucs: UcsTable,
    out: Path,
    audio_space: str = DEFAULT_SIMILAR_SPACE,
    *,
    options: AdaptOptions | None = None,
    category_options: CategoryOptions | None = None,
    encoder: Any = None,
    speech: Catalog | None = None,
    heads: dict[str, list[tuple[np.ndarray, np.ndarray]]] | None = None,
    scale: float | None = None,
) -> BaseKnowledge:
    """Learn base knowledge from a (training) library and write it into `out`.

    The adapter keeps no file ids of the training library (they mean nothing elsewhere).
    Every sound of `speech` (a library of spoken words, embedded with the same audio
    model) teaches the categories as SPEECH_CAPTION, never by its name. Raises
    NothingToLearn when the library has too few described files, ModelUnavailable when
    `speech` was embedded with another audio model. The audio model's own classifiers
    (`heads`; aisfx's UCS heads by default for aisfx vectors, none for other models) are
    aligned to the UCS categories; `scale` is the raw embedding's typical length (measured
    on the library's files when not given).
    """
    from engine.adapt.training import train_adapter
    from engine.models.text_encoder import shared_encoder

    encoder = encoder or shared_encoder()
    # UCS explanations are kept out of file captions: the categories carry them.
    adapter = train_adapter(
        catalog, audio_space, (options or AdaptOptions()).replace(knowledge=False),
        encoder=encoder,
    )  # fmt: skip
    taught = adapter.file_ids.copy()
    adapter = replace(
        adapter, file_ids=np.full_like(adapter.file_ids, -1), audio_generation=-1, lend=None
    )
    audio = normalise(adapter.audio_vectors.astype(np.float32))
    captions = adapter.text_vectors
    pairs = {"described": len(audio), "speech": 0}
    if speech is not None:
        voices = _speech_audio(speech, adapter)
        pairs["speech"] = len(voices)
        caption = normalise(np.asarray(encoder.encode([SPEECH_CAPTION]), dtype=np.float32))
        audio = np.vstack([audio, voices])
        captions = np.vstack([captions, np.repeat(caption, len(voices), axis=0)])
    categories = train_categories(
        captions, audio, ucs, text_identity=adapter.text_identity,
        audio_space=audio_space, audio_identity=adapter.audio_identity, encoder=encoder,
        options=category_options,
    )  # fmt: skip
    categories.stats |= pairs
    if heads is None and adapter.audio_identity.startswith("aisfx-"):
        from engine.models.aisfx.model import load_ucs_heads

        heads = load_ucs_heads()
    classes = None
    if heads:
        classes = _learn_classes(catalog, ucs, categories, adapter, taught, heads, scale)
    out.mkdir(parents=True, exist_ok=True)
    adapter_file, categories_file = base_files(out, audio_space)
    adapter.save(adapter_file)
    categories.save(categories_file)
    if classes is not None:
        classes.save(classes_file(out, audio_space))
    else:
        classes_file(out, audio_space).unlink(missing_ok=True)
    return BaseKnowledge(adapter, categories, classes)


def _learn_classes(
    catalog: Catalog,
    ucs: UcsTable,
    categories: CategoryKnowledge,
    adapter: Adapter,
    taught: np.ndarray,
    heads: dict[str, list[tuple[np.ndarray, np.ndarray]]],
    scale: float | None,
) -> ClassKnowledge:
    """Align the classifiers' classes to UCS categories on the described files, whose
    captions read like categories as softly as they teach the category classifier."""
    names = sorted({ucs.by_catid[c].category for c in categories.catids})
    of_catid = np.array([names.index(ucs.by_catid[c].category) for c in categories.catids])
    store = VectorStore(catalog)
    space = store.space(adapter.audio_space)
    assert space is not None  # the adapter was just trained on it
    ids, raw = store.file_vectors(space["id"], [int(f) for f in taught])
    row_of = {int(f): i for i, f in enumerate(taught)}
    captions = adapter.text_vectors[[row_of[int(f)] for f in ids]].astype(np.float32)
    soft = categories.caption_distribution(captions)
    labels = np.zeros((len(ids), len(names)), dtype=np.float32)
    np.add.at(labels.T, of_catid, soft.T)
    if scale is None:
        scale = typical_length(catalog, adapter.audio_space)
    return learn_classes(
        raw, labels, heads, categories=names, catids=categories.catids,
        category_of_catid=of_catid, scale=scale, audio_space=adapter.audio_space,
        audio_identity=adapter.audio_identity,
    )  # fmt: skip


def typical_length(catalog: Catalog, audio_space: str, files: int = SCALE_FILES) -> float:
    """Median length of a file's raw embedding (the element-wise max of its windows
    before normalising), over a seeded sample of the library's files: what the stored
    unit vectors are scaled back by for the audio model's classifiers. Decodes and embeds
    them (seconds); the calling thread."""
    from engine.audio.decode import decode_mono
    from engine.audio.resample import resample
    from engine.models.spaces import make_space

    model = make_space(audio_space, device="cpu")
    rows = [r[0] for r in catalog.conn.execute("SELECT path FROM files WHERE status = 'ok'")]
    rng = np.random.default_rng(0)
    pick = sorted(rng.choice(len(rows), size=min(files, len(rows)), replace=False))
    lengths = []
    for i in pick:
        try:
            audio, rate = decode_mono(rows[i])
        except Exception as exc:  # a file unreadable now is left out of the sample
            log.info("left out of the scale sample: %s (%s)", rows[i], exc)
            continue
        (embedding,) = model.embed([resample(audio, rate, model.sample_rate)])
        if embedding.windows:
            peak = np.max(np.stack([w[2] for w in embedding.windows]), axis=0)
            lengths.append(float(np.linalg.norm(peak)))
    if not lengths:
        raise NothingToLearn("no file of the library could be embedded to measure the scale")
    return float(np.median(lengths))


def _speech_audio(speech: Catalog, adapter: Adapter) -> np.ndarray:
    """A seeded sample of the speech library's vectors, standardised like the adapter's."""
    store = VectorStore(speech)
    space = store.space(adapter.audio_space)
    if space is None or space["identity"] != adapter.audio_identity:
        raise ModelUnavailable("the speech library was not embedded with the same audio model")
    _, raw = store.all_file_vectors(space["id"])
    if len(raw) > MAX_SPEECH_FILES:
        pick = np.random.default_rng(0).choice(len(raw), size=MAX_SPEECH_FILES, replace=False)
        raw = raw[np.sort(pick)]
    return normalise((raw - adapter.mean) / adapter.std)
