"""numpy's own BLAS (OpenBLAS), told apart from torch's: embedding and search run it on one
thread where its spinning threads would take cores from torch or faiss. Never imports
torch, so a text query can use it without loading torch. Any thread.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from threadpoolctl import ThreadpoolController


def _torch_dirs() -> tuple[Path, ...]:
    """Where torch's own libraries live (found without importing torch), or () without it."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return ()
    torch_dir = Path(spec.origin).resolve().parent
    return torch_dir, torch_dir.parent / "torch.libs"


@functools.cache
def numpy_blas() -> ThreadpoolController:
    """The BLAS libraries loaded in this process other than torch's own (a torch build
    may load one, e.g. OpenBLAS on ARM): numpy's (and faiss's). Found once per process
    (numpy loads its BLAS on import; a torch loaded later brings only its own); its
    ``limit()`` is cheap enough for every query. Any thread."""
    controller = ThreadpoolController()
    torch_dirs = _torch_dirs()
    paths = [
        lib.filepath
        for lib in controller.lib_controllers
        if lib.user_api == "blas"
        and not any(Path(lib.filepath).resolve().is_relative_to(d) for d in torch_dirs)
    ]
    return controller.select(filepath=paths)
