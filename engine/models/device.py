"""Where and in what precision models run: the device choice and the numeric dtype.

Loaders (:mod:`engine.models.aisfx.model`, :mod:`engine.models.clap.model`) raise
:class:`engine.errors.ModelUnavailable` with a message that says why and what to do;
callers such as ``engine.models.spaces.available_spaces`` catch it and keep working
without that model. Any thread; the module holds no state (the precision setting is read
from the environment through engine.config, so the indexing child process inherits it).
"""

from __future__ import annotations

import torch

from engine import config


def precision_setting() -> str:
    """The configured precision ("auto" or "float32"); unknown values read as "auto"."""
    return config.value("precision")


def fast_bfloat16(device: torch.device | str = "cpu") -> bool:
    """Whether bfloat16 is fast here: CUDA, or a CPU whose oneDNN has bf16 kernels
    (AVX-512 BF16 or AMX). Plain AVX2 CPUs emulate bf16 and get slower, so they say no."""
    if torch.device(device).type == "cuda":
        return True
    if torch.device(device).type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def inference_dtype(device: str, half: torch.dtype = torch.float16) -> torch.dtype:
    """The dtype a model runs in on ``device``: ``half`` on CUDA, bfloat16 on a CPU with
    fast bf16 kernels, float32 otherwise or when the precision setting says "float32"."""
    if precision_setting() == "float32":
        return torch.float32
    if torch.device(device).type == "cuda":
        return half
    if fast_bfloat16(device):  # a CPU with bf16 kernels (CUDA was answered above)
        return torch.bfloat16
    return torch.float32


def pick_device(requested: str = "auto") -> str:
    """'cuda' when available (or asked for), else 'mps', else 'cpu'."""
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"
