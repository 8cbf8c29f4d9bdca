"""The CLI's argument parser: global options declared once, commands from their modules.

Global options come from engine.config's settings that have a ``cli_flag``. They may be
given before or after the command (``sonarium --library X folders`` and ``sonarium
folders --library X`` mean the same): the copies on each command default to SUPPRESS,
so an option given before the command is never overwritten by the command's default.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from engine import config

# --space is a per-command option (similar, eval), not a global one.
GLOBAL_SETTINGS = tuple(
    s for s in config.SETTINGS.values() if s.cli_flag and s.env and s.name != "similar_space"
)


def _add_globals(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    for s in GLOBAL_SETTINGS:
        assert s.cli_flag is not None and s.env is not None
        parser.add_argument(
            s.cli_flag, dest=s.name, metavar=s.metavar, choices=s.choices, default=default,
            help=f"{s.help} (default: ${s.env}" + (f" or {s.default})" if s.default else ")"),
        )  # fmt: skip
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="log details to stderr"
    )


def space_option(p: argparse.ArgumentParser) -> None:
    """--space for the commands that choose a find-similar space."""
    s = config.SETTINGS["similar_space"]
    p.add_argument(
        s.cli_flag, dest="space", choices=s.choices, default=None,
        help=f"{s.help} (default: ${s.env} or {s.default})",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from cli import (
        app,
        collections,
        duplicates,
        evaluate,
        find,
        indexing,
        knowledge,
        library,
        metadata,
        models,
        transfer,
    )  # fmt: skip

    common = argparse.ArgumentParser(add_help=False)
    _add_globals(common, suppress=True)
    parser = argparse.ArgumentParser(prog="sonarium", description="Sonarium sound-library browser.")
    _add_globals(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (
        indexing, find, evaluate, library, metadata, collections, transfer, duplicates, models,
        knowledge, app,
    ):  # fmt: skip
        module.register(sub, common)
    metadata.register_rename(sub, common)
    metadata.register_suggest(sub, common)
    return parser


def subcommands() -> tuple[str, ...]:
    """Every command name, in the order `sonarium --help` lists them."""
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return tuple(action.choices)


def open_library(args: argparse.Namespace):  # -> engine.library.Library
    """The library the command acts on: --library, else $SONARIUM_LIBRARY, else default."""
    from engine.library import Library

    return Library(getattr(args, "library", None))


def device(args: argparse.Namespace) -> str:
    return getattr(args, "device", None) or config.value("device")


# -- argument types: a bad value is refused by argparse with a usage message -----------

MAX_RESULTS = 100_000  # a --limit beyond this would only size memory


def _checked(
    convert: Callable[[str], Any], noun: str, ok: Callable[[Any], bool], rule: str
) -> Callable[[str], Any]:
    """An argparse type: ``convert`` the text (else "not <noun>"), then ``ok`` or
    "<rule>, not <text>"."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{rule}, not {text}")
        return value

    return parse


# --limit: a whole number of results, 1 to MAX_RESULTS.
result_count = _checked(
    int, "a whole number", lambda v: 1 <= v <= MAX_RESULTS, f"must be from 1 to {MAX_RESULTS}"
)
# --start/--end: a finite, non-negative number of seconds.
seconds = _checked(
    float, "a number of seconds", lambda v: math.isfinite(v) and v >= 0,
    "must be 0 seconds or more",
)  # fmt: skip
# --hide-names: a share above 0, up to 1 (every name hidden: the never-seen protocol).
fraction = _checked(float, "a number", lambda v: 0 < v <= 1, "must be above 0, at most 1")
