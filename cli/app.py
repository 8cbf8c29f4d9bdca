"""screenshot: render the app window (or the duplicates dialog) with a query's results to a PNG
(works offscreen): a result selected, waveform or spectrogram, a size and a theme."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("screenshot", parents=[common], help="render the window to a PNG")
    p.add_argument("out", metavar="OUT.png")
    p.add_argument("--query", default="", help="search to show")
    p.add_argument("--select", type=int, default=0, metavar="N", help="result to select (0: first)")
    p.add_argument("--view", choices=("waveform", "spectrogram", "both"), default="waveform")
    p.add_argument("--size", type=_size, default=None, metavar="WxH", help="window size")
    p.add_argument("--theme", choices=("dark", "light"), default="dark")
    p.add_argument("--duplicates", action="store_true", help="the duplicates dialog instead")
    p.set_defaults(func=cmd_screenshot)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not WIDTHxHEIGHT: {text!r}") from None
    if not (320 <= w <= 8192 and 240 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"from 320x240 to 8192x8192, not {text}")
    return w, h


def cmd_screenshot(args: argparse.Namespace) -> int:
    from gui.app import screenshot

    code = screenshot(
        args.out, args.query or "", getattr(args, "library", None), select=args.select,
        view=args.view, size=args.size, theme=args.theme, duplicates=args.duplicates,
    )  # fmt: skip
    if code == 0:
        print(f"saved {args.out}")
    return code
