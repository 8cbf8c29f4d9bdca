"""eval: retrieval quality on judged queries (engine/eval/runs.py computes it)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cli.indexing import ablation_flags, adapt_options
from cli.output import print_json
from cli.parser import fraction, open_library, space_option
from engine import config


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("eval", parents=[common], help="measure retrieval against judged queries")
    p.add_argument("queries", metavar="QUERIES.json")
    p.add_argument("--by-example", action="store_true", help="query by example (find-similar)")
    p.add_argument("--content-only", action="store_true", help="text eval: rank by sound only")
    space_option(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--adapter", metavar="FILE", help="text search through this adapter file")
    p.add_argument(
        "--hide-names", type=fraction, metavar="FRACTION",
        help="hide the names and metadata of this share of files, learn from the rest",
    )  # fmt: skip
    p.add_argument(
        "--no-base", action="store_true", help="without the base knowledge shipped with Sonarium"
    )
    p.add_argument("--seed", type=int, default=1, help="which files --hide-names hides")
    p.add_argument("--ablations", action="store_true", help="with --hide-names: every ablation")
    ablation_flags(p)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from engine.eval.metrics import load_queries

    queries = load_queries(args.queries)
    with open_library(args) as library:
        library.use_base = not args.no_base
        if args.hide_names is not None:
            result = library.evaluate_hidden(
                queries, args.hide_names, args.seed, adapt_options(args),
                ablations=args.ablations, log=None if args.json else _log,
            )  # fmt: skip
            if args.json:
                print_json(result)
            else:
                _print_hidden(result, args)
            return 0
        if args.adapter:
            library.use_adapter(args.adapter)
        if args.by_example:
            space = args.space or config.value("similar_space")
            result = library.evaluate_by_example(queries, space=space)
        else:
            result = library.evaluate_text(queries, content_only=args.content_only)
    if args.json:
        print_json(result)
    else:
        _print_run(result)
    return 0


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def _print_run(result: dict[str, Any]) -> None:
    for q in result["queries"]:
        metrics = "  ".join(f"{k}={v:.3f}" for k, v in q.items() if isinstance(v, float))
        print(f"{q['query'][:40]:<40} {metrics}")
    overall = "  ".join(
        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in result["overall"].items()
    )
    print(f"overall ({result.get('space', result.get('mode'))}): {overall}")
    for name, base in result.get("baselines", {}).items():
        metrics = "  ".join(f"{k}={v:.3f}" for k, v in base.items() if isinstance(v, float))
        print(f"baseline ({name}): {metrics}")
    if "ratio_vs_mfcc" in result:
        print(f"{result['space']} / mfcc mAP@10: {result['ratio_vs_mfcc']:.2f}x")


def _print_hidden(result: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"{result['hidden']} of {result['files']} files hidden (fraction {args.hide_names}, "
        f"seed {args.seed}); content: hidden files only; hybrid and keyword: all files"
    )
    print(f"{'configuration':<24} {'content mAP@10':>14} {'R@10':>6} {'hybrid mAP@10':>14} "
          f"{'R@10':>6} {'x keyword':>9} {'train s':>8}")  # fmt: skip
    kw = result["keyword"]["overall"]
    print(f"{'keyword only':<24} {'':>14} {'':>6} {kw['AP@10']:>14.3f} {kw['R@10']:>6.3f}")
    for name, c in result["configs"].items():
        co, hy = c["content"]["overall"], c["hybrid"]["overall"]
        ratio = f"{c['hybrid_vs_keyword']:.2f}" if c["hybrid_vs_keyword"] else "-"
        print(
            f"{name:<24} {co['AP@10']:>14.3f} {co['R@10']:>6.3f} {hy['AP@10']:>14.3f} "
            f"{hy['R@10']:>6.3f} {ratio:>9} {c['train_seconds']:>8.1f}"
        )
