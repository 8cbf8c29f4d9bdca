"""Sonarium: the desktop app by default, plus command-line subcommands.

    python main.py                 open the app
    python main.py add PATH...     add folders to the library and scan them
    python main.py scan            rescan every library folder
    python main.py search QUERY    search by name and metadata
    python main.py similar FILE    find sounds that sound like FILE (or a region of it)
    python main.py eval Q.json     measure retrieval quality against judged queries
    python main.py info FILE       show what is known about a file
    python main.py folders         list library folders
    python main.py remove PATH     remove a folder from the library
    python main.py errors          list files that could not be read
    python main.py settings        show or change library settings
    python main.py screenshot OUT  render the app window to a PNG
    python main.py model [ID]      show or download the CLAP text-search model

Every command takes --library DIR (or $SONARIUM_LIBRARY).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from typing import Any

SUBCOMMANDS = (
    "add", "scan", "search", "similar", "eval", "adapt", "info", "folders", "remove", "errors",
    "settings", "screenshot", "model",
)  # fmt: skip


def _format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, sec = divmod(seconds, 60)
    return f"{int(minutes)}:{sec:05.2f}"


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def _open_library(args: argparse.Namespace):
    from engine.library import Library

    return Library(args.library)


class _ProgressBar:
    """A tqdm bar on stderr fed by engine progress snapshots (files_done/files_total);
    created on the first snapshot, closed on exit; nothing at all when quiet."""

    def __init__(self, quiet: bool, desc: str, postfix=None) -> None:
        self.quiet, self.desc, self.postfix = quiet, desc, postfix
        self.bar = None

    def update(self, p) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=p.files_total, unit="file", desc=self.desc or None,
                dynamic_ncols=True, file=sys.stderr,
            )  # fmt: skip
        self.bar.update(p.files_done - self.bar.n)
        if self.postfix:
            self.bar.set_postfix_str(self.postfix(p), refresh=False)

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def _ctrl_c_cancels():
    """Yields an Event that the first Ctrl+C sets, so work in flight finishes and the next
    run resumes; a second Ctrl+C interrupts at once."""
    cancel = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum, frame) -> None:
        cancel.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_scan(
    library, roots: list[str] | None, quiet: bool, no_embed: bool = False, device: str = "auto"
) -> int:
    def postfix(p) -> str:
        eta = p.eta_seconds
        return f"{p.bytes_per_second / 1e6:.1f} MB/s" + (
            f", ETA {_format_duration(eta)}" if eta is not None else ""
        )

    with _ProgressBar(quiet, "", postfix) as bar, _ctrl_c_cancels() as cancel:
        report = library.scan(roots, progress=bar.update, cancel=cancel)
    rate = (report.added + report.updated) / report.elapsed if report.elapsed else 0.0
    print(
        f"{'cancelled' if report.cancelled else 'done'} in {report.elapsed:.1f}s: "
        f"{report.files_seen} files seen, {report.added} added, {report.updated} updated, "
        f"{report.moved} moved, {report.removed} removed, {report.unchanged} unchanged, "
        f"{report.errors} unreadable ({rate:.1f} files/s)"
    )
    if report.touched == 0 and not report.errors:
        print("nothing changed")
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if report.errors:
        print("see 'python main.py errors' for the unreadable files", file=sys.stderr)
    if report.cancelled:
        return 130
    return 0 if no_embed else _run_embed(library, quiet, device)


def _run_embed(library, quiet: bool, device: str = "auto") -> int:
    """Embed what the scan added, for find-similar; resumable like the scan."""
    with _ProgressBar(quiet, "embedding") as bar, _ctrl_c_cancels() as cancel:
        report = library.embed(device=device, progress=bar.update, cancel=cancel)
    if report is None:
        print("no embedding model available: find-similar is off (see README, Models)")
        return 0
    rate = report.audio_seconds / report.elapsed if report.elapsed else 0.0
    if report.files or report.failed:
        print(
            f"embedded {report.files} files ({report.audio_seconds / 60:.1f} min of audio) in "
            f"{report.elapsed:.1f}s, {rate:.0f} audio-s/s; {report.failed} failed"
        )
    if report.cancelled:
        return 130
    if library.adapter_stale():
        return _run_adapt(library, quiet, as_json=False, must=False)
    return 0


def _run_adapt(library, quiet: bool, as_json: bool, must: bool, options=None) -> int:
    """Learn text search over sound from the library's names (engine/adapt/adapter.py)."""
    from engine.errors import LibraryError

    current: dict[str, _ProgressBar] = {}

    def progress(p) -> None:
        # One bar per stage (captions, encoding, training), closed when the next starts.
        bar = current.get(p.stage)
        if bar is None:
            for old in current.values():
                old.__exit__()
            current.clear()
            bar = current[p.stage] = _ProgressBar(quiet or as_json, f"learning: {p.stage}")
        bar.update(p)

    with _ctrl_c_cancels() as cancel:
        try:
            adapter = library.adapt(options, progress=progress, cancel=cancel.is_set)
        except InterruptedError:
            print("learning cancelled", file=sys.stderr)
            return 130
        except LibraryError as exc:
            if must:
                raise
            print(f"text search over sound not learned: {exc}")
            return 0
        finally:
            for bar in current.values():
                bar.__exit__()
    stats = adapter.stats | {"adapter": str(library.adapter_file())}
    if as_json:
        _print_json(stats)
    else:
        print(
            f"learned text search from {stats['pairs']} described files of {stats['files']} "
            f"in {stats['seconds']:.1f}s -> {stats['adapter']}"
        )
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    with _open_library(args) as library:
        return _run_adapt(library, args.quiet, args.json, must=True, options=_adapt_options(args))


