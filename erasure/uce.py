"""UCE over a whole denoiser: embed the concepts, solve each projection from its original weight.

``uce_edit`` never modifies the model: it returns the new weights keyed by state-dict key, so the
caller decides whether to apply them or save them as a variant patch. Every projection is solved
from the weights the model has *now*; pass the base model, never an already-edited one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from erasure.adapters import find_text_projections
from erasure.closed_form import UceDiagnostics, UceSystem
from erasure.errors import ErasureError
from erasure.targets import (
    ClipPromptEncoder,
    PromptEncoder,
    TokenPolicy,
    erase_pairs,
    flux_prompt_encoders,
    preserve_vectors,
)
from erasure.variants import VariantMetadata, VariantPatch, base_fingerprint

__all__ = ["UceConfig", "UceResult", "prompt_encoders", "uce_edit", "uce_variant"]


@dataclass(frozen=True, slots=True)
class UceConfig:
    """What to erase, towards what, what to keep, and how hard."""

    erase: tuple[str, ...]
    guide: tuple[str, ...]  # one per erase concept; "" moves towards the unconditional
    preserve: tuple[str, ...] = ()
    lam: float = 0.5
    erase_scale: float = 1.0
    preserve_scale: float = 1.0
    token_policy: TokenPolicy = TokenPolicy.LAST_CONTENT
    edit_values_only: bool = False  # True: only to_v (keys untouched)
    # which positions of the preserve prompts are kept (None: token_policy; the paper-era
    # reference kept ``all``)
    preserve_token_policy: TokenPolicy | None = None

    @classmethod
    def build(
        cls,
        erase: Sequence[str],
        guide: Sequence[str] | str = "",
        preserve: Sequence[str] = (),
        **kwargs: object,
    ) -> UceConfig:
        guides = (guide,) * len(erase) if isinstance(guide, str) else tuple(guide)
        return cls(tuple(erase), guides, tuple(preserve), **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class UceResult:
    weights: dict[str, torch.Tensor]
    diagnostics: dict[str, UceDiagnostics] = field(default_factory=dict)


@torch.no_grad()
def uce_edit(
    model: nn.Module,
    encoders: PromptEncoder | Mapping[str, PromptEncoder],
    config: UceConfig,
) -> UceResult:
    """New weights for every text projection of ``model``.

    ``encoders``: one ``PromptEncoder`` (UNets: source ``"text"``) or one per projection source
    (FLUX: ``"t5"`` and ``"pooled"``).
    """
    by_source = encoders if isinstance(encoders, Mapping) else {"text": encoders}
    cache: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = {}
    weights: dict[str, torch.Tensor] = {}
    diagnostics: dict[str, UceDiagnostics] = {}
    systems: dict[tuple[str, str], UceSystem] = {}
    for projection in find_text_projections(model):
        if config.edit_values_only and not projection.name.endswith("to_v"):
            continue
        if projection.source not in by_source:
            raise ErasureError(
                f"{projection.name} reads {projection.source!r} embeddings but no encoder "
                f"was given for that source (given: {', '.join(sorted(by_source))})"
            )
        if projection.source not in cache:
            encoder = by_source[projection.source]
            c_erase, c_guide = erase_pairs(encoder, config.erase, config.guide, config.token_policy)
            preserve = preserve_vectors(
                encoder, config.preserve, config.preserve_token_policy or config.token_policy
            )
            cache[projection.source] = (c_erase, c_guide, preserve)
        c_erase, c_guide, preserve = cache[projection.source]
        w_old = projection.weight
        device = w_old.device
        c_guide64 = c_guide.to(device=device, dtype=torch.float64)
        targets = c_guide64 @ w_old.to(torch.float64).T  # W_old·c*: the bias is not a target
        system_key = (projection.source, str(device))
        if system_key not in systems:  # M depends on the inputs only: factorise it once
            systems[system_key] = UceSystem(
                c_erase,
                preserve,
                lam=config.lam,
                erase_scale=config.erase_scale,
                preserve_scale=config.preserve_scale,
                device=device,
            )
        new, diag = systems[system_key].solve(w_old, targets)
        weights[projection.key] = new.detach().clone()
        diagnostics[projection.key] = diag
    if not weights:
        raise ErasureError("no projection selected (edit_values_only on a model without to_v?)")
    return UceResult(weights, diagnostics)


def prompt_encoders(
    pipe: Any, *, max_sequence_length: int = 512
) -> PromptEncoder | dict[str, PromptEncoder]:
    """The prompt encoders of a local pipeline: CLIP for SD/SDXL UNets, T5 + pooled CLIP for a
    FLUX transformer (``max_sequence_length``: the T5 length the pipeline is run with)."""
    if getattr(pipe, "unet", None) is None and hasattr(
        getattr(pipe, "transformer", None), "context_embedder"
    ):
        return flux_prompt_encoders(pipe, max_sequence_length=max_sequence_length)
    return ClipPromptEncoder.from_pipeline(pipe)


def uce_variant(
    pipe: Any,
    config: UceConfig,
    name: str,
    *,
    base_model: str = "",
    max_sequence_length: int = 512,
) -> tuple[VariantPatch, UceResult]:
    """Edit ``pipe``'s denoiser (UNet, or FLUX transformer) and package the result as a patch."""
    denoiser = getattr(pipe, "unet", None) or pipe.transformer
    encoders = prompt_encoders(pipe, max_sequence_length=max_sequence_length)
    result = uce_edit(denoiser, encoders, config)
    metadata = VariantMetadata(
        name=name,
        method="uce",
        base_fingerprint=base_fingerprint(denoiser, result.weights),
        concepts=config.erase,
        guide=config.guide,
        preserve=config.preserve,
        lam=config.lam,
        token_policy=config.token_policy.value,
        base_model=base_model,
        extra={
            "erase_scale": str(config.erase_scale),
            "preserve_scale": str(config.preserve_scale),
            "edit_values_only": str(config.edit_values_only),
            "preserve_token_policy": (config.preserve_token_policy or config.token_policy).value,
            "torch": torch.__version__,
        },
    )
    return VariantPatch(result.weights, metadata), result
