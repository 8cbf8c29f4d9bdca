"""Printing for the CLI: JSON and text, durations, progress bars, Ctrl+C. Main thread."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from engine.catalog.text import printable

__all__ = ["printable"]  # the CLI escapes what it prints with the catalog's own rule

# Exit codes: 2 for an error the user can fix, 130 for a cancelled run (like a shell).
EXIT_ERROR = 2
EXIT_CANCELLED = 130


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, sec = divmod(seconds, 60)
    return f"{int(minutes)}:{sec:05.2f}"


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def error(message: str, how: str | None = None) -> int:
    """Print an error for the user on stderr (and the CLI's way to fix it); returns the
    exit code for it."""
    print(f"error: {printable(message)}", file=sys.stderr)
    if how:
        print(f"  {how}", file=sys.stderr)
    return EXIT_ERROR


def hint(exc: BaseException) -> str | None:
    """The command-line "how" for an engine error (the engine's message says what)."""
    from engine import errors

    hints = (
        (errors.NotIndexed, "run 'sonarium scan' (or 'sonarium add PATH' for a new folder)"),
        (errors.NothingToLearn, "name, describe or tag more files, then 'sonarium adapt'"),
        (errors.AdapterInvalid, "run 'sonarium adapt' to learn it again"),
        (errors.ModelUnavailable, "'bash setup.sh' installs aisfx and the sentence encoder"),
    )
    return next((how for kind, how in hints if isinstance(exc, kind)), None)


def print_listing(
    items: list[dict[str, Any]], as_json: bool, empty: str, line: Callable[[Any], str]
) -> None:
    """A list of engine rows: JSON, or one ``line(item)`` each (``empty`` when none)."""
    if as_json:
        print_json(items)
        return
    if not items:
        print(empty)
    for item in items:
        print(line({k: printable(v) if isinstance(v, str) else v for k, v in item.items()}))


def print_results(results: list[Any], as_json: bool) -> None:
    """Search or find-similar results, one line each (or a JSON list)."""
    if as_json:
        print_json([r.to_json() for r in results])
        return
    if not results:
        print("no results")
    matches = sum(1 for r in results if getattr(r, "match", True))
    for i, r in enumerate(results):
        if i == matches and matches < len(results):
            print(f"-- {len(results) - matches} more that sound alike --")
        channels = {1: "mono", 2: "stereo"}.get(r.channels, f"{r.channels}ch")
        moment = f"  @{r.start:.1f}-{r.end:.1f}s" if r.start is not None else ""
        if getattr(r, "offline", False):
            moment += "  (offline)"
        print(
            f"{r.score:7.3f}  {format_duration(r.duration):>9}  {r.sample_rate / 1000:g}k "
            f"{channels:<6} {r.format.lower():<5} {printable(r.path)}{moment}"
        )


class ProgressBar:
    """A tqdm bar on stderr fed by engine progress snapshots (files_done/files_total);
    created on the first snapshot, closed on exit; nothing at all when quiet."""

    def __init__(self, quiet: bool, desc: str, postfix: Callable[[Any], str] | None = None) -> None:
        self.quiet, self.desc, self.postfix = quiet, desc, postfix
        self.bar: Any = None

    def update(self, p: Any) -> None:
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

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StagedProgress:
    """One bar per indexing stage ("scanning", "embedding", "learning-..."), each closed
    when the next stage starts; fits Library.index's progress(stage, snapshot)."""

    LABELS = {"scanning": ""}

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.stage: str | None = None
        self.bar: ProgressBar | None = None

    def __call__(self, stage: str, snapshot: Any) -> None:
        if stage != self.stage:
            self.close()
            self.stage = stage
            label = self.LABELS.get(stage, stage.replace("-", ": "))
            postfix = _scan_postfix if stage == "scanning" else None
            self.bar = ProgressBar(self.quiet, label, postfix)
        assert self.bar is not None
        self.bar.update(snapshot)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> StagedProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _scan_postfix(p: Any) -> str:
    eta = p.eta_seconds
    return f"{p.bytes_per_second / 1e6:.1f} MB/s" + (
        f", ETA {format_duration(eta)}" if eta is not None else ""
    )


@contextlib.contextmanager
def ctrl_c_cancels() -> Iterator[threading.Event]:
    """Yields an Event that the first Ctrl+C sets, so work in flight finishes and the next
    run resumes; a second Ctrl+C interrupts at once."""
    cancel = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum: int, frame: object) -> None:
        cancel.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, previous)
