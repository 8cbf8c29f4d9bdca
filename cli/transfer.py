"""export: files or a region of them rendered as a session wants them (rate, bit depth,
format, channels, fades, normalisation, handles) into a folder; loudness: BS.1770
integrated loudness and true peak of files or a region. No library needed."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from cli.output import printable
from cli.parser import seconds
from engine import config


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "export", parents=[common],
        help="render files (or a region) converted into a folder; the transfer settings "
        "($SONARIUM_TRANSFER_*) are the defaults",
    )  # fmt: skip
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    p.add_argument("--start", type=seconds, metavar="S", help="region start (seconds)")
    p.add_argument("--end", type=seconds, metavar="S", help="region end (seconds)")
    p.add_argument("--rate", metavar="HZ", choices=config.SETTINGS["transfer_rate"].choices)
    p.add_argument("--bits", choices=config.SETTINGS["transfer_bits"].choices)
    p.add_argument("--format", choices=config.SETTINGS["transfer_format"].choices)
    layout = p.add_mutually_exclusive_group()
    layout.add_argument("--mono", action="store_true", help="the channels' average")
    layout.add_argument("--split", action="store_true", help="a file per channel")
    p.add_argument("--fade-in", type=seconds, metavar="S")
    p.add_argument("--fade-out", type=seconds, metavar="S")
    p.add_argument("--normalize", metavar="LEVEL", help="-1dBTP, -0.1dBFS, -23LUFS or off")
    p.add_argument("--handles", type=seconds, metavar="S", help="added around a region")
    p.add_argument(
        "--name", metavar="PATTERN",
        help="file names: {name} {start} {end} {rate} {bits} {n}, e.g. '{name}_{rate}'",
    )  # fmt: skip
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "loudness", parents=[common],
        help="integrated loudness (LUFS), true peak (dBTP) and sample peak of files",
    )  # fmt: skip
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--start", type=seconds, metavar="S")
    p.add_argument("--end", type=seconds, metavar="S")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_loudness)


def joined_levels(argv: list[str]) -> list[str]:
    """`--normalize -23LUFS` as `--normalize=-23LUFS`: argparse takes a value that starts
    with "-" (and is not a plain number) for an option."""
    out: list[str] = []
    items = iter(argv)
    for item in items:
        if item == "--normalize":
            value = next(items, None)
            out.append(item if value is None else f"{item}={value}")
        else:
            out.append(item)
    return out


def transfer_of(args: argparse.Namespace):  # -> engine.audio.transfer.Transfer
    """The transfer settings with the command's flags over them."""
    from engine.audio.transfer import Transfer

    t = Transfer.from_settings()
    changes: dict[str, Any] = {}
    if args.rate:
        changes["rate"] = None if args.rate == "source" else int(args.rate)
    if args.bits:
        changes["bits"] = None if args.bits == "source" else args.bits
    if args.format:
        changes["format"] = args.format
    if args.mono or args.split:
        changes["layout"] = "mono" if args.mono else "split"
    for name in ("fade_in", "fade_out", "handles"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.normalize:
        changes["normalize"] = None if args.normalize.lower() == "off" else args.normalize
    return replace(t, **changes)


def _region(args: argparse.Namespace) -> tuple[float | None, float | None]:
    from engine.errors import TransferError

    if args.start is not None and args.end is not None and args.end <= args.start:
        raise TransferError(f"--end ({args.end}) must come after --start ({args.start})")
    return args.start, args.end


def cmd_export(args: argparse.Namespace) -> int:
    from engine.audio.transfer import pattern_name, render

    t = transfer_of(args)
    start, end = _region(args)
    out = Path(args.out)
    done: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    for n, name in enumerate(args.files, start=1):
        try:
            named = None
            if args.name:
                import soundfile as sf

                rate = t.rate or int(sf.info(name).samplerate)
                named = pattern_name(args.name, Path(name), start, end, t, rate, n)
            r = render(name, out, t, start, end, named)
        except (OSError, ValueError, RuntimeError) as exc:  # soundfile raises RuntimeError
            failed.append({"file": name, "error": str(exc)})
            continue
        done.append({"file": name, "written": [str(p) for p in r.paths], "rate": r.rate,
                     "channels": r.channels, "gain_db": round(r.gain_db, 2),
                     "limited_by_peak": r.limited})  # fmt: skip
    if args.json:
        print(json.dumps({"exported": done, "failed": failed}, indent=2))
    else:
        for d in done:
            gain = f", gain {d['gain_db']:+.2f} dB" if d["gain_db"] else ""
            held = " (held at -1 dBTP)" if d["limited_by_peak"] else ""
            for path in d["written"]:
                print(f"{printable(path)}  {d['rate']} Hz, {d['channels']} ch{gain}{held}")
        for f in failed:
            print(f"not exported: {printable(f['file'])}: {printable(f['error'])}", file=sys.stderr)
    return 1 if failed else 0


def cmd_loudness(args: argparse.Namespace) -> int:
    from engine.audio.loudness import measure

    start, end = _region(args)
    rows: list[dict[str, Any]] = []
    failed = 0
    for name in args.files:
        try:
            rows.append({"file": name, **measure(name, start, end).to_json()})
        except (OSError, ValueError, RuntimeError) as exc:
            rows.append({"file": name, "error": str(exc)})
            failed += 1
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            if "error" in row:
                print(f"{printable(row['file'])}: {printable(row['error'])}", file=sys.stderr)
                continue

            def show(v: float | None, unit: str) -> str:
                return "silent" if v is None else f"{v:.1f} {unit}"

            levels = (
                show(row["integrated_lufs"], "LUFS"),
                show(row["true_peak_dbtp"], "dBTP"),
                show(row["sample_peak_dbfs"], "dBFS"),
            )
            print("  ".join(f"{v:>11}" for v in levels) + f"  {printable(row['file'])}")
    return 1 if failed else 0
