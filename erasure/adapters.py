"""Where the text-in linear projections live in each model family.

- SD 1.x / 2.x / SDXL ``UNet2DConditionModel``: every cross-attention ``*.attn2.to_k`` and
  ``*.attn2.to_v`` (input: the prompt encoder's token states; SDXL: CLIP-L ⊕ bigG, d_in 2048).
  SDXL's pooled ``text_embeds`` reach the UNet through ``add_embedding`` and are not edited:
  some concept signal can leak through that path.
- FLUX ``FluxTransformer2DModel``: ``context_embedder`` (T5 states, source ``"t5"``) and
  ``time_text_embed.text_embedder.linear_1`` (pooled CLIP, source ``"pooled"``). Both have a
  bias; the closed form edits ``W`` only and targets ``W_old·c`` (never ``module(c)``, which would
  count the bias twice). These are the context stream's only text-in maps with a fixed input:
  the joint blocks' context-stream K/V projections (``attn.add_k_proj`` / ``attn.add_v_proj``)
  read the context after a timestep-modulated LayerNorm (``norm1_context``) and, from the second
  block on, after earlier blocks rewrote it, so no prompt embedding ``c`` is their input and the
  closed form has nothing to solve for there. The same holds for SD3's MMDiT.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from erasure.errors import ErasureError

__all__ = ["TextProjection", "find_text_projections"]

_FLUX_PROJECTIONS = {
    "context_embedder": "t5",
    "time_text_embed.text_embedder.linear_1": "pooled",
}


@dataclass(frozen=True, slots=True)
class TextProjection:
    """One linear map from text embeddings into the denoiser. ``key`` is the state-dict key."""

    name: str
    module: nn.Linear
    source: str  # which prompt embedding feeds it: "text", "t5" or "pooled"

    @property
    def key(self) -> str:
        return f"{self.name}.weight"

    @property
    def weight(self) -> torch.Tensor:
        return self.module.weight


def find_text_projections(model: nn.Module) -> list[TextProjection]:
    """The projections UCE edits in ``model``, in module order; ``ErasureError`` if none."""
    kind = type(model).__name__
    found: list[TextProjection] = []
    if kind.startswith("Flux") or hasattr(model, "context_embedder"):
        modules = dict(model.named_modules())
        for name, source in _FLUX_PROJECTIONS.items():
            module = modules.get(name)
            if isinstance(module, nn.Linear):
                found.append(TextProjection(name, module, source))
    else:
        for name, module in model.named_modules():
            if (name.endswith("attn2.to_k") or name.endswith("attn2.to_v")) and isinstance(
                module, nn.Linear
            ):
                found.append(TextProjection(name, module, "text"))
    if not found:
        raise ErasureError(
            f"no cross-attention text projections found in a {kind} "
            "(expected *.attn2.to_k / *.attn2.to_v, or FLUX context_embedder)"
        )
    return found
