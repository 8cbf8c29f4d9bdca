"""The registry of embedding spaces: their names, building one by name, the process-wide
shared instances used for queries, and the spaces available on this machine.

Spaces whose model is missing are simply not available; the others keep working.
Concrete spaces live with their models (engine/models/aisfx/space.py,
engine/models/clap/space.py, engine/models/mfcc.py) and load only when built.
"""

from __future__ import annotations

import logging
import threading

from engine.config import SPACE_NAMES
from engine.models import model_thread
from engine.models.embedding import EmbeddingSpace
from engine.models.model_thread import OnModelThread

log = logging.getLogger(__name__)


# Spaces whose file vectors are standardised per dimension over the library before
# cosine (known without building the space, so indexes can be built without a model).
STANDARDIZED = {"aisfx", "mfcc"}


def make_space(name: str, device: str = "auto") -> EmbeddingSpace:
    """Build a space by name; raises ModelUnavailable (or ValueError) when it can't be.

    "clap" uses engine.models.clap.model.configured_model() ($SONARIUM_CLAP_MODEL, else the
    default) and fails at once, without network, when that model isn't on this machine.
    """
    if name == "aisfx":
        from engine.models.aisfx.space import AisfxSpace

        return AisfxSpace(device=device)
    if name == "mfcc":
        from engine.models.mfcc import MfccSpace

        return MfccSpace()
    if name == "clap":
        from engine.models.clap.space import ClapSpace

        return ClapSpace(device=device)
    raise ValueError(f"unknown embedding space '{name}' (known: {', '.join(SPACE_NAMES)})")


_SHARED: dict[tuple[str, str, str | None], EmbeddingSpace] = {}
_SHARED_LOCK = threading.Lock()


def shared_space(name: str, device: str = "auto") -> EmbeddingSpace:
    """A process-wide instance of a space, built on first use and kept until exit.

    Models are large to load, and destroying torch modules from a Qt worker thread
    crashed PySide6 6.12 apps here (segfault in the module's deallocation), so spaces
    used for queries live as long as the process, on engine.models.model_thread's thread: every
    method call is run there, whichever thread makes it.
    """
    model: str | None = None
    if name == "clap":
        from engine.models.clap.model import configured_model

        model = configured_model()  # another configured model is another instance
    key = (name, device, model)
    with _SHARED_LOCK:
        if key not in _SHARED:
            # Built and used on the model thread (engine/models/model_thread.py says why).
            _SHARED[key] = OnModelThread(model_thread.run(make_space, name, device))
        return _SHARED[key]


def available_spaces(names: tuple[str, ...] = SPACE_NAMES, device: str = "auto") -> list:
    """The spaces that can be built here; a missing model is logged, not raised."""
    spaces = []
    for name in names:
        try:
            spaces.append(make_space(name, device))
        except Exception as exc:
            # CLAP weights are an optional download: their absence is the normal case.
            level = logging.INFO if name == "clap" else logging.WARNING
            log.log(level, "embedding space %s unavailable: %s", name, exc)
    return spaces
