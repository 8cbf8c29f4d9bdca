"""CLAP (LAION, via transformers): finding, downloading and safely loading the model.

A model is named by a Hugging Face Hub id (``laion/clap-htsat-unfused``) or a local
folder holding what ``save_pretrained`` writes. Weights load from safetensors only
(``use_safetensors=True``); a folder with only pickle weights (``pytorch_model.bin``) is
refused before anything reads it, because unpickling can run arbitrary code.

:func:`resolve_local` never touches the network: it finds a folder, or a Hub id's copy in
the Hugging Face cache, or raises :class:`ModelUnavailable` at once. :func:`load_clap`
also downloads a Hub id that isn't cached, unless offline mode is on (``HF_HUB_OFFLINE``
or ``TRANSFORMERS_OFFLINE``). Download progress goes to ``progress(done_bytes,
total_bytes)`` when given (raise from it to cancel); huggingface_hub's own tqdm bars
still print to stderr unless ``HF_HUB_DISABLE_PROGRESS_BARS=1``.

Threads: every function may be called from any thread and the module holds no state; a
:class:`LoadedClap` (a torch model) is used by one thread at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine import config
from engine.errors import ModelUnavailable
from engine.models.clap.features import PREPROCESSING_VERSION
from engine.models.device import inference_dtype, pick_device

DEFAULT_MODEL = config.DEFAULT_CLAP_MODEL
KNOWN_MODELS = (
    DEFAULT_MODEL,
    "laion/larger_clap_general",
    "laion/larger_clap_music_and_speech",
)

# What a download fetches: configs, tokenizer files and safetensors weights. Pickle
# weights (*.bin, *.pt, *.ckpt) and other frameworks' copies are never fetched.
DOWNLOAD_PATTERNS = ["*.json", "*.txt", "*.safetensors"]
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")

Progress = Callable[[int, int | None], None]


@dataclass
class LoadedClap:
    """A loaded CLAP model and what it needs. Use from one thread at a time."""

    model: Any  # transformers.ClapModel, eval mode, on `device` in `dtype`
    processor: Any  # transformers.ClapProcessor
    feature_extractor: Any  # transformers.ClapFeatureExtractor (settings for clap_features)
    tokenizer: Any
    device: str
    dtype: torch.dtype
    identity: str
    folder: Path
    source: str  # the Hub id, or the folder for local models
    revision: str


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are, and what to call it in the identity."""

    folder: Path
    source: str
    revision: str

    @property
    def identity(self) -> str:
        return f"clap:{self.source}@{self.revision}:{PREPROCESSING_VERSION}"


def configured_model() -> str:
    """The model "clap" means: $SONARIUM_CLAP_MODEL, else :data:`DEFAULT_MODEL`."""
    return config.value("clap_model")


def offline_mode() -> bool:
    """Whether Hub downloads are off (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE), read now.

    huggingface_hub reads these once at import; reading them again lets a running app
    (and tests) switch without restarting.
    """
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - huggingface_hub always ships with transformers
        return False


def hub_cache_dir() -> Path:
    """The Hugging Face Hub cache folder, from the environment as it is now."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _download_hint(model_id: str) -> str:
    return (
        f"download it on a machine with network with `hf download {model_id} "
        f"--include '*.json' '*.txt' '*.safetensors' --local-dir <folder>` (hf comes with "
        "huggingface_hub, in .venv/bin), copy the folder here, then make it the "
        "text-search model setting"
    )


def _hint_for(source: str) -> str:
    """The download hint for a model's source (a folder gets the default model's)."""
    return _download_hint(source if _HUB_ID.match(source) else DEFAULT_MODEL)


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", "\\", "~", "."))
        or bool(re.match(r"^[A-Za-z]:[\\/]", name))
        or "\\" in name
        or not _HUB_ID.match(name)
    )


def _weights(folder: Path) -> list[Path]:
    """The safetensors weight files of a folder (single file or shards with an index)."""
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelUnavailable(f"{index} is unreadable ({exc})") from exc
        return [folder / name for name in shards]
    return sorted(folder.glob("*.safetensors"))


def check_folder(folder: Path, source: str) -> None:
    """Raise :class:`ModelUnavailable` unless ``folder`` looks like a loadable CLAP model.

    Reads only config.json and file names: nothing is unpickled. Any thread.
    """
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelUnavailable(
            f"{folder} is not a model folder (no config.json): {_download_hint(DEFAULT_MODEL)}"
        )
    try:
        model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelUnavailable(f"{config_path} is unreadable ({exc})") from exc
    if model_type != "clap":
        raise ModelUnavailable(
            f"{folder} holds a '{model_type}' model, not CLAP: choose one of "
            f"{', '.join(KNOWN_MODELS)} (or a folder with one)"
        )
    weights = _weights(folder)
    missing = [p.name for p in weights if not p.is_file()]
    if missing:
        raise ModelUnavailable(
            f"{folder} is missing weight files {', '.join(missing)}: the download was "
            f"incomplete; {_hint_for(source)}"
        )
    if not weights:
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        if pickles:
            raise ModelUnavailable(
                f"{folder} has only pickle weights ({', '.join(pickles)}), which Sonarium "
                "refuses to load because unpickling a file can run code: get the model's "
                "model.safetensors instead (laion's CLAP repos have one; "
                f"{_hint_for(source)})"
            )
        raise ModelUnavailable(f"{folder} has no model.safetensors: {_hint_for(source)}")


def _content_revision(folder: Path) -> str:
    """A revision for a folder without a known commit: config.json plus weight sizes."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update((folder / "config.json").read_bytes())
    for path in _weights(folder):
        digest.update(f"\0{path.name}\0{path.stat().st_size}".encode())
    return "content-" + digest.hexdigest()


