"""What every model loader shares: the error that means "this model can't be used here",
and the choice of numeric precision.

Loaders (:mod:`engine.aisfx_model`, :mod:`engine.clap_model`) raise
:class:`ModelUnavailable` with a message that says why and how to fix it; callers such as
``engine.spaces.available_spaces`` catch it and keep working without that model.
Any thread; the module holds no state (the precision setting is read from the
environment, so the indexing child process inherits it).
"""

from __future__ import annotations

import os

import torch

# "auto" (the default) or "float32": the user's override of the fast precisions below,
# for a machine where they misbehave. Set by ``main.py --precision``.
PRECISION_ENV = "SONARIUM_PRECISION"
PRECISIONS = ("auto", "float32")


class ModelUnavailable(Exception):
    """A model's weights are missing, unreachable or could not be loaded safely.

    The message is meant for the user: the reason, then what to do about it.
    """


def precision_setting() -> str:
    """The configured precision ("auto" or "float32"); unknown values read as "auto"."""
    value = os.environ.get(PRECISION_ENV, "auto").strip().lower()
    return value if value in PRECISIONS else "auto"


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
