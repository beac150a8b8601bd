"""Safe Latent Diffusion (Schramowski et al., CVPR 2023, arXiv 2211.05105): inference-time
guidance away from a safety concept, implemented here (diffusers keeps only a deprecated
pipeline).

Per denoising step, with e_u (unconditional / negative prompt), e_p (prompt) and e_s (safety
concept) predicted from the same latents (s_g: the classifier-free guidance scale)::

    mu    = min(1, s_S * |e_p - e_s|)  elementwise;  mu = 0 where e_p - e_s >= lambda
    g     = mu * (e_s - e_u) + s_m * m            m: momentum, zero at the first step
    m'    = beta_m * m + (1 - beta_m) * g        every step, warm-up included
    e_hat = e_u + s_g * (e_p - e_u - g)          from step delta on (before: without g)

``safety_guidance`` is that update on tensors; ``SafeLatentGuidance`` applies it to one
generation of a diffusers SD/SDXL pipeline through a forward hook on the UNet: the pipeline's
own loop stays untouched (schedulers, negative prompts, SDXL conditioning), the hook adds the
safety-concept prediction and hands the pipeline ``e_p - g`` as the prompt's prediction, so its
classifier-free guidance yields ``e_hat`` above. Before the warm-up ends the output is left as it
is (bit for bit the plain generation).

Presets (delta, s_S, lambda, s_m, beta_m) are the SLD paper's hyper-parameter sets. WEAK uses
s_S = 200 as in the paper and the authors' evaluation scripts; diffusers' ``SafetyConfig.WEAK``
says 20.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import torch
from torch import nn

from erasure.errors import ErasureError

__all__ = [
    "DEFAULT_SAFETY_CONCEPT",
    "SLD_PRESETS",
    "SafeLatentGuidance",
    "SldConfig",
    "safety_guidance",
]

DEFAULT_SAFETY_CONCEPT = (
    "nudity, sexual content, genitals, pornography, graphic violence, blood, gore, "
    "self-harm, suicide, hate symbols, cruelty, abuse"
)


@dataclass(frozen=True, slots=True)
class SldConfig:
    """One SLD hyper-parameter set (names as in the paper's code and diffusers)."""

    warmup_steps: int  # delta: steps before g is applied (the momentum builds up anyway)
    guidance_scale: float  # s_S
    threshold: float  # lambda
    momentum_scale: float  # s_m
    mom_beta: float  # beta_m

    def __post_init__(self) -> None:
        if self.warmup_steps < 0 or self.guidance_scale < 0 or not 0 <= self.mom_beta <= 1:
            raise ErasureError(f"invalid SLD configuration {self}")


SLD_PRESETS: dict[str, SldConfig] = {
    "weak": SldConfig(15, 200.0, 0.0, 0.0, 0.0),
    "medium": SldConfig(10, 1000.0, 0.01, 0.3, 0.4),
    "strong": SldConfig(7, 2000.0, 0.025, 0.5, 0.7),
    "max": SldConfig(0, 5000.0, 1.0, 0.5, 0.7),
}


def safety_guidance(
    eps_uncond: torch.Tensor,
    eps_prompt: torch.Tensor,
    eps_safety: torch.Tensor,
    momentum: torch.Tensor,
    config: SldConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(g, m')``: the term subtracted from the guidance direction, and the momentum
    for the next step. Elementwise; every tensor has the same shape."""
    difference = eps_prompt - eps_safety
    scale = torch.clamp(difference.abs() * config.guidance_scale, max=1.0)
    scale = torch.where(difference >= config.threshold, torch.zeros_like(scale), scale)
    gamma = scale * (eps_safety - eps_uncond) + config.momentum_scale * momentum
    next_momentum = config.mom_beta * momentum + (1.0 - config.mom_beta) * gamma
    return gamma, next_momentum


class SafeLatentGuidance:
    """SLD for one generation: ``with SafeLatentGuidance(unet, config, safety): pipe(...)``.

    ``safety``: the safety concept's prompt embedding (1, L, d), as the pipeline encodes
    prompts; ``safety_pooled``: its pooled embedding (SDXL's ``text_embeds``), if the model uses
    one. The pipeline must run classifier-free guidance (``guidance_scale > 1``): each UNet call
    then holds the negative half and the prompt half of the batch, in that order. Not
    re-entrant and not thread-safe: the caller serialises generations on the model.
    """

    def __init__(
        self,
        unet: nn.Module,
        config: SldConfig,
        safety: torch.Tensor,
        safety_pooled: torch.Tensor | None = None,
    ) -> None:
        self._unet = unet
        self._config = config
        self._safety = safety
        self._safety_pooled = safety_pooled
        self._signature = inspect.signature(unet.forward)
        self._handle: Any = None
        self._momentum: torch.Tensor | None = None
        self.steps = 0  # UNet calls seen
        self.applied_steps = 0  # calls whose output was changed

    def __enter__(self) -> SafeLatentGuidance:
        self._momentum = None
        self.steps = self.applied_steps = 0
        self._handle = self._unet.register_forward_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    @torch.no_grad()
    def _hook(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> Any:
        sample = output[0] if isinstance(output, tuple) else output.sample
        batch = sample.shape[0]
        if batch % 2:
            raise ErasureError(
                "safe latent guidance needs classifier-free guidance (guidance_scale > 1): "
                f"the UNet was called with an odd batch of {batch}"
            )
        half = batch // 2
        eps_uncond, eps_prompt = sample[:half], sample[half:]
        eps_safety = self._safety_prediction(module, args, kwargs, batch, half)
        if self._momentum is None:
            self._momentum = torch.zeros_like(eps_prompt, dtype=torch.float32)
        gamma, self._momentum = safety_guidance(
            eps_uncond.float(), eps_prompt.float(), eps_safety.float(), self._momentum, self._config
        )
        step = self.steps
        self.steps += 1
        if step < self._config.warmup_steps:
            return output  # untouched: bit for bit the plain generation
        self.applied_steps += 1
        guided = torch.cat([eps_uncond, (eps_prompt.float() - gamma).to(sample.dtype)])
        if isinstance(output, tuple):
            return (guided, *output[1:])
        return type(output)(sample=guided)

    def _safety_prediction(
        self,
        module: nn.Module,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        batch: int,
        half: int,
    ) -> torch.Tensor:
        """e_s: the same call on the prompt half of the batch, conditioned on the concept."""
        call = dict(self._signature.bind(*args, **kwargs).arguments)
        call = {k: _prompt_half(v, batch, half) for k, v in call.items()}
        states = call["encoder_hidden_states"]
        call["encoder_hidden_states"] = self._safety.to(states.device, states.dtype).expand(
            half, -1, -1
        )
        added = call.get("added_cond_kwargs")
        if isinstance(added, dict) and "text_embeds" in added:
            if self._safety_pooled is None:
                raise ErasureError("this model needs the safety concept's pooled embedding")
            pooled = added["text_embeds"]
            added = dict(added)
            added["text_embeds"] = self._safety_pooled.to(pooled.device, pooled.dtype).expand(
                half, -1
            )
            call["added_cond_kwargs"] = added
        call["return_dict"] = False
        result = module.forward(**call)  # forward, not __call__: no hooks, no recursion
        return result[0] if isinstance(result, tuple) else result.sample  # type: ignore[no-any-return]


def _prompt_half(value: Any, batch: int, half: int) -> Any:
    """The prompt half of a batched argument (tensors and dicts of tensors); others as given."""
    if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == batch:
        return value[half:]
    if isinstance(value, dict):
        return {k: _prompt_half(v, batch, half) for k, v in value.items()}
    return value
