"""Scanning and embedding in a child process, driven over stdin/stdout.

    python -m engine.index_worker --library DIR [--add PATH ...] [--no-embed] [--retry-errors]
        [--space S ...]

The desktop app runs indexing here rather than in a thread: decoding, metadata parsing
and the model all hold Python's GIL for stretches, and in-process they starved the GUI
thread (docs/measurements.md). A crash in a
decoder also costs only this process. Protocol, one JSON object per line:
- stdout: {"event": "progress", "stage", "done", "total", "rate", "eta"},
  then {"event": "finished", ...summary} or {"event": "error", "message"};
- stdin: "pause", "resume" or "cancel".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any

PROGRESS_INTERVAL = 0.1


class _Emitter:
    def __init__(self) -> None:
        self._last = 0.0
        self._lock = threading.Lock()

    def send(self, payload: dict[str, Any], force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_INTERVAL:
            return
        self._last = now
        with self._lock:
            sys.stdout.write(json.dumps(payload, default=str) + "\n")
            sys.stdout.flush()


def _listen(cancel: threading.Event, pause: threading.Event) -> None:
    """Reads commands until stdin closes; a closed stdin (parent gone) cancels."""
    for line in sys.stdin:
        command = line.strip()
        if command == "pause":
            pause.set()
        elif command == "resume":
            pause.clear()
        elif command == "cancel":
            cancel.set()
            pause.clear()
    cancel.set()
    pause.clear()


def main(argv: list[str] | None = None) -> int:
    from engine import config

    parser = argparse.ArgumentParser(prog="python -m engine.index_worker")
    parser.add_argument("--library", required=True)
    parser.add_argument("--add", nargs="*", default=[])
    parser.add_argument("--no-embed", action="store_true")
    parser.add_argument("--retry-errors", action="store_true")
    parser.add_argument("--forget-missing", action="store_true")
    parser.add_argument("--space", action="append", dest="spaces", choices=config.SPACE_NAMES)
    parser.add_argument("--device", default=None, choices=config.DEVICES)
    args = parser.parse_args(argv)

    from engine.errors import SonariumError
    from engine.library import Library

    if hasattr(os, "nice"):
        # Background work: let the desktop (and the app's own GUI) have the CPU first.
        os.nice(10)

    cancel, pause = threading.Event(), threading.Event()
    threading.Thread(target=_listen, args=(cancel, pause), daemon=True).start()
    out = _Emitter()
    began: dict[str, float] = {}

    def progress(stage: str, p: Any) -> None:
        started = began.setdefault(stage, time.monotonic())
        elapsed = time.monotonic() - started
        rate = getattr(p, "files_per_second", None)
        if rate is None:
            rate = p.files_done / elapsed if elapsed > 0 else 0.0
        out.send(
            {
                "event": "progress", "stage": stage, "done": p.files_done,
                "total": p.files_total, "rate": rate, "eta": getattr(p, "eta_seconds", None),
            },
            force=p.files_done == p.files_total,
        )  # fmt: skip

    try:
        with Library(args.library) as lib:
            report = lib.index(
                args.add or None, embed=not args.no_embed,
                spaces=tuple(args.spaces) if args.spaces else None,
                device=args.device or config.value("device"),
                progress=progress, cancel=cancel, pause=pause, retry_errors=args.retry_errors,
                forget_missing=args.forget_missing,
            )  # fmt: skip
    except SonariumError as exc:
        out.send({"event": "error", "message": str(exc)}, force=True)
        return 2
    except Exception as exc:  # the app must hear of any failure, never wait forever
        out.send({"event": "error", "message": f"indexing failed: {exc!r}"}, force=True)
        raise
    scan = report.scan
    summary: dict[str, Any] = {
        "event": "finished", "added": scan.added, "updated": scan.updated,
        "removed": scan.removed, "moved": scan.moved, "errors": scan.errors,
        "cancelled": report.cancelled, "warnings": scan.warnings,
        "embedded": report.embed.files if report.embed is not None else 0,
        "learned": report.learned is not None,
    }  # fmt: skip
    if report.learn_skipped:
        # Too few described files is a normal state for a new library, not a failure.
        out.send({"event": "progress", "stage": "learning-skipped", "done": 0, "total": 0,
                  "rate": 0.0, "eta": None, "message": report.learn_skipped},
                 force=True)  # fmt: skip
    out.send(summary, force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
