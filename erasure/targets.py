"""Which text-embedding vectors an edit acts on: prompt encoders and token policies.

A ``PromptEncoder`` returns, for each prompt, the conditioning the model sees at inference —
``hidden`` (batch, tokens, d) and the tokenizer's ``attention_mask`` (batch, tokens), which covers
BOS … EOS. Token policies pick rows of ``hidden``:

- ``last_content``: the last content token, index ``mask.sum() - 2`` (the current reference
  code). An empty prompt selects BOS (CLIP) or EOS (T5, which has no BOS). Leaks through the EOS
  positions, which CLIP (causal) fills with the concept as well.
- ``last_plus_eos``: from the last content token to the end of the sequence (EOS and padding,
  the paper-era code). Erase and guide blocks are trimmed to equal length and paired position by
  position.
- ``all``: every position (useful for preserve sets).

A pooled encoder (FLUX's CLIP ``pooler_output``) returns one position per prompt; every policy
selects it.

Encoders: ``ClipPromptEncoder`` (SD 1.x/2.x, SDXL), and for FLUX ``T5PromptEncoder`` (the
``context_embedder``'s input) and ``PooledClipPromptEncoder`` (the pooled-text projection's
input), built from a pipeline by ``flux_prompt_encoders``. Each reproduces the pipeline's own
prompt encoding (padding, truncation, which hidden state), so an edit acts on exactly the vectors
the denoiser sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Protocol

import torch

from erasure.errors import ErasureError

__all__ = [
    "ClipPromptEncoder",
    "PooledClipPromptEncoder",
    "PromptEncoder",
    "T5PromptEncoder",
    "TokenPolicy",
    "erase_pairs",
    "flux_prompt_encoders",
    "preserve_vectors",
    "select_tokens",
]


class TokenPolicy(StrEnum):
    LAST_CONTENT = "last_content"
    LAST_PLUS_EOS = "last_plus_eos"
    ALL = "all"


class PromptEncoder(Protocol):
    """Encodes prompts exactly as the pipeline conditions the denoiser on them."""

    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(hidden (B, L, d), attention_mask (B, L))``; CPU-bound, no gradients."""
        ...


def select_tokens(hidden: torch.Tensor, mask: torch.Tensor, policy: TokenPolicy) -> torch.Tensor:
    """Rows of one prompt's ``hidden`` (L, d) chosen by ``policy``: (k, d)."""
    if hidden.shape[0] == 1:  # a pooled embedding
        return hidden
    covered = int(mask.sum())
    if covered < 1:
        raise ErasureError("the attention mask must cover at least the EOS token")
    last = max(covered - 2, 0)  # T5 has no BOS: its empty prompt is EOS alone
    if policy is TokenPolicy.LAST_CONTENT:
        return hidden[last : last + 1]
    if policy is TokenPolicy.LAST_PLUS_EOS:
        return hidden[last:]
    return hidden


