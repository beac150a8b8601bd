"""MiniLM's top layers, fine-tuned for the prompt head (the head's second part).

MiniLM (all-MiniLM-L6-v2) has six BERT layers. The prompt head (``classifiers.text.head``) keeps
the bottom ones as they are and runs its own copies of the top ``depth`` (one to four; three in
the packaged head), fine-tuned on the head's training data (``bench/train_prompt_head.py``), on
the token vectors that enter the lowest of the originals. The original layers keep running too,
for the semantic concepts, whose embeddings therefore do not change; the encoder returns the
layers' inputs and outputs from one forward pass (``MiniLMEncoder.encode_layer_input``), so the
fine-tuned copies cost ``depth`` layers, about a sixth of a MiniLM pass each.

``TopBlock`` is one such layer (self-attention with 12 heads, a 1,536-wide feed-forward layer,
post-layer-norm, exactly as in BERT); ``TopStack`` runs the copies bottom first and mean- and
max-pools the last one's output over the prompt for the head's classification layer. The arrays
are named after their role and stored as float16 in the head's weights file. This module imports
torch: the head imports it only when it loads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn import functional

__all__ = [
    "BLOCK_ARRAYS",
    "HEADS",
    "HIDDEN",
    "INTERMEDIATE",
    "TopBlock",
    "TopStack",
    "block_shapes",
    "minilm_arrays",
    "pool",
]

HIDDEN = 384
HEADS = 12
INTERMEDIATE = 1536
LAYER_NORM_EPS = 1e-12

# name -> MiniLM (BERT) parameter of the last layer it starts from
BLOCK_ARRAYS: Mapping[str, str] = {
    "query_weight": "attention.self.query.weight",
    "query_bias": "attention.self.query.bias",
    "key_weight": "attention.self.key.weight",
    "key_bias": "attention.self.key.bias",
    "value_weight": "attention.self.value.weight",
    "value_bias": "attention.self.value.bias",
    "attention_out_weight": "attention.output.dense.weight",
    "attention_out_bias": "attention.output.dense.bias",
    "attention_norm_weight": "attention.output.LayerNorm.weight",
    "attention_norm_bias": "attention.output.LayerNorm.bias",
    "ff_in_weight": "intermediate.dense.weight",
    "ff_in_bias": "intermediate.dense.bias",
    "ff_out_weight": "output.dense.weight",
    "ff_out_bias": "output.dense.bias",
    "ff_norm_weight": "output.LayerNorm.weight",
    "ff_norm_bias": "output.LayerNorm.bias",
}


def block_shapes() -> dict[str, tuple[int, ...]]:
    """The expected shape of every block array (torch's ``(out, in)`` layout for weights)."""
    d, f = HIDDEN, INTERMEDIATE
    shapes: dict[str, tuple[int, ...]] = {}
    for name in ("query", "key", "value", "attention_out"):
        shapes[f"{name}_weight"], shapes[f"{name}_bias"] = (d, d), (d,)
    shapes["ff_in_weight"], shapes["ff_in_bias"] = (f, d), (f,)
    shapes["ff_out_weight"], shapes["ff_out_bias"] = (d, f), (d,)
    for name in ("attention_norm", "ff_norm"):
        shapes[f"{name}_weight"], shapes[f"{name}_bias"] = (d,), (d,)
    return shapes


class TopBlock(torch.nn.Module):
    """One BERT layer (post-layer-norm) over token vectors, with masked mean and max pooling."""

    def __init__(self, arrays: Mapping[str, NDArray[np.floating]], dropout: float = 0.0) -> None:
        super().__init__()
        self.weights = torch.nn.ParameterDict()
        shapes = block_shapes()
        for name, shape in shapes.items():
            if name not in arrays:
                raise ValueError(f"block array {name} is missing")
            if tuple(arrays[name].shape) != shape:
                raise ValueError(f"{name} has shape {tuple(arrays[name].shape)}, expected {shape}")
            value = torch.tensor(np.asarray(arrays[name], dtype=np.float32))
            self.weights[name] = torch.nn.Parameter(value)
        self.dropout = torch.nn.Dropout(dropout)

    @classmethod
    def from_minilm(cls, encoder_layer: Any, dropout: float = 0.0) -> TopBlock:
        """A copy of a MiniLM (BERT) layer's weights, e.g. ``auto_model.encoder.layer[-1]``."""
        return cls(minilm_arrays(encoder_layer), dropout)

    def arrays(self) -> dict[str, NDArray[np.float32]]:
        return {
            name: self.weights[name].detach().cpu().numpy().astype(np.float32)
            for name in BLOCK_ARRAYS
        }

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``x``: ``(batch, tokens, 384)``; ``valid``: ``(batch, tokens)``, False on padding.
        Returns ``(batch, 768)``: the block's output, mean- and max-pooled over valid tokens."""
        return pool(self.layer(x, valid), valid)

    def layer(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The layer's token vectors, ``(batch, tokens, 384)`` (what the next layer reads)."""
        w = self.weights
        batch, length, _ = x.shape
        width = HIDDEN // HEADS

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, HEADS, width).transpose(1, 2)

        q = heads(functional.linear(x, w["query_weight"], w["query_bias"]))
        k = heads(functional.linear(x, w["key_weight"], w["key_bias"]))
        v = heads(functional.linear(x, w["value_weight"], w["value_bias"]))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(width)
        scores = scores.masked_fill(~valid[:, None, None, :], torch.finfo(scores.dtype).min)
        attention = self.dropout(torch.softmax(scores, dim=-1))
        context = (attention @ v).transpose(1, 2).reshape(batch, length, HIDDEN)
        context = functional.linear(context, w["attention_out_weight"], w["attention_out_bias"])
        h = functional.layer_norm(
            x + self.dropout(context),
            (HIDDEN,),
            w["attention_norm_weight"],
            w["attention_norm_bias"],
            LAYER_NORM_EPS,
        )
        inner = functional.gelu(functional.linear(h, w["ff_in_weight"], w["ff_in_bias"]))
        out = functional.linear(inner, w["ff_out_weight"], w["ff_out_bias"])
        h = functional.layer_norm(
            h + self.dropout(out), (HIDDEN,), w["ff_norm_weight"], w["ff_norm_bias"], LAYER_NORM_EPS
        )
        return h


def minilm_arrays(encoder_layer: Any) -> dict[str, NDArray[np.floating]]:
    """A MiniLM (BERT) layer's weights under the block's array names (``BLOCK_ARRAYS``)."""
    state = {k: v.detach().cpu().numpy() for k, v in encoder_layer.state_dict().items()}
    return {name: state[source] for name, source in BLOCK_ARRAYS.items()}


def pool(h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean and max of ``h`` (``(batch, tokens, 384)``) over the valid tokens: ``(batch, 768)``."""
    mask = valid[..., None].to(h.dtype)
    mean = (h * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    peak = h.masked_fill(~valid[..., None], torch.finfo(h.dtype).min).amax(dim=1)
    result: torch.Tensor = torch.cat([mean, peak], dim=1)
    return result


class TopStack(torch.nn.Module):
    """Fine-tuned copies of MiniLM's top ``depth`` layers (bottom first), run on the token
    vectors that enter the lowest of them, then mean- and max-pooled: ``(batch, 768)``."""

    def __init__(
        self, layers: Sequence[Mapping[str, NDArray[np.floating]]], dropout: float = 0.0
    ) -> None:
        super().__init__()
        if not layers:
            raise ValueError("a stack needs at least one layer")
        self.blocks: list[TopBlock] = list(TopBlock(arrays, dropout) for arrays in layers)
        for index, block in enumerate(self.blocks):
            self.add_module(f"block{index}", block)

    @classmethod
    def from_minilm(cls, encoder_layers: Sequence[Any], dropout: float = 0.0) -> TopStack:
        """Copies of MiniLM (BERT) layers, e.g. ``auto_model.encoder.layer[-2:]``."""
        return cls([minilm_arrays(layer) for layer in encoder_layers], dropout)

    @property
    def depth(self) -> int:
        return len(self.blocks)

    def arrays(self) -> list[dict[str, NDArray[np.float32]]]:
        return [block.arrays() for block in self.blocks]

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        h = x
        for block in self.blocks:
            h = block.layer(h, valid)
        return pool(h, valid)