def _adapt_options(args: argparse.Namespace):
    """AdaptOptions from the ablation flags shared by `adapt` and `eval`."""
    from engine.adapt.adapter import AdaptOptions

    changes = {}
    if getattr(args, "no_soft_labels", False):
        changes["soft_labels"] = False
    if getattr(args, "reliability", None) is not None:
        changes["reliability"] = args.reliability
    if getattr(args, "no_knowledge", False):
        changes["knowledge"] = False
    if getattr(args, "nearest_caption_only", False):
        changes |= {"heads": False, "kernel_weight": 0.0}
    if getattr(args, "seed", None) is not None and args.command == "adapt":
        changes["seed"] = args.seed
    return AdaptOptions().replace(**changes)


def cmd_add(args: argparse.Namespace) -> int:
    with _open_library(args) as library:
        roots = library.add_folders(args.paths)
        for root in roots:
            print(f"added {root}")
        if args.no_scan:
            return 0
        return _run_scan(library, roots, args.quiet, args.no_embed, args.device)


def cmd_scan(args: argparse.Namespace) -> int:
    with _open_library(args) as library:
        if not library.folders():
            print("the library has no folders yet: python main.py add PATH", file=sys.stderr)
            return 1
        return _run_scan(library, None, args.quiet, args.no_embed, args.device)


def cmd_search(args: argparse.Namespace) -> int:
    query = " ".join(args.query)
    mode = "content" if args.content_only else "keyword" if args.keyword_only else "auto"
    with _open_library(args) as library:
        if args.adapter:
            library.use_adapter(args.adapter)
        results = library.search(query, limit=args.limit, mode=mode)
    _print_results(results, args.json)
    return 0


def _print_results(results, as_json: bool) -> None:
    if as_json:
        _print_json([r.to_json() for r in results])
        return
    if not results:
        print("no results")
    for r in results:
        channels = {1: "mono", 2: "stereo"}.get(r.channels, f"{r.channels}ch")
        moment = f"  @{r.start:.1f}-{r.end:.1f}s" if r.start is not None else ""
        print(
            f"{r.score:7.3f}  {_format_duration(r.duration):>9}  {r.sample_rate / 1000:g}k "
            f"{channels:<6} {r.format.lower():<5} {r.path}{moment}"
        )


def cmd_similar(args: argparse.Namespace) -> int:
    with _open_library(args) as library:
        results = library.similar(
            args.file, start=args.start, end=args.end, limit=args.limit,
            space=args.space, device=args.device,
        )  # fmt: skip
    _print_results(results, args.json)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from engine.eval.metrics import evaluate_by_example, evaluate_text, load_queries, relative_ids

    try:
        queries = load_queries(args.queries)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with _open_library(args) as library:
        if args.hide_names is not None:
            return _eval_hidden(args, library, queries)
        if args.adapter:
            library.use_adapter(args.adapter)
        ids = relative_ids(library.catalog)
        if args.by_example:
            from engine.search.similar import SimilarError

            def by_example(space: str):
                return evaluate_by_example(
                    queries, ids, lambda fid: library.similar_ids(fid, 11, space)
                )

            try:
                result = by_example(args.space)
            except SimilarError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            result["space"] = args.space
            # Baselines measured in the same run, on the same examples.
            baselines = {"random": evaluate_by_example(queries, ids, _random_ranker(ids))}
            if args.space != "mfcc":
                with contextlib.suppress(SimilarError):
                    baselines["mfcc"] = by_example("mfcc")
            result["baselines"] = {k: v["overall"] for k, v in baselines.items()}
            if "mfcc" in baselines and baselines["mfcc"]["overall"]["mAP@10"] > 0:
                result["ratio_vs_mfcc"] = (
                    result["overall"]["mAP@10"] / baselines["mfcc"]["overall"]["mAP@10"]
                )
        else:

            def by_text(mode: str):
                return evaluate_text(
                    queries, ids, lambda q: [r.id for r in library.search(q, 10, mode=mode)]
                )

            mode = "content" if args.content_only else "auto"
            if library.text_space() is None:
                mode = "keyword"
                if args.content_only:
                    print("error: no content index (run 'python main.py scan')", file=sys.stderr)
                    return 2
            result = by_text(mode)
            result["mode"] = {"auto": "hybrid", "content": "content", "keyword": "keyword"}[mode]
            # Baselines measured in the same run, on the same queries.
            others = [m for m in ("keyword", "content") if m != mode and mode != "keyword"]
            result["baselines"] = {m: by_text(m)["overall"] for m in others}
    if args.json:
        _print_json(result)
        return 0
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
    return 0