def erase_pairs(
    encoder: PromptEncoder, erase: Sequence[str], guide: Sequence[str], policy: TokenPolicy
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paired input vectors ``(c_erase (k, d), c_guide (k, d))`` for ``erase[i] → guide[i]``."""
    if len(erase) != len(guide):
        raise ErasureError(f"{len(erase)} erase concepts but {len(guide)} guides")
    if not erase:
        raise ErasureError("nothing to erase")
    hidden_e, mask_e = encoder.encode(erase)
    hidden_g, mask_g = encoder.encode(guide)
    rows_e: list[torch.Tensor] = []
    rows_g: list[torch.Tensor] = []
    for i in range(len(erase)):
        block_e = select_tokens(hidden_e[i], mask_e[i], policy)
        block_g = select_tokens(hidden_g[i], mask_g[i], policy)
        n = min(block_e.shape[0], block_g.shape[0])
        rows_e.append(block_e[:n])
        rows_g.append(block_g[:n])
    return torch.cat(rows_e), torch.cat(rows_g)


def preserve_vectors(
    encoder: PromptEncoder, preserve: Sequence[str], policy: TokenPolicy
) -> torch.Tensor | None:
    # (the paper-era reference preserved all positions: ``policy=TokenPolicy.ALL``)
    """Input vectors of the preserve set, (m, d), or ``None`` when it is empty."""
    if not preserve:
        return None
    hidden, mask = encoder.encode(preserve)
    return torch.cat([select_tokens(hidden[i], mask[i], policy) for i in range(len(preserve))])


class ClipPromptEncoder:
    """SD 1.x/2.x (one CLIP encoder, last hidden state) and SDXL (two, penultimate, concatenated).

    ``tokenizers`` and ``text_encoders`` are transformers objects from a local pipeline; the mask
    returned is the first tokenizer's.
    """

    def __init__(
        self, tokenizers: Sequence[Any], text_encoders: Sequence[Any], *, penultimate: bool
    ) -> None:
        if len(tokenizers) != len(text_encoders) or not tokenizers:
            raise ErasureError("one tokenizer per text encoder is required")
        self._tokenizers = list(tokenizers)
        self._encoders = list(text_encoders)
        self._penultimate = penultimate

    @classmethod
    def from_pipeline(cls, pipe: Any) -> ClipPromptEncoder:
        second = getattr(pipe, "text_encoder_2", None)
        if second is not None:
            return cls(
                [pipe.tokenizer, pipe.tokenizer_2],
                [pipe.text_encoder, second],
                penultimate=True,
            )
        return cls([pipe.tokenizer], [pipe.text_encoder], penultimate=False)

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        parts: list[torch.Tensor] = []
        mask: torch.Tensor | None = None
        for tokenizer, encoder in zip(self._tokenizers, self._encoders, strict=True):
            tokens = tokenizer(
                list(prompts),
                padding="max_length",
                max_length=tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            )
            device = next(encoder.parameters()).device
            out = encoder(tokens.input_ids.to(device), output_hidden_states=self._penultimate)
            parts.append(out.hidden_states[-2] if self._penultimate else out[0])
            if mask is None:
                mask = tokens.attention_mask
        assert mask is not None
        return torch.cat(parts, dim=-1), mask


class T5PromptEncoder:
    """FLUX's T5 prompt states (``text_encoder_2``): padded to ``max_sequence_length`` and, as
    in ``FluxPipeline``, encoded without an attention mask; the mask returned is the
    tokenizer's (content + EOS), for token selection only."""

    def __init__(self, tokenizer: Any, encoder: Any, *, max_sequence_length: int = 512) -> None:
        self._tokenizer = tokenizer
        self._encoder = encoder
        self._length = max_sequence_length

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self._tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self._length,
            truncation=True,
            return_tensors="pt",
        )
        device = next(self._encoder.parameters()).device
        hidden = self._encoder(tokens.input_ids.to(device), output_hidden_states=False)[0]
        return hidden, tokens.attention_mask


class PooledClipPromptEncoder:
    """FLUX's pooled CLIP embedding (``text_encoder.pooler_output``): one position per prompt."""

    def __init__(self, tokenizer: Any, encoder: Any) -> None:
        self._tokenizer = tokenizer
        self._encoder = encoder

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self._tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self._tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        device = next(self._encoder.parameters()).device
        pooled = self._encoder(tokens.input_ids.to(device), output_hidden_states=False)
        hidden = pooled.pooler_output[:, None, :]
        return hidden, torch.ones(hidden.shape[:2], dtype=torch.long)


def flux_prompt_encoders(pipe: Any, *, max_sequence_length: int = 512) -> dict[str, PromptEncoder]:
    """The encoders feeding a FLUX transformer's text projections, by projection source."""
    return {
        "t5": T5PromptEncoder(
            pipe.tokenizer_2, pipe.text_encoder_2, max_sequence_length=max_sequence_length
        ),
        "pooled": PooledClipPromptEncoder(pipe.tokenizer, pipe.text_encoder),
    }
