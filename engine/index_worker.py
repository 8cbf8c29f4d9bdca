"""Scanning and embedding in a child process, driven over stdin/stdout.

    python -m engine.index_worker --library DIR [--add PATH ...] [--no-embed] [--space S ...]

The desktop app runs indexing here rather than in a thread: decoding, metadata parsing
and the model all hold Python's GIL for stretches, and in-process they starved the GUI
thread (measured: 250 ms event-loop stalls during a 1,000-file scan). A crash in a
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


def _learn(lib, out: _Emitter, cancel: threading.Event) -> bool:
    """Relearn text search over sound when the library changed (engine/adapt/adapter.py), so
    the app's next query uses it; the app searches by keyword meanwhile."""
    from engine.errors import LibraryError

    if not lib.adapter_stale():
        return False
    began = time.monotonic()

    def progress(p) -> None:
        elapsed = time.monotonic() - began
        out.send(
            {
                "event": "progress", "stage": f"learning-{p.stage}", "done": p.done,
                "total": p.total, "rate": p.done / elapsed if elapsed > 0 else 0.0, "eta": None,
            },
            force=p.done == p.total,
        )  # fmt: skip

    try:
        lib.adapt(progress=progress, cancel=cancel.is_set)
    except InterruptedError:
        return False
    except LibraryError as exc:
        # Too few described files is a normal state for a new library, not a failure.
        out.send({"event": "progress", "stage": "learning-skipped", "done": 0, "total": 0,
                  "rate": 0.0, "eta": None, "message": str(exc)}, force=True)  # fmt: skip
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.index_worker")
    parser.add_argument("--library", required=True)
    parser.add_argument("--add", nargs="*", default=[])
    parser.add_argument("--no-embed", action="store_true")
    parser.add_argument("--space", action="append", dest="spaces")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    args = parser.parse_args(argv)

    from engine.errors import LibraryError
from engine.library import Library

    if hasattr(os, "nice"):
        # Background work: let the desktop (and the app's own GUI) have the CPU first.
        os.nice(10)

    cancel, pause = threading.Event(), threading.Event()
    threading.Thread(target=_listen, args=(cancel, pause), daemon=True).start()
    out = _Emitter()

    def progress(stage: str):
        def callback(p) -> None:
            out.send(
                {
                    "event": "progress", "stage": stage, "done": p.files_done,
                    "total": p.files_total, "rate": p.files_per_second, "eta": p.eta_seconds,
                },
                force=p.files_done == p.files_total,
            )  # fmt: skip

        return callback

    try:
        with Library(args.library) as lib:
            roots = lib.add_folders(args.add) if args.add else None
            report = lib.scan(roots, cancel=cancel, pause=pause, progress=progress("scanning"))
            summary: dict[str, Any] = {
                "event": "finished", "added": report.added, "updated": report.updated,
                "removed": report.removed, "moved": report.moved, "errors": report.errors,
                "cancelled": report.cancelled, "warnings": report.warnings, "embedded": 0,
            }  # fmt: skip
            if not args.no_embed and not report.cancelled:
                spaces = tuple(args.spaces) if args.spaces else None
                embedded = lib.embed(
                    spaces, device=args.device, cancel=cancel, pause=pause,
                    progress=progress("embedding"),
                )  # fmt: skip
                if embedded is not None:
                    summary["embedded"] = embedded.files
                    summary["cancelled"] = embedded.cancelled
                learn = spaces is None or "aisfx" in spaces
                if learn and embedded is not None and not summary["cancelled"]:
                    summary["learned"] = _learn(lib, out, cancel)
    except LibraryError as exc:
        out.send({"event": "error", "message": str(exc)}, force=True)
        return 2
    out.send(summary, force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
