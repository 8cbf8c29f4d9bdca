"""One plain Python thread for the torch models that answer queries (any thread may call).

In the desktop app, torch work called directly on the query thread (a QThread) hung or
crashed the whole app: loading the sentence encoder, then in torch, deadlocked (gdb: torch's
THPVariable_make_subclass waiting, through pybind11's gil_scoped_acquire, for the GIL
its own thread held, the GUI thread queued behind it), and loading aisfx for find-similar
segfaulted in torch.load. The same calls on a threading.Thread work, so every query-side
torch call is handed to this one thread: torch models are built, used and kept there.
(The sentence encoder is numpy now and runs on the thread that asks.)
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_NAME = "sonarium-models"
_EXECUTOR = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=_NAME)


def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """fn(*args, **kwargs) on the model thread (directly when already on it); blocks."""
    if threading.current_thread().name.startswith(_NAME):
        return fn(*args, **kwargs)
    return _EXECUTOR.submit(fn, *args, **kwargs).result()


class OnModelThread:
    """A proxy whose method calls run on the model thread; other attributes pass through."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if callable(attr):
            return lambda *args, **kwargs: run(attr, *args, **kwargs)
        return attr
