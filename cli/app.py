"""screenshot: render the app window with a query's results to a PNG (works offscreen)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("screenshot", parents=[common], help="render the window to a PNG")
    p.add_argument("out", metavar="OUT.png")
    p.add_argument("--query", default="", help="search to show")
    p.set_defaults(func=cmd_screenshot)


def cmd_screenshot(args: argparse.Namespace) -> int:
    from gui.app import screenshot

    code = screenshot(args.out, args.query or "", getattr(args, "library", None))
    if code == 0:
        print(f"saved {args.out}")
    return code
