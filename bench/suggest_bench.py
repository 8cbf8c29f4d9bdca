"""How well category suggestions name files whose names are hidden.

    python bench/suggest_bench.py --library DIR [--ucs TABLE.json]

The files whose names clearly mean one UCS category (engine/curate/suggest.name_catids:
more than half of the name's reading on one CatID) are the judged set; each name's CatID
is its label. Suggestions are then made with each file's name hidden (none of its words
read; its neighbours' names are, as in a library where some files are named), and again
with every judged file's name hidden at once (only unjudged neighbours' names read), and
scored top-1/top-3 against the label, beside two baselines from
the same run: always the most frequent labels of the set (an oracle of its label counts),
and chance. Also, for reference, the same files with their names read too (the labels
come from those names, so this mostly shows the words part works). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def accuracy(labels: dict[int, str], suggested: dict[int, list[dict]], k: int) -> float:
    hits = sum(labels[f] in [s["catid"] for s in suggested.get(f, [])[:k]] for f in labels)
    return round(hits / len(labels), 4) if labels else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--library", required=True)
    parser.add_argument("--ucs", help="UCS table, for category names in the per-category list")
    args = parser.parse_args()

    from engine.curate.suggest import category_space, file_text, name_catids
    from engine.library import Library

    with Library(args.library) as library:
        if args.ucs:
            library.set_ucs_table(args.ucs)
        space = category_space(library.text_space())
        if space is None:
            print(json.dumps({"error": "no category knowledge for this library"}))
            return 1
        rows = library.catalog.query("SELECT id, name, description, keywords FROM files "
                                     "WHERE status = 'ok' ORDER BY id")  # fmt: skip
        embedded, _ = space.category_log_probs([r["id"] for r in rows])
        have = {int(i) for i in embedded}
        rows = [r for r in rows if r["id"] in have]
        meant = name_catids(space, [file_text(r) for r in rows])
        labels = {r["id"]: c for r, c in zip(rows, meant, strict=True) if c}
        started = time.perf_counter()
        hidden = library.suggest_categories(list(labels), use_words=False)
        seconds = time.perf_counter() - started
        # Every judged name hidden at once: neighbours are only files that were not judged.
        all_hidden = library.suggest_categories(list(labels), use_words=False, exclude=set(labels))
        named = library.suggest_categories(list(labels), use_words=True)
    counts = collections.Counter(labels.values())
    common = [c for c, _ in counts.most_common(3)]
    n_categories = len(space.categories.catids)
    result = {
        "library": args.library,
        "files": len(rows),
        "judged_files": len(labels),
        "judged_categories": len(counts),
        "names_hidden": {"top1": accuracy(labels, hidden, 1), "top3": accuracy(labels, hidden, 3)},
        "all_judged_names_hidden": {
            "top1": accuracy(labels, all_hidden, 1),
            "top3": accuracy(labels, all_hidden, 3),
        },  # fmt: skip
        "most_frequent_baseline": {
            "top1": round(counts[common[0]] / len(labels), 4) if labels else 0.0,
            "top3": round(sum(counts[c] for c in common) / len(labels), 4) if labels else 0.0,
            "categories": common,
        },
        "chance_baseline": {"top1": round(1 / n_categories, 4), "top3": round(3 / n_categories, 4)},
        "names_read_too": {"top1": accuracy(labels, named, 1), "top3": accuracy(labels, named, 3)},
        "seconds_per_1000_files": round(1000 * seconds / max(1, len(labels)), 3),
        "most_common_labels": counts.most_common(10),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