def _folder_revision(folder: Path) -> str:
    """The commit a folder came from when known, else :func:`_content_revision`.

    Known for a Hub cache snapshot (``.../snapshots/<commit>``) and for a folder written
    by ``hf download --local-dir`` when its config and weights metadata name one commit.
    """
    if folder.parent.name == "snapshots" and _COMMIT.match(folder.name):
        return folder.name
    meta = folder / ".cache" / "huggingface" / "download"
    commits = set()
    for path in [folder / "config.json", *_weights(folder)]:
        try:
            commits.add((meta / f"{path.name}.metadata").read_text().split("\n", 1)[0].strip())
        except OSError:
            commits.add("")
    if len(commits) == 1 and _COMMIT.match(next(iter(commits))):
        return next(iter(commits))
    return _content_revision(folder)


def _cached_snapshot(model_id: str, cache_dir: Path) -> Path | None:
    """A Hub id's snapshot folder in the cache (main branch), or None. No network."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(model_id, "config.json", cache_dir=str(cache_dir))
    except Exception:  # invalid id or unreadable cache: same as "not cached"
        return None
    return Path(found).parent if isinstance(found, str) else None


def resolve_local(model: str = DEFAULT_MODEL, cache_dir: str | Path | None = None) -> ResolvedModel:
    """Find a model without the network: a local folder, or a Hub id's cached copy.

    Raises :class:`ModelUnavailable` saying why (no such folder, not downloaded, offline,
    pickle-only weights) and how to fix it. Fast: reads a few small files. Any thread.
    """
    name = model.strip()
    if not name:
        raise ModelUnavailable(f"no CLAP model configured: set one (e.g. {DEFAULT_MODEL})")
    path = Path(name).expanduser()
    if path.is_dir():
        folder = path.resolve()
        check_folder(folder, str(folder))
        return ResolvedModel(folder, str(folder), _folder_revision(folder))
    if _looks_like_path(name):
        raise ModelUnavailable(
            f"no CLAP model folder at {path}: check the text-search model setting, "
            f"or {_download_hint(DEFAULT_MODEL)}"
        )
    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    snapshot = _cached_snapshot(name, cache)
    if snapshot is None:
        if offline_mode():
            raise ModelUnavailable(
                f"{name} is not in the Hugging Face cache ({cache}) and offline mode is on "
                "(HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE), so it can't be downloaded: "
                f"{_download_hint(name)}; or turn offline mode off to let Sonarium download it"
            )
        raise ModelUnavailable(
            f"{name} is not downloaded yet (not in the Hugging Face cache at {cache}): "
            f"download it with `hf download {name} --include '*.json' '*.txt' "
            "'*.safetensors'` (needs network), or on another machine: "
            f"{_download_hint(name)}"
        )
    check_folder(snapshot, name)
    return ResolvedModel(snapshot, name, snapshot.name)


def _progress_tqdm(progress: Progress) -> type:
    """A tqdm class for huggingface_hub that also reports byte progress to ``progress``.

    snapshot_download (huggingface_hub 2.x) makes a file-count bar, a network-transfer bar
    and a bytes-written bar named "huggingface_hub.snapshot_download"; only the last is
    reported, as (bytes written, bytes expected). Unnamed byte bars (other versions) are
    reported too.
    """
    from huggingface_hub.utils import tqdm as hf_tqdm

    class _Reporting(hf_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            name = kwargs.get("name")
            self._sonarium_report = name == "huggingface_hub.snapshot_download" or (
                name is None and kwargs.get("unit") == "B"
            )
            # Counted here: a disabled tqdm (not a TTY) doesn't keep `n`.
            self._sonarium_done = int(kwargs.get("initial") or 0)
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if self._sonarium_report and n:
                self._sonarium_done += int(n)
                total = getattr(self, "total", None)
                progress(self._sonarium_done, int(total) if total else None)
            return super().update(n)

    return _Reporting


def download(
    model_id: str, progress: Progress | None = None, cache_dir: str | Path | None = None
) -> Path:
    """Download a Hub model's configs, tokenizer and safetensors into the HF cache.

    Returns the snapshot folder. Raises :class:`ModelUnavailable` when offline, when the
    Hub is unreachable or doesn't have the model. Any thread (blocks for minutes).
    """
    if offline_mode():
        raise ModelUnavailable(
            f"{model_id} is not downloaded and offline mode is on (HF_HUB_OFFLINE or "
            f"TRANSFORMERS_OFFLINE): {_download_hint(model_id)}"
        )
    from huggingface_hub import errors as hub_errors
    from huggingface_hub import snapshot_download

    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    try:
        folder = snapshot_download(
            model_id,
            cache_dir=str(cache),
            allow_patterns=DOWNLOAD_PATTERNS,
            tqdm_class=_progress_tqdm(progress) if progress else None,
        )
    except hub_errors.GatedRepoError as exc:
        raise ModelUnavailable(
            f"{model_id} is gated on the Hugging Face Hub: accept its terms there and log in "
            "with `hf auth login`"
        ) from exc
    except (hub_errors.RepositoryNotFoundError, hub_errors.RevisionNotFoundError) as exc:
        raise ModelUnavailable(
            f"there is no model '{model_id}' on the Hugging Face Hub: check the name "
            f"(known CLAP models: {', '.join(KNOWN_MODELS)})"
        ) from exc
    except hub_errors.OfflineModeIsEnabled as exc:
        raise ModelUnavailable(
            f"{model_id} is not downloaded and offline mode is on: {_download_hint(model_id)}"
        ) from exc
    except Exception as exc:  # no network, DNS, proxy, disk full, ...
        raise ModelUnavailable(
            f"could not download {model_id} from the Hugging Face Hub "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}): "
            f"check the network connection, or {_download_hint(model_id)}"
        ) from exc
    return Path(folder)


def load_clap(
    model_id_or_path: str = DEFAULT_MODEL,
    device: str = "auto",
    progress: Progress | None = None,
    *,
    cache_dir: str | Path | None = None,
    allow_download: bool = True,
) -> LoadedClap:
    """Load a CLAP model (eval mode) with its processor, from a folder or the Hub.

    Hub ids come from the HF cache, else are downloaded (``progress(done_bytes,
    total_bytes)``) unless ``allow_download`` is False or offline mode is on. float16 on
    CUDA, bfloat16 on a CPU with fast bf16 kernels (AMX / AVX-512 BF16; see
    :func:`engine.models.device.inference_dtype`), float32 elsewhere or when the
    precision setting says so. Raises :class:`ModelUnavailable` with the reason and the fix
    on any failure. Any thread; use the result from one thread at a time.
    """
    try:
        resolved = resolve_local(model_id_or_path, cache_dir)
    except ModelUnavailable:
        name = model_id_or_path.strip()
        local = _looks_like_path(name) or Path(name).expanduser().is_dir()
        if local or not allow_download or offline_mode():
            raise
        snapshot = download(name, progress, cache_dir)
        check_folder(snapshot, name)
        resolved = ResolvedModel(snapshot, name, _folder_revision(snapshot))

    return load_resolved(resolved, device)


def load_resolved(resolved: ResolvedModel, device: str = "auto") -> LoadedClap:
    """Load a model :func:`resolve_local` (or a download) found; see :func:`load_clap`."""
    from transformers import ClapModel, ClapProcessor

    device = pick_device(device)
    dtype = inference_dtype(device)
    try:
        model = ClapModel.from_pretrained(
            str(resolved.folder), use_safetensors=True, local_files_only=True, dtype=dtype
        )
        processor = ClapProcessor.from_pretrained(str(resolved.folder), local_files_only=True)
        model = model.to(device).eval()  # type: ignore[arg-type]  # transformers' .to wrapper
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelUnavailable(
            f"could not load the CLAP model from {resolved.folder} ({type(exc).__name__}: "
            f"{reason}); the folder may be incomplete or from another transformers version: "
            f"{_hint_for(resolved.source)}"
        ) from exc
    return LoadedClap(
        model=model,
        processor=processor,
        feature_extractor=processor.feature_extractor,
        tokenizer=processor.tokenizer,
        device=device,
        dtype=dtype,
        identity=resolved.identity,
        folder=resolved.folder,
        source=resolved.source,
        revision=resolved.revision,
    )
