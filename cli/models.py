"""model: which CLAP text-search model is configured, whether it is here, downloading it."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("model", parents=[common], help="show or download the CLAP model")
    p.add_argument("model_id", nargs="?", metavar="ID_OR_PATH")
    p.add_argument("--download", action="store_true", help="download it from the Hub")
    p.set_defaults(func=cmd_model)


def cmd_model(args: argparse.Namespace) -> int:
    from engine import config
    from engine.errors import ModelUnavailable
    from engine.models.clap import model as clap_model

    name = args.model_id or config.value("clap_model")
    if args.download:
        from tqdm import tqdm

        bar = tqdm(unit="B", unit_scale=True, desc=f"downloading {name}", file=sys.stderr)

        def progress(done: int, total: int | None) -> None:
            if total:
                bar.total = total
            bar.update(done - bar.n)

        try:
            folder = clap_model.download(name, progress)
        finally:
            bar.close()
        print(f"downloaded to {folder}")
    try:
        resolved = clap_model.resolve_local(name)
    except ModelUnavailable as exc:
        print(f"{name}: not available here\n  {exc}")
        return 1
    print(f"{name}: ready ({resolved.folder}, revision {resolved.revision})")
    print("run 'sonarium scan --model ...' to embed the library with it")
    return 0
