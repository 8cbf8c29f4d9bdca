"""duplicates: the same sound more than once in the library (exact copies, and with
--near re-encoded, re-levelled, trimmed or resampled ones); remove copies from the
library or move them to the trash."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cli.output import error, format_duration, printable
from cli.parser import open_library, space_option


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "duplicates", parents=[common],
        help="list groups of duplicate sounds; --remove/--trash copies (with --yes)",
    )  # fmt: skip
    p.add_argument(
        "--near", action="store_true",
        help="also near duplicates: re-encoded, re-levelled, trimmed, resampled",
    )  # fmt: skip
    space_option(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--remove", nargs="+", metavar="FILE",
                   help="forget these files (scans leave them out from now on)")  # fmt: skip
    p.add_argument("--trash", action="store_true", help="with --remove: move them to the trash")
    p.add_argument("--yes", action="store_true", help="confirm --remove")
    p.set_defaults(func=cmd_duplicates)


def cmd_duplicates(args: argparse.Namespace) -> int:
    from engine import config

    if args.remove:
        if not args.yes:
            return error(
                f"--remove would {'trash' if args.trash else 'forget'} {len(args.remove)} files",
                "add --yes to confirm",
            )
        with open_library(args) as library:
            if args.trash:
                report = library.trash(args.remove)
                for path in report["trashed"]:
                    print(f"moved to the trash: {printable(path)}")
                for f in report["failed"]:
                    print(f"not trashed: {printable(f['path'])}: {printable(f['error'])}",
                          file=sys.stderr)  # fmt: skip
                return 1 if report["failed"] else 0
            for path in library.remove_from_library(args.remove):
                print(f"removed from the library: {printable(path)}")
        return 0
    with open_library(args) as library:
        space = args.space or config.value("similar_space")
        groups = library.duplicates(near=args.near, space=space)
    if args.json:
        print(json.dumps([g.to_json() for g in groups], indent=2, ensure_ascii=False))
        return 0
    if not groups:
        print("no duplicates" + ("" if args.near else " (add --near for near duplicates)"))
        return 0
    for g in groups:
        print(f"{g.kind} duplicates ({len(g.files)} copies):")
        for f in g.files:
            mark = "keep" if f["id"] == g.keep else ("same" if f["exact"] else
                                                    f"{f['similarity'] or 0:.3f}")  # fmt: skip
            print(f"  {mark:>5}  {format_duration(f['duration'])}  {f['sample_rate']} Hz  "
                  f"{f['format']}  {printable(f['path'])}")  # fmt: skip
    copies = sum(len(g.files) - 1 for g in groups)
    print(f"{len(groups)} groups, {copies} copies beyond the one to keep")
    return 0
