"""knowledge: build the base knowledge shipped with Sonarium from a training library."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "knowledge", parents=[common],
        help="show the base knowledge for unnamed libraries, or build it from a library",
    )  # fmt: skip
    p.add_argument("action", nargs="?", choices=("show", "build"), default="show")
    p.add_argument("--ucs", metavar="TABLE", help="UCS table (JSON or CSV) for the categories")
    p.add_argument(
        "--speech", metavar="LIBRARY", type=Path,
        help="a library of spoken words (voice prompts): teaches the categories as speech",
    )  # fmt: skip
    p.add_argument("--out", metavar="DIR", type=Path, help="where to write it (default: ship)")
    p.set_defaults(func=cmd_knowledge)


def cmd_knowledge(args: argparse.Namespace) -> int:
    from cli.parser import open_library
    from engine.adapt.base import KNOWLEDGE_DIR, build_base, load_base
    from engine.scan.ucs import UcsTable

    if args.action == "show":
        base = load_base(folder=args.out)
        if base is None:
            print(f"no usable base knowledge in {args.out or KNOWLEDGE_DIR}")
            return 1
        a, c = base.adapter, base.categories
        print(f"file level: {a.stats.get('pairs')} described files ({a.audio_identity})")
        print(f"categories: {len(c.catids)} ({c.stats.get('pairs')} files taught them, "
              f"{c.stats.get('speech', 0)} of them as speech)")  # fmt: skip
        if base.classes is not None:
            heads = ", ".join(h.name for h in base.classes.heads)
            print(f"the audio model's classifiers: {heads} over "
                  f"{len(base.classes.categories)} UCS categories")  # fmt: skip
        return 0
    if not args.ucs:
        print("knowledge build needs --ucs TABLE (the categories' words)")
        return 2
    ucs = UcsTable.load(args.ucs)
    from engine.library import Library

    speech = Library(args.speech) if args.speech else None
    try:
        with open_library(args) as library:
            out = args.out or KNOWLEDGE_DIR
            base = build_base(library.catalog, ucs, out, speech=speech.catalog if speech else None)
    finally:
        if speech is not None:
            speech.close()
    spoken = base.categories.stats.get("speech", 0)
    print(f"learned from {base.adapter.stats['pairs']} described files"
          f"{f' and {spoken} spoken ones' if spoken else ''} -> {out}")  # fmt: skip
    return 0
