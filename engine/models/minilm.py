"""all-MiniLM-L6-v2's network (a 6-layer BERT, 384 wide) in numpy, loaded from its
safetensors. The same arithmetic as transformers' BertModel (tests compare the vectors),
without importing torch or transformers: a text query then needs neither, and importing
torch alone cost about 1 s of the first query (docs/measurements.md, first query).
Any thread, several at once (a call keeps no state).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

# erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7, under float32's own
# rounding of a GELU input): numpy has no erf, and BERT's GELU is the exact erf form.
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
# GELU runs on blocks of this many rows so its dozen element-wise passes stay in cache
# (about 1.7x faster than whole batches on this machine's 2 cores).
_GELU_ROWS = 64

_EMBEDDINGS = "embeddings."
_LAYER_PARTS = (
    "attention.self.query", "attention.self.key", "attention.self.value",
    "attention.output.dense", "intermediate.dense", "output.dense",
)  # fmt: skip
_NORMS = ("attention.output.LayerNorm", "output.LayerNorm")


def _gelu_block(x: np.ndarray) -> np.ndarray:
    """x * Phi(x) for one block, in few temporaries."""
    a = np.abs(x)
    a *= np.float32(1 / math.sqrt(2))
    t = a * np.float32(_ERF_P)
    t += 1
    np.reciprocal(t, out=t)
    poly = t * np.float32(_ERF_A[4])
    for c in _ERF_A[3::-1]:
        poly += c
        poly *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    poly *= a
    np.subtract(1, poly, out=poly)  # erf(|x| / sqrt 2)
    np.copysign(poly, x, out=poly)
    poly += 1
    poly *= x
    poly *= 0.5
    return poly


def gelu(x: np.ndarray) -> np.ndarray:
    """BERT's GELU (erf form) of a 2-D float32 array."""
    out = np.empty_like(x)
    for start in range(0, len(x), _GELU_ROWS):
        out[start : start + _GELU_ROWS] = _gelu_block(x[start : start + _GELU_ROWS])
    return out


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    x = x - x.mean(-1, keepdims=True)
    scale = np.square(x).mean(-1, keepdims=True)
    scale += eps
    np.sqrt(scale, out=scale)
    x /= scale
    x *= weight
    x += bias
    return x


class MiniLM:
    """Token ids and attention mask (batch, tokens) -> the last hidden state
    (batch, tokens, 384), float32."""

    def __init__(self, config: dict, weights: dict[str, np.ndarray]) -> None:
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.layers = int(config["num_hidden_layers"])
        self.weights = weights

    def __call__(self, ids: np.ndarray, attention: np.ndarray) -> np.ndarray:
        w, eps = self.weights, self.eps
        batch, tokens = ids.shape
        x = w["embeddings.word_embeddings.weight"][ids]
        x += w["embeddings.position_embeddings.weight"][:tokens]
        x += w["embeddings.token_type_embeddings.weight"][0]
        width = x.shape[-1]
        d = width // self.heads
        x = _layer_norm(
            x.reshape(batch * tokens, width),
            w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps,
        )  # fmt: skip
        # Padding gets the dtype's lowest value before the softmax, as BertModel does.
        mask = (1.0 - attention[:, None, None, :].astype(np.float32)) * np.finfo(np.float32).min

        def heads(y: np.ndarray) -> np.ndarray:
            return y.reshape(batch, tokens, self.heads, d).transpose(0, 2, 1, 3)

        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def linear(y: np.ndarray, part: str, p: str = p) -> np.ndarray:
                # Rows flattened to 2-D: one BLAS product, not one per sequence.
                out = y @ w[f"{p}{part}.weight"]
                out += w[f"{p}{part}.bias"]
                return out

            q = heads(linear(x, "attention.self.query"))
            k = heads(linear(x, "attention.self.key"))
            v = heads(linear(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2)
            scores *= np.float32(1 / math.sqrt(d))
            scores += mask
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * tokens, width)
            x = _layer_norm(
                x + linear(context, "attention.output.dense"),
                w[f"{p}attention.output.LayerNorm.weight"],
                w[f"{p}attention.output.LayerNorm.bias"], eps,
            )  # fmt: skip
            x = _layer_norm(
                x + linear(gelu(linear(x, "intermediate.dense")), "output.dense"),
                w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"], eps,
            )  # fmt: skip
        return x.reshape(batch, tokens, width)

    @classmethod
    def load(cls, folder: Path) -> MiniLM:
        """From a folder with config.json and model.safetensors (never a pickle).

        Raises ValueError when the config is not a GELU BERT or a tensor is missing or
        of the wrong shape."""
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise ValueError(f"not a BERT with GELU: {config.get('model_type')}")
        raw = load_file(str(folder / "model.safetensors"))
        width, inner = int(config["hidden_size"]), int(config["intermediate_size"])
        shapes = {
            "embeddings.word_embeddings.weight": (int(config["vocab_size"]), width),
            "embeddings.position_embeddings.weight": (
                int(config["max_position_embeddings"]), width),
            "embeddings.token_type_embeddings.weight": (int(config["type_vocab_size"]), width),
            "embeddings.LayerNorm.weight": (width,),
            "embeddings.LayerNorm.bias": (width,),
        }  # fmt: skip
        # (out, in) of each linear part, as stored; the others are width x width.
        stored = {"intermediate.dense": (inner, width), "output.dense": (width, inner)}
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            for part in _LAYER_PARTS:
                shapes[f"{p}{part}.weight"] = stored.get(part, (width, width))
                shapes[f"{p}{part}.bias"] = (shapes[f"{p}{part}.weight"][0],)
            for norm in _NORMS:
                shapes[f"{p}{norm}.weight"] = (width,)
                shapes[f"{p}{norm}.bias"] = (width,)
        weights: dict[str, np.ndarray] = {}
        for name, shape in shapes.items():
            if name not in raw or raw[name].shape != shape:
                found = raw[name].shape if name in raw else "missing"
                raise ValueError(f"{name}: expected {shape}, found {found}")
            tensor = raw[name].astype(np.float32, copy=False)
            if tensor.ndim == 2 and not name.startswith(_EMBEDDINGS):
                # Stored (out, in) as torch's Linear keeps it; products want (in, out).
                tensor = np.ascontiguousarray(tensor.T)
            weights[name] = tensor
        return cls(config, weights)
