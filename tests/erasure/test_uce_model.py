"""UCE over real (tiny, random) diffusers and transformers modules."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from erasure.adapters import find_text_projections
from erasure.targets import ClipPromptEncoder, TokenPolicy, erase_pairs, select_tokens
from erasure.uce import UceConfig, uce_edit


def test_tiny_unet_has_twelve_bias_free_kv_projections(tiny_pipe: Any) -> None:
    projections = find_text_projections(tiny_pipe.unet)
    assert len(projections) == 12
    assert all(p.module.bias is None and tuple(p.weight.shape) == (64, 32) for p in projections)


def test_last_content_token_index(tiny_pipe: Any) -> None:
    encoder = ClipPromptEncoder.from_pipeline(tiny_pipe)
    hidden, mask = encoder.encode(["van gogh"])
    assert int(mask[0].sum()) == 9  # BOS + 7 characters + EOS
    assert torch.equal(select_tokens(hidden[0], mask[0], TokenPolicy.LAST_CONTENT), hidden[0, 7:8])
    block = select_tokens(hidden[0], mask[0], TokenPolicy.LAST_PLUS_EOS)
    assert block.shape[0] == hidden.shape[1] - 7


@pytest.mark.parametrize("policy", [TokenPolicy.LAST_CONTENT, TokenPolicy.LAST_PLUS_EOS])
def test_edit_maps_erased_tokens_to_guide_outputs_on_every_projection(
    tiny_pipe: Any, policy: TokenPolicy
) -> None:
    encoder = ClipPromptEncoder.from_pipeline(tiny_pipe)
    config = UceConfig.build(["cat"], "dog", preserve=["a tree"], lam=1e-6, token_policy=policy)
    if policy is TokenPolicy.LAST_PLUS_EOS:  # many positions: keep the system well posed
        config = UceConfig.build(["cat"], "dog", lam=1e-3, token_policy=policy)
    result = uce_edit(tiny_pipe.unet, encoder, config)
    assert len(result.weights) == 12
    c_erase, c_guide = erase_pairs(encoder, ["cat"], ["dog"], policy)
    for projection in find_text_projections(tiny_pipe.unet):
        w_old = projection.weight.detach().double()
        w_new = result.weights[projection.key].double()
        target = c_guide.double() @ w_old.T
        error = (c_erase.double() @ w_new.T - target).norm() / target.norm()
        limit = 1e-4 if policy is TokenPolicy.LAST_CONTENT else 5e-2
        assert float(error) <= limit, projection.name
        assert int(torch.linalg.matrix_rank(w_new - w_old, rtol=1e-6)) <= c_erase.shape[0]
    # the model itself is untouched: uce_edit returns weights, it does not apply them
    assert not any(
        torch.equal(p.weight, result.weights[p.key]) for p in find_text_projections(tiny_pipe.unet)
    )


def test_guide_equal_to_erase_is_a_noop_on_the_unet(tiny_pipe: Any) -> None:
    encoder = ClipPromptEncoder.from_pipeline(tiny_pipe)
    result = uce_edit(tiny_pipe.unet, encoder, UceConfig.build(["cat"], "cat", preserve=["dog"]))
    for projection in find_text_projections(tiny_pipe.unet):
        assert torch.allclose(result.weights[projection.key], projection.weight, atol=1e-6)
