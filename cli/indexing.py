"""add, scan, adapt: bringing a library up to date (Library.index, Library.adapt)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cli.output import (
    EXIT_CANCELLED,
    StagedProgress,
    ctrl_c_cancels,
    print_json,
    printable,
)
from cli.parser import device, open_library


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("add", parents=[common], help="add folders to the library and scan them")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--no-scan", action="store_true", help="register without scanning")
    p.add_argument("--no-embed", action="store_true", help="scan only; embed later")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    cluster_flags(p)
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("scan", parents=[common], help="rescan all library folders (incremental)")
    p.add_argument("--no-embed", action="store_true", help="scan only; embed later")
    p.add_argument(
        "--retry-errors", action="store_true",
        help="read and embed again the files that failed, even if unchanged",
    )  # fmt: skip
    p.add_argument(
        "--forget-missing", action="store_true",
        help="forget files whose folders are gone (kept as offline otherwise)",
    )  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    cluster_flags(p)
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("adapt", parents=[common], help="learn text search from the names")
    p.add_argument("--json", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--seed", type=int, help="training seed (default 0)")
    ablation_flags(p)
    p.set_defaults(func=cmd_adapt)


def cluster_flags(p: argparse.ArgumentParser) -> None:
    """Decoding and embedding on a Ray cluster (add and scan)."""
    p.add_argument(
        "--cluster", metavar="ray[:ADDRESS]",
        help="decode and embed on a Ray cluster (ray: a local one, or the one RAY_ADDRESS "
        "names; ray:ADDRESS: that one); this machine still writes the library",
    )  # fmt: skip
    p.add_argument(
        "--path-map", action="append", default=[], metavar="LOCAL=WORKER",
        help="where the cluster's workers find a folder (repeatable), e.g. "
        "/Volumes/SFX=/mnt/sfx; checked on every node before indexing starts",
    )  # fmt: skip


def ablation_flags(p: argparse.ArgumentParser) -> None:
    """The flags that change what text-search learning does (adapt and eval)."""
    p.add_argument("--no-soft-labels", action="store_true", help="plain InfoNCE targets")
    p.add_argument(
        "--reliability", action=argparse.BooleanOptionalAction, default=None,
        help="weight pairs by cross-modal consistency",
    )  # fmt: skip
    p.add_argument("--no-knowledge", action="store_true", help="no UCS explanations/synonyms")
    p.add_argument(
        "--nearest-caption-only", action="store_true", help="only nearest-caption expansion"
    )


def adapt_options(args: argparse.Namespace, seed: int | None = None) -> Any:
    """AdaptOptions from the ablation flags shared by `adapt` and `eval`."""
    from engine.adapt.adapter import AdaptOptions

    changes: dict[str, Any] = {}
    if args.no_soft_labels:
        changes["soft_labels"] = False
    if args.reliability is not None:
        changes["reliability"] = args.reliability
    if args.no_knowledge:
        changes["knowledge"] = False
    if args.nearest_caption_only:
        changes |= {"heads": False, "kernel_weight": 0.0}
    if seed is not None:
        changes["seed"] = seed
    return AdaptOptions().replace(**changes)


def cmd_add(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        roots = library.add_folders(args.paths)
        for root in roots:
            print(f"added {printable(root)}", flush=True)
        if args.no_scan:
            return 0
        return _index(library, args, roots=roots)


def cmd_scan(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        if not library.folders():
            print("the library has no folders yet: sonarium add PATH", file=sys.stderr)
            return 1
        return _index(library, args)


def _index(library: Any, args: argparse.Namespace, roots: list[str] | None = None) -> int:
    with StagedProgress(args.quiet) as progress, ctrl_c_cancels() as cancel:
        report = library.index(
            roots=roots, embed=not args.no_embed, device=device(args), progress=progress,
            cancel=cancel, retry_errors=getattr(args, "retry_errors", False),
            forget_missing=getattr(args, "forget_missing", False),
            cluster=args.cluster, path_map=tuple(args.path_map),
        )  # fmt: skip
    _print_scan(report.scan)
    if report.no_model:
        print("no embedding model available: find-similar is off (see README, Models)")
    embedded = report.embed
    if embedded is not None and (embedded.files or embedded.failed):
        rate = embedded.audio_seconds / embedded.elapsed if embedded.elapsed else 0.0
        print(
            f"embedded {embedded.files} files ({embedded.audio_seconds / 60:.1f} min of audio) "
            f"in {embedded.elapsed:.1f}s, {rate:.0f} audio-s/s; {embedded.failed} failed"
        )
    if report.learned is not None:
        _print_learned(report.learned.stats, library.adapter_file())
    if report.learn_skipped:
        print(f"text search over sound not learned: {report.learn_skipped}")
    return EXIT_CANCELLED if report.cancelled else 0


def _print_scan(scan: Any) -> None:
    rate = (scan.added + scan.updated) / scan.elapsed if scan.elapsed else 0.0
    print(
        f"{'cancelled' if scan.cancelled else 'done'} in {scan.elapsed:.1f}s: "
        f"{scan.files_seen} files seen, {scan.added} added, {scan.updated} updated, "
        f"{scan.moved} moved, {scan.removed} removed, {scan.unchanged} unchanged, "
        f"{scan.errors} unreadable ({rate:.1f} files/s)"
        + (f"; loudness measured for {scan.measured} files" if scan.measured else "")
    )
    if scan.touched == 0 and not scan.errors:
        print("nothing changed")
    for warning in scan.warnings:
        print(f"warning: {printable(warning)}", file=sys.stderr)
    if scan.errors:
        print("see 'sonarium errors' for the unreadable files", file=sys.stderr)


def _print_learned(stats: dict[str, Any], path: Any) -> None:
    print(
        f"learned text search from {stats['pairs']} described files of {stats['files']} "
        f"in {stats['seconds']:.1f}s -> {path}"
    )


def cmd_adapt(args: argparse.Namespace) -> int:
    from engine.errors import Cancelled

    with open_library(args) as library, StagedProgress(args.quiet or args.json) as progress:
        with ctrl_c_cancels() as cancel:
            try:
                adapter = library.adapt(
                    adapt_options(args, args.seed),
                    progress=lambda p: progress(f"learning-{p.stage}", p),
                    cancel=cancel.is_set,
                )
            except Cancelled:
                progress.close()
                print("learning cancelled", file=sys.stderr)
                return EXIT_CANCELLED
        progress.close()
        stats = adapter.stats | {"adapter": str(library.adapter_file())}
    if args.json:
        print_json(stats)
    else:
        _print_learned(stats, stats["adapter"])
    return 0
