"""all-MiniLM-L6-v2's network (a 6-layer BERT, 384 wide) in plain torch, loaded from its
safetensors. The same arithmetic as transformers' BertModel (tests compare the vectors),
without importing transformers, whose import alone cost ~2 s of the first text query
(docs/measurements.md, first query). Build and call on the model thread.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn


class _Layer(nn.Module):
    def __init__(self, width: int, heads: int, inner: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.attention_out = nn.Linear(width, width)
        self.attention_norm = nn.LayerNorm(width, eps=eps)
        self.inner = nn.Linear(width, inner)
        self.out = nn.Linear(inner, width)
        self.out_norm = nn.LayerNorm(width, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, width = x.shape
        d = width // self.heads

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, d).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + mask
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, width)
        x = self.attention_norm(x + self.attention_out(context))
        return self.out_norm(x + self.out(nn.functional.gelu(self.inner(x))))


class MiniLM(nn.Module):
    """Token ids and attention mask -> the last hidden state (batch, tokens, 384)."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        width, eps = config["hidden_size"], config["layer_norm_eps"]
        self.words = nn.Embedding(config["vocab_size"], width)
        self.positions = nn.Embedding(config["max_position_embeddings"], width)
        self.types = nn.Embedding(config["type_vocab_size"], width)
        self.norm = nn.LayerNorm(width, eps=eps)
        self.layers = nn.ModuleList(
            _Layer(width, config["num_attention_heads"], config["intermediate_size"], eps)
            for _ in range(config["num_hidden_layers"])
        )

    def forward(self, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.norm(self.words(ids) + self.positions(positions) + self.types.weight[0])
        # Padding gets the dtype's lowest value before the softmax, as BertModel does.
        mask = (1.0 - attention[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, mask)
        return x

    @classmethod
    def load(cls, folder: Path) -> MiniLM:
        """From a folder with config.json and model.safetensors (never a pickle)."""
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise ValueError(f"not a BERT with GELU: {config.get('model_type')}")
        model = cls(config)
        weights = load_file(str(folder / "model.safetensors"))
        names = {
            "words.weight": "embeddings.word_embeddings.weight",
            "positions.weight": "embeddings.position_embeddings.weight",
            "types.weight": "embeddings.token_type_embeddings.weight",
            "norm.weight": "embeddings.LayerNorm.weight",
            "norm.bias": "embeddings.LayerNorm.bias",
        }
        parts = {
            "query": "attention.self.query", "key": "attention.self.key",
            "value": "attention.self.value", "attention_out": "attention.output.dense",
            "attention_norm": "attention.output.LayerNorm", "inner": "intermediate.dense",
            "out": "output.dense", "out_norm": "output.LayerNorm",
        }  # fmt: skip
        for i in range(len(model.layers)):
            for ours, theirs in parts.items():
                for kind in ("weight", "bias"):
                    names[f"layers.{i}.{ours}.{kind}"] = f"encoder.layer.{i}.{theirs}.{kind}"
        state = {ours: weights[theirs] for ours, theirs in names.items()}
        model.load_state_dict(state, strict=True)
        return model.eval()
