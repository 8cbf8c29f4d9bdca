"""The entry point: the app without a command, else the CLI. Main thread."""

from __future__ import annotations

import logging
import sys

from cli.output import EXIT_CANCELLED, error, hint
from cli.parser import build_parser
from engine import config


def main(argv: list[str] | None = None) -> int:
    from cli.metadata import with_default_action
    from cli.transfer import joined_levels

    given = joined_levels(with_default_action(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(given)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Explicit choices become this process's settings, which the indexing child process
    # and every engine module then read through engine.config.
    for name in ("clap_model", "precision", "device"):
        config.export(name, getattr(args, name, None))
    if args.command is None:
        from gui.app import run_app

        return run_app(getattr(args, "library", None))
    from engine.errors import Cancelled, SonariumError

    try:
        return args.func(args)
    except Cancelled as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CANCELLED
    except SonariumError as exc:
        return error(str(exc), hint(exc))
    except BrokenPipeError:
        return 0


def run() -> None:
    """The `sonarium` console script."""
    sys.exit(main())
