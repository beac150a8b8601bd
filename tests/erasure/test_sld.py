"""Safe Latent Diffusion: the guidance term on exact tensors, and the UNet hook that applies it."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from erasure.errors import ErasureError
from erasure.sld import SLD_PRESETS, SafeLatentGuidance, SldConfig, safety_guidance


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# values exactly representable in binary, so every expected number below is exact
EPS_U = _t(0.125, -0.125, 0.0, 0.25)
EPS_P = _t(0.5, 0.0078125, 0.25, -0.25)
EPS_S = _t(0.375, 0.0, 0.5, 0.125)
# e_p - e_s = (0.125, 0.0078125, -0.25, -0.375); e_s - e_u = (0.25, 0.125, 0.5, -0.125)


def test_scale_is_clamped_at_one_and_zero_at_or_above_the_threshold() -> None:
    config = SldConfig(0, 64.0, 0.0625, 0.0, 0.0)
    zero = torch.zeros(4, dtype=torch.float64)
    gamma, momentum = safety_guidance(EPS_U, EPS_P, EPS_S, zero, config)
    # mu = min(1, 64 |e_p - e_s|) = (1, 0.5, 1, 1); 0 where e_p - e_s >= 0.0625 (element 0)
    assert torch.equal(gamma, _t(0.0, 0.0625, 0.5, -0.125))
    assert torch.equal(momentum, gamma)  # beta 0: the momentum is the last term
    at_threshold = SldConfig(0, 64.0, 0.125, 0.0, 0.0)  # e_p - e_s == threshold: switched off
    gamma, _ = safety_guidance(EPS_U, EPS_P, EPS_S, zero, at_threshold)
    assert float(gamma[0]) == 0.0


def test_momentum_is_added_and_updated() -> None:
    config = SldConfig(0, 64.0, 0.0625, 0.5, 0.75)
    previous = _t(1.0, -1.0, 0.5, 0.0)
    gamma, momentum = safety_guidance(EPS_U, EPS_P, EPS_S, previous, config)
    term = _t(0.0, 0.0625, 0.5, -0.125)
    assert torch.equal(gamma, term + 0.5 * previous)
    assert torch.equal(momentum, 0.75 * previous + 0.25 * (term + 0.5 * previous))


def test_zero_safety_scale_is_no_guidance() -> None:
    gamma, _ = safety_guidance(
        EPS_U, EPS_P, EPS_S, torch.zeros(4, dtype=torch.float64), SldConfig(0, 0.0, 1.0, 0.0, 0.0)
    )
    assert torch.equal(gamma, torch.zeros(4, dtype=torch.float64))


def test_presets_are_the_papers() -> None:
    table = {k: (c.warmup_steps, c.guidance_scale, c.threshold) for k, c in SLD_PRESETS.items()}
    assert table == {
        "weak": (15, 200.0, 0.0),
        "medium": (10, 1000.0, 0.01),
        "strong": (7, 2000.0, 0.025),
        "max": (0, 5000.0, 1.0),
    }
    with pytest.raises(ErasureError, match="invalid SLD configuration"):
        SldConfig(0, 1.0, 0.0, 0.0, 1.5)


@pytest.fixture(scope="module")
def unet_call(tiny_pipe: Any) -> dict[str, Any]:
    torch.manual_seed(11)

    def encode(prompt: str) -> torch.Tensor:
        return tiny_pipe.encode_prompt(  # type: ignore[no-any-return]
            prompt=prompt, device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=False
        )[0]

    cond, uncond, safety = encode("a cat"), encode(""), encode("nudity")
    latents = torch.randn(1, 4, 8, 8)
    return {
        "unet": tiny_pipe.unet,
        "latents": torch.cat([latents, latents]),
        "states": torch.cat([uncond, cond]),
        "safety": safety,
    }


def _call(case: dict[str, Any], t: int) -> torch.Tensor:
    with torch.no_grad():
        out = case["unet"](
            case["latents"], t, encoder_hidden_states=case["states"], return_dict=False
        )
    return out[0]  # type: ignore[no-any-return]


def test_hook_hands_the_pipeline_prompt_minus_gamma(unet_call: dict[str, Any]) -> None:
    config = SldConfig(1, 1000.0, 0.01, 0.3, 0.4)
    plain = [_call(unet_call, t) for t in (900, 500)]
    unet, latents, safety = unet_call["unet"], unet_call["latents"][1:], unet_call["safety"]
    with torch.no_grad():
        eps_s = [unet(latents, t, encoder_hidden_states=safety).sample for t in (900, 500)]
    guidance = SafeLatentGuidance(unet_call["unet"], config, unet_call["safety"])
    with guidance:
        guided = [_call(unet_call, t) for t in (900, 500)]
    assert (guidance.steps, guidance.applied_steps) == (2, 1)
    # step 0 is warm-up: untouched, bit for bit; the momentum still builds up
    assert torch.equal(guided[0], plain[0])
    momentum = torch.zeros_like(eps_s[0])
    _, momentum = safety_guidance(plain[0][:1], plain[0][1:], eps_s[0], momentum, config)
    gamma, _ = safety_guidance(plain[1][:1], plain[1][1:], eps_s[1], momentum, config)
    assert torch.equal(guided[1][:1], plain[1][:1])  # the unconditional half is never changed
    assert torch.allclose(guided[1][1:], plain[1][1:] - gamma, atol=1e-6)
    assert float((guided[1][1:] - plain[1][1:]).abs().max()) > 1e-4
    # the hook is gone after the block
    assert torch.equal(_call(unet_call, 500), plain[1])


def test_hook_refuses_a_call_without_classifier_free_guidance(unet_call: dict[str, Any]) -> None:
    unet, safety = unet_call["unet"], unet_call["safety"]
    with (
        SafeLatentGuidance(unet, SLD_PRESETS["max"], safety),
        pytest.raises(ErasureError, match="classifier-free guidance"),
    ):
        unet(unet_call["latents"][:1], 10, encoder_hidden_states=safety)
