"""The --hide-names evaluation: how well text search finds files whose names say nothing.

Before anything else a seeded random share of the library's files loses its name,
folder and metadata for every purpose: the evaluation works on a *copy* of the catalog
in which those files are renamed to their row id, their folder, descriptions, tags and
UCS fields are cleared and their keyword index rows rebuilt. Adaptation then learns from
the rest. Metrics:

- content: content-only ranking restricted to the hidden files, against the relevant
  files among them (queries with no hidden relevant file are skipped);
- hybrid: content fused with keyword search over all files;
- keyword: keyword-only over all files under the same hiding (the baseline).

With `base` knowledge (engine/adapt/base.py) each configuration's adapter is blended with
it as in the app, and "base knowledge only" is measured as well; with every name hidden
(fraction 1.0: the never-seen protocol) nothing is left to learn from and the base
knowledge answers alone.

The user's catalog and saved adapter are never touched. Runs on the calling thread.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engine.adapt.adapter import AdaptOptions
from engine.adapt.base import BaseKnowledge, compose_text_space
from engine.adapt.training import train_adapter
from engine.catalog.db import Catalog
from engine.catalog.paths import catalog_path
from engine.config import DEFAULT_SIMILAR_SPACE
from engine.errors import LibraryError, NothingToLearn
from engine.eval.metrics import evaluate_text, relative_ids
from engine.search.hybrid import hybrid_search
from engine.search.keyword import keyword_search

# Ablations of `python main.py eval --hide-names ... --ablations`: name -> option changes
# relative to the configuration being measured.
ABLATIONS: dict[str, dict[str, Any]] = {
    "no soft labels": {"soft_labels": False},
    "toggle reliability": {},  # filled in against the base configuration
    "no knowledge": {"knowledge": False},
    "no kernel": {"kernel_weight": 0.0},
    "no heads": {"heads": False},
    "nearest-caption only": {"heads": False, "kernel_weight": 0.0},
}


def choose_hidden(ids: dict[str, int], fraction: float, seed: int) -> set[int]:
    """A seeded random `fraction` of the files (by library-relative path, so the same
    library and seed hide the same files whatever their row ids)."""
    if not 0 <= fraction <= 1:
        raise LibraryError("the share of files to hide must be between 0 and 1")
    paths = sorted(ids)
    order = np.random.default_rng(seed).permutation(len(paths))
    return {ids[paths[i]] for i in order[: round(fraction * len(paths))]}


def hide_metadata(catalog: Catalog, hidden: set[int]) -> None:
    """Strip names, folders and metadata of `hidden` files (on an evaluation copy!)."""
    with catalog.transaction() as c:
        for file_id in sorted(hidden):
            row = c.execute("SELECT name FROM files WHERE id = ?", (file_id,)).fetchone()
            if row is None:
                continue
            ext = row[0].rsplit(".", 1)[1] if "." in row[0] else "wav"
            c.execute(
                "UPDATE files SET name = ?, folder = '', description = NULL, originator = NULL, "
                "ixml_note = NULL, ixml_project = NULL, ixml_scene = NULL, ixml_take = NULL, "
                "embedded_tags = NULL, ucs_catid = NULL, ucs_category = NULL, "
                "ucs_subcategory = NULL, ucs_fx_name = NULL, ucs_creator = NULL, "
                "ucs_source = NULL, keywords = NULL, designer = NULL, library = NULL, "
                "ucs_user_category = NULL, ucs_vendor_category = NULL, "
                "originator_reference = NULL WHERE id = ?",
                (f"{file_id}.{ext}", file_id),
            )
            c.execute("DELETE FROM user_tags WHERE file_id = ?", (file_id,))
            c.execute("DELETE FROM metadata_edits WHERE file_id = ?", (file_id,))
            catalog._refresh_fts(file_id)


def copy_catalog(source: Catalog, folder: Path) -> Catalog:
    """A consistent copy of a live catalog (SQLite's online backup) in `folder`."""
    target = catalog_path(folder)
    dest = sqlite3.connect(target)
    with dest:
        source.conn.backup(dest)
    dest.close()
    return Catalog(target)


def evaluate_hidden(
    source: Catalog,
    queries: list[dict[str, Any]],
    fraction: float,
    seed: int,
    options: AdaptOptions,
    *,
    ucs: Any = None,
    ablations: bool = False,
    audio_space: str = DEFAULT_SIMILAR_SPACE,
    encoder: Any = None,
    log: Callable[[str], None] | None = None,
    base: BaseKnowledge | None = None,
) -> dict[str, Any]:
    """Keyword baseline, then content and hybrid for `options` (and each ablation), and
    for the base knowledge alone when there is one."""
    from engine.search.similar import SimilarIndex

    ids = relative_ids(source)
    hidden = choose_hidden(ids, fraction, seed)
    with tempfile.TemporaryDirectory(prefix="sonarium-eval-") as tmp:
        catalog = copy_catalog(source, Path(tmp))
        try:
            hide_metadata(catalog, hidden)
            index = SimilarIndex(catalog, Path(tmp))
            result: dict[str, Any] = {
                "files": len(ids), "hidden": len(hidden), "fraction": fraction, "seed": seed,
                "keyword": evaluate_text(
                    queries, ids, lambda q: [r.id for r in keyword_search(catalog, q, limit=10)]
                ),
            }  # fmt: skip
            configs = {"adapted": options}
            if ablations:
                for name, change in ABLATIONS.items():
                    if name == "toggle reliability":
                        name = "with reliability" if not options.reliability else "no reliability"
                        change = {"reliability": not options.reliability}
                    configs[name] = options.replace(**change)
            result["configs"] = {}
            if base is not None:
                space = compose_text_space(catalog, index, None, base, ucs, encoder)
                if space is not None:
                    result["configs"]["base knowledge only"] = _measure(
                        catalog, index, space, queries, ids, hidden, None, 0.0
                    )
            for name, config in configs.items():
                if log:
                    log(f"training '{name}'...")
                began = time.perf_counter()
                try:
                    adapter = train_adapter(
                        catalog, audio_space, config, ucs=ucs, hidden=hidden, encoder=encoder
                    )
                except NothingToLearn:
                    if base is None:
                        raise
                    break  # every name hidden: the base knowledge alone was measured
                seconds = time.perf_counter() - began
                space = compose_text_space(catalog, index, adapter, base, ucs, encoder)
                result["configs"][name] = _measure(
                    catalog, index, space, queries, ids, hidden, adapter, seconds
                )
        finally:
            catalog.close()
    return result


def _measure(catalog, index, space, queries, ids, hidden, adapter, seconds) -> dict[str, Any]:
    total = len(ids)
    hidden_ids = {p: i for p, i in ids.items() if i in hidden}

    def content(query: str) -> list[int]:
        return [fid for fid, _ in space.rank(query, total) if fid in hidden][:10]

    def hybrid(query: str) -> list[int]:
        return [r.id for r in hybrid_search(catalog, index, space, query, 10)]

    return {
        "content": evaluate_text(queries, hidden_ids, content),
        "hybrid": evaluate_text(queries, ids, hybrid),
        "pairs": adapter.stats["pairs"] if adapter else 0,
        "train_seconds": round(seconds, 1),
        "options": {k: v for k, v in vars(adapter.options).items()} if adapter else {},
        "blend": getattr(space, "own_weight", 1.0 if adapter else 0.0),
    }