def _eval_hidden(args: argparse.Namespace, library, queries) -> int:
    """eval --hide-names: adaptation measured on files whose names are hidden."""
    from engine.errors import ModelUnavailable
    from engine.eval.hidden import evaluate_hidden

    def log(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr)

    try:
        result = evaluate_hidden(
            library.catalog, queries, args.hide_names, args.seed, _adapt_options(args),
            ucs=library.ucs_table(), ablations=args.ablations, log=log,
        )  # fmt: skip
    except (ModelUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    keyword = result["keyword"]["overall"]
    for config in result["configs"].values():
        base = keyword["AP@10"]
        config["hybrid_vs_keyword"] = config["hybrid"]["overall"]["AP@10"] / base if base else None
    if args.json:
        _print_json(result)
        return 0
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
    return 0


def _random_ranker(ids: dict[str, int]):
    """Chance level: a fixed-seed random ranking of the library for each example."""
    import random

    pool = sorted(set(ids.values()))

    def rank(file_id: int) -> list[int]:
        return random.Random(file_id).sample(pool, min(11, len(pool)))

    return rank


def cmd_info(args: argparse.Namespace) -> int:
    with _open_library(args) as library:
        info = library.info(args.file)
    if args.json:
        _print_json(info)
        return 0
    for key, value in info.items():
        if value is None or value == {} or value == []:
            continue
        if key == "duration":
            value = _format_duration(value)
        print(f"{key:>18}: {value}")
    return 0


def cmd_folders(args: argparse.Namespace) -> int:
    with _open_library(args) as library:
        folders = library.folders()
    if args.json:
        _print_json(folders)
        return 0
    if not folders:
        print("no folders: python main.py add PATH")
    for f in folders:
        hours = f["duration"] / 3600
        print(f"{f['files']:7d} files ({f['errors']} unreadable, {hours:.1f} h)  {f['path']}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    with _open_library(args) as library:
        removed = library.remove_folder(args.path)
    print(f"removed {args.path} ({removed} files forgotten; nothing deleted from disk)")
    return 0


def cmd_errors(args: argparse.Namespace) -> int:
    with _open_library(args) as library:
        errors = library.errors()
    if args.json:
        _print_json(errors)
        return 0
    if not errors:
        print("no unreadable files")
    for e in errors:
        print(f"{e['path']}\n    {e['error']}")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    with _open_library(args) as library:
        if args.ucs_table is not None:
            library.set_ucs_table(args.ucs_table or None)
            print("UCS table " + ("cleared" if not args.ucs_table else f"set: {args.ucs_table}"))
            print("run 'python main.py scan' to apply it to files already scanned")
        print(f"library: {library.dir}")
        print(f"ucs_table: {library.catalog.get_setting('ucs_table') or '(none)'}")
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    """Show which CLAP model text search uses and whether it is here; download it."""
    from engine.errors import ModelUnavailable
    from engine.models.clap import model as clap_model

    name = args.model_id or clap_model.configured_model()
    if args.download:
        from tqdm import tqdm

        bar = tqdm(unit="B", unit_scale=True, desc=f"downloading {name}", file=sys.stderr)

        def progress(done: int, total: int | None) -> None:
            if total:
                bar.total = total
            bar.update(done - bar.n)

        try:
            folder = clap_model.download(name, progress)
        except ModelUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            bar.close()
        print(f"downloaded to {folder}")
    try:
        resolved = clap_model.resolve_local(name)
    except ModelUnavailable as exc:
        print(f"{name}: not available here\n  {exc}")
        return 1
    print(f"{name}: ready ({resolved.folder}, revision {resolved.revision})")
    print("run 'python main.py scan --model ...' to embed the library with it")
    return 0


def cmd_screenshot(args: argparse.Namespace) -> int:
    from gui.app import screenshot

    code = screenshot(args.out, args.query or "", args.library)
    if code == 0:
        print(f"saved {args.out}")
    return code


def _ablation_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-soft-labels", action="store_true", help="plain InfoNCE targets")
    p.add_argument(
        "--reliability", action=argparse.BooleanOptionalAction, default=None,
        help="weight pairs by cross-modal consistency",
    )  # fmt: skip
    p.add_argument("--no-knowledge", action="store_true", help="no UCS explanations/synonyms")
    p.add_argument(
        "--nearest-caption-only", action="store_true", help="only nearest-caption expansion"
    )


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--library", metavar="DIR", help="library folder (default: $SONARIUM_LIBRARY or user data)"
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    common.add_argument(
        "--device", default="auto", choices=("auto", "cpu", "cuda", "mps"), help="model device"
    )
    common.add_argument(
        "--precision", choices=("auto", "float32"), default=None,
        help="model precision: auto (bfloat16 on CPUs with AMX/AVX-512 BF16, float16 on "
        "CUDA) or float32 everywhere (default: $SONARIUM_PRECISION or auto)",
    )  # fmt: skip
    common.add_argument(
        "--model",
        metavar="ID_OR_PATH",
        help="CLAP model for text search: a hub id in the local cache or a folder "
        "(default: $SONARIUM_CLAP_MODEL or laion/clap-htsat-unfused)",
    )
    parser = argparse.ArgumentParser(
        prog="sonarium", description="Sonarium sound-library browser.", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("add", parents=[common], help="add folders to the library and scan them")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--no-scan", action="store_true", help="register without scanning")
    p.add_argument("--no-embed", action="store_true", help="scan only; embed later")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("scan", parents=[common], help="rescan all library folders (incremental)")
    p.add_argument("--no-embed", action="store_true", help="scan only; embed later")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("similar", parents=[common], help="find sounds like FILE")
    p.add_argument("file", metavar="FILE", help="a library file or any audio file")
    p.add_argument("--start", type=float, help="region start in seconds")
    p.add_argument("--end", type=float, help="region end in seconds")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--space", default="aisfx", choices=("aisfx", "mfcc", "clap"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser("eval", parents=[common], help="measure retrieval against judged queries")
    p.add_argument("queries", metavar="QUERIES.json")
    p.add_argument("--by-example", action="store_true", help="query by example (find-similar)")
    p.add_argument("--content-only", action="store_true", help="text eval: rank by sound only")
    p.add_argument("--space", default="aisfx", choices=("aisfx", "mfcc", "clap"))
    p.add_argument("--json", action="store_true")
    p.add_argument("--adapter", metavar="FILE", help="text search through this adapter file")
    p.add_argument(
        "--hide-names", type=float, metavar="FRACTION",
        help="hide the names and metadata of this share of files, learn from the rest",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=1, help="which files --hide-names hides")
    p.add_argument("--ablations", action="store_true", help="with --hide-names: every ablation")
    _ablation_flags(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("adapt", parents=[common], help="learn text search from the names")
    p.add_argument("--json", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--seed", type=int, help="training seed (default 0)")
    _ablation_flags(p)
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser("search", parents=[common], help="search the library")
    p.add_argument("query", nargs="+", metavar="QUERY")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument("--content-only", action="store_true", help="rank by sound only")
    p.add_argument("--keyword-only", action="store_true", help="rank by names/metadata only")
    p.add_argument("--adapter", metavar="FILE", help="text search through this adapter file")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("info", parents=[common], help="show what is known about a file")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("folders", parents=[common], help="list library folders")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_folders)

    p = sub.add_parser("remove", parents=[common], help="remove a folder from the library")
    p.add_argument("path", metavar="PATH")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("errors", parents=[common], help="list files that could not be read")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_errors)

    p = sub.add_parser("settings", parents=[common], help="show or change library settings")
    p.add_argument("--ucs-table", metavar="FILE", help="UCS table (JSON/CSV); '' to clear")
    p.set_defaults(func=cmd_settings)
    p = sub.add_parser("model", parents=[common], help="show or download the CLAP model")
    p.add_argument("model_id", nargs="?", metavar="ID_OR_PATH")
    p.add_argument("--download", action="store_true", help="download it from the Hub")
    p.set_defaults(func=cmd_model)

    p = sub.add_parser("screenshot", parents=[common], help="render the window to a PNG")
    p.add_argument("out", metavar="OUT.png")
    p.add_argument("--query", default="", help="search to show")
    p.set_defaults(func=cmd_screenshot)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if getattr(args, "model", None):
        # One place decides the CLAP model for this process and its index worker.
        os.environ["SONARIUM_CLAP_MODEL"] = args.model
    if getattr(args, "precision", None):
        os.environ["SONARIUM_PRECISION"] = args.precision  # engine.models.device reads it
    if args.command is None:
        from gui.app import run_app

        return run_app(args.library)
    from engine.errors import LibraryError, QueryError

    try:
        return args.func(args)
    except (LibraryError, QueryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
