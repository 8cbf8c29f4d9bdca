"""search and similar: finding sounds by words or by example."""

from __future__ import annotations

import argparse
from typing import Any

from cli.output import print_results
from cli.parser import device, open_library, result_count, seconds, space_option
from engine import config


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("search", parents=[common], help="search the library")
    p.add_argument("query", nargs="+", metavar="QUERY")
    p.add_argument("--limit", type=result_count, default=20)
    p.add_argument("--json", action="store_true", help="print results as JSON")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--content-only", action="store_true", help="rank by sound only")
    mode.add_argument("--keyword-only", action="store_true", help="rank by names/metadata only")
    p.add_argument("--adapter", metavar="FILE", help="text search through this adapter file")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("similar", parents=[common], help="find sounds like FILE")
    p.add_argument("file", metavar="FILE", help="a library file or any audio file")
    p.add_argument("--start", type=seconds, help="region start in seconds")
    p.add_argument("--end", type=seconds, help="region end in seconds")
    p.add_argument("--limit", type=result_count, default=20)
    space_option(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_similar)


def cmd_search(args: argparse.Namespace) -> int:
    query = " ".join(args.query)
    mode = "content" if args.content_only else "keyword" if args.keyword_only else "auto"
    with open_library(args) as library:
        if args.adapter:
            library.use_adapter(args.adapter)
        results = library.search(query, limit=args.limit, mode=mode)
    print_results(results, args.json)
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        results = library.similar(
            args.file, start=args.start, end=args.end, limit=args.limit,
            space=args.space or config.value("similar_space"), device=device(args),
        )  # fmt: skip
    print_results(results, args.json)
    return 0
