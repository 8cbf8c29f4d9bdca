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
from engine.adapt.text_space import AdaptedTextSpace, BlendedTextSpace
from engine.catalog.db import Catalog
from engine.catalog.vectors import VectorStore, normalise
from engine.config import DEFAULT_SIMILAR_SPACE
from engine.errors import AdapterInvalid, ModelUnavailable
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


@dataclass
class BaseKnowledge:
    adapter: Adapter
    categories: CategoryKnowledge


def base_files(folder: Path, audio_space: str = DEFAULT_SIMILAR_SPACE) -> tuple[Path, Path]:
    return folder / f"{audio_space}.base.adapter.npz", folder / f"{audio_space}.categories.npz"


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
    return BaseKnowledge(adapter, categories)


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
    base_space = None
    if base is not None:
        try:
            base_space = AdaptedTextSpace(
                catalog, index, base.adapter, ucs, encoder,
                categories=base.categories, own_statistics=True,
            )  # fmt: skip
        except ModelUnavailable as exc:
            log.info("base knowledge not used: %s", exc)
    if adapter is None:
        return base_space
    own = AdaptedTextSpace(catalog, index, adapter, ucs, encoder)
    if base_space is None:
        return own
    return BlendedTextSpace(own, base_space, own_weight(int(adapter.stats.get("pairs", 0))))


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
) -> BaseKnowledge:
    """Learn base knowledge from a (training) library and write it into `out`.

    The adapter keeps no file ids of the training library (they mean nothing elsewhere).
    Every sound of `speech` (a library of spoken words, embedded with the same audio
    model) teaches the categories as SPEECH_CAPTION, never by its name. Raises
    NothingToLearn when the library has too few described files, ModelUnavailable when
    `speech` was embedded with another audio model.
    """
    from engine.adapt.training import train_adapter
    from engine.models.text_encoder import shared_encoder

    encoder = encoder or shared_encoder()
    # UCS explanations are kept out of file captions: the categories carry them.
    adapter = train_adapter(
        catalog, audio_space, (options or AdaptOptions()).replace(knowledge=False),
        encoder=encoder,
    )  # fmt: skip
    adapter = replace(adapter, file_ids=np.full_like(adapter.file_ids, -1), audio_generation=-1)
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
    out.mkdir(parents=True, exist_ok=True)
    adapter_file, categories_file = base_files(out, audio_space)
    adapter.save(adapter_file)
    categories.save(categories_file)
    return BaseKnowledge(adapter, categories)


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
