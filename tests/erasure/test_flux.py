"""UCE on a tiny random ``FluxTransformer2DModel``: the two biased text-in projections, the
prompt encoders (tiny random T5 and CLIP) against the pipeline's own encoding, the invariants."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from erasure.adapters import find_text_projections
from erasure.errors import BaseModelMismatch
from erasure.targets import TokenPolicy, erase_pairs, preserve_vectors, select_tokens
from erasure.uce import UceConfig, prompt_encoders, uce_edit, uce_variant
from erasure.variants import apply_patch
from tests.erasure.tiny_sd import T5_LENGTH, tiny_flux_pipeline

KEYS = ("context_embedder.weight", "time_text_embed.text_embedder.linear_1.weight")


@pytest.fixture(scope="module")
def flux() -> Any:
    return tiny_flux_pipeline(seed=0)


@pytest.fixture(scope="module")
def encoders(flux: Any) -> Any:
    return prompt_encoders(flux, max_sequence_length=T5_LENGTH)


def test_the_context_stream_text_projections_are_found_with_their_bias(flux: Any) -> None:
    found = {p.name: p for p in find_text_projections(flux.transformer)}
    assert set(found) == {"context_embedder", "time_text_embed.text_embedder.linear_1"}
    assert found["context_embedder"].source == "t5"
    assert tuple(found["context_embedder"].weight.shape) == (32, 48)
    assert found["time_text_embed.text_embedder.linear_1"].source == "pooled"
    assert all(p.module.bias is not None for p in found.values())


def test_encoders_reproduce_the_pipelines_prompt_encoding(flux: Any, encoders: Any) -> None:
    prompts = ["a cat", ""]
    hidden, mask = encoders["t5"].encode(prompts)
    expected = flux._get_t5_prompt_embeds(prompts, max_sequence_length=T5_LENGTH, device="cpu")
    assert torch.allclose(hidden, expected, atol=1e-6)
    assert mask.sum(dim=1).tolist() == [6, 1]  # "a cat" + </s>; "" is </s> alone (no BOS)
    # last content token of "a cat" is "t" (index 4); the empty prompt selects its EOS
    assert torch.equal(select_tokens(hidden[0], mask[0], TokenPolicy.LAST_CONTENT), hidden[0, 4:5])
    assert torch.equal(select_tokens(hidden[1], mask[1], TokenPolicy.LAST_CONTENT), hidden[1, :1])
    pooled, _ = encoders["pooled"].encode(prompts)
    expected_pooled = flux._get_clip_prompt_embeds(prompts, device="cpu")
    assert torch.allclose(pooled[:, 0], expected_pooled, atol=1e-6)
    assert select_tokens(pooled[0], torch.ones(1), TokenPolicy.LAST_PLUS_EOS).shape == (1, 32)


def test_uce_on_flux_meets_the_invariants_with_the_bias_counted_once(
    flux: Any, encoders: Any
) -> None:
    config = UceConfig.build(["nudity"], "", preserve=["a tree"], lam=1e-6)
    result = uce_edit(flux.transformer, encoders, config)
    assert set(result.weights) == set(KEYS)
    modules = {p.key: (p.module, p.source) for p in find_text_projections(flux.transformer)}
    generator = torch.Generator().manual_seed(1)
    for key, (module, source) in modules.items():
        c_e, c_g = erase_pairs(encoders[source], ["nudity"], [""], TokenPolicy.LAST_CONTENT)
        keep = preserve_vectors(encoders[source], ["a tree"], TokenPolicy.LAST_CONTENT)
        assert keep is not None
        w_old, w_new = module.weight.detach().double(), result.weights[key].double()
        bias = module.bias.detach().double()
        # the edited layer maps the erased vector where the original layer maps the guide —
        # bias once (the reference FLUX script's targets module(c) count it twice)
        edited = c_e.double() @ w_new.T + bias
        target = c_g.double() @ w_old.T + bias
        assert float((edited - target).norm() / target.norm()) <= 1e-4, key
        kept = keep.double() @ w_new.T + bias
        assert torch.allclose(kept, keep.double() @ w_old.T + bias, rtol=0, atol=1e-4), key
        delta = w_new - w_old
        assert int(torch.linalg.matrix_rank(delta, rtol=1e-6)) <= c_e.shape[0]
        basis = torch.linalg.qr(torch.cat([c_e, keep]).double().T).Q
        x = torch.randn(4, w_old.shape[1], dtype=torch.float64, generator=generator)
        orthogonal = x - (x @ basis) @ basis.T
        assert float((orthogonal @ delta.T).abs().max()) <= 1e-5 * float(w_old.abs().max())
    # guide = erase is a no-op on the transformer
    noop = uce_edit(flux.transformer, encoders, UceConfig.build(["nudity"], "nudity", ["a tree"]))
    for key, (module, _) in modules.items():
        assert torch.allclose(noop.weights[key], module.weight, atol=1e-6)


def test_flux_variant_applies_to_its_base_only(flux: Any) -> None:
    patch, _ = uce_variant(
        flux, UceConfig.build(["nudity"], ""), "flux-no-nudity", max_sequence_length=T5_LENGTH
    )
    assert set(patch.weights) == set(KEYS)
    target = tiny_flux_pipeline(seed=0).transformer
    apply_patch(target, patch)
    assert torch.equal(target.context_embedder.weight, patch.weights[KEYS[0]])
    with pytest.raises(BaseModelMismatch, match="built for base model"):
        apply_patch(tiny_flux_pipeline(seed=1).transformer, patch)
