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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.index_worker")
    parser.add_argument("--library", required=True)
    parser.add_argument("--add", nargs="*", default=[])
    parser.add_argument("--no-embed", action="store_true")
    parser.add_argument("--space", action="append", dest="spaces")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    args = parser.parse_args(argv)

    from engine.library import Library, LibraryError

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
                if learn and embedded is not None and embedded.files and not embedded.cancelled:
                    # Learn text search from the names now, here, so the app's first
                    # query doesn't wait for it (engine/name_text.py).
                    out.send({"event": "progress", "stage": "learning", "done": 0,
                              "total": 1, "rate": 0, "eta": None}, force=True)  # fmt: skip
                    lib.text_space()
    except LibraryError as exc:
        out.send({"event": "error", "message": str(exc)}, force=True)
        return 2
    out.send(summary, force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
