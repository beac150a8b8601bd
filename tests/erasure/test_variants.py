"""Variant patches: round trip, base-model check, registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from erasure.errors import BaseModelMismatch, ErasureError, VariantNotFound
from erasure.uce import UceConfig, uce_variant
from erasure.variants import VariantPatch, VariantRegistry, apply_patch
from tests.erasure.tiny_sd import tiny_pipeline


def test_patch_holds_only_edited_weights_and_reloads_bit_identically(
    tiny_pipe: Any, tmp_path: Path
) -> None:
    patch, _ = uce_variant(tiny_pipe, UceConfig.build(["cat"], "", ["dog"]), "no-cats")
    assert len(patch.weights) == 12 and all("attn2.to_" in k for k in patch.weights)
    registry = VariantRegistry(tmp_path)
    registry.save(patch)
    loaded = registry.load("no-cats")
    assert loaded.metadata == patch.metadata
    assert loaded.metadata.concepts == ("cat",) and loaded.metadata.preserve == ("dog",)
    for key, tensor in patch.weights.items():
        assert (
            torch.equal(loaded.weights[key], tensor) and loaded.weights[key].dtype == tensor.dtype
        )
    assert registry.names() == ["no-cats"]
    with pytest.raises(ErasureError, match="exists already"):
        registry.save(patch)


def test_apply_to_another_base_model_or_twice_is_refused(tiny_pipe: Any) -> None:
    patch, _ = uce_variant(tiny_pipe, UceConfig.build(["cat"], ""), "no-cats")
    other = tiny_pipeline(seed=1)
    with pytest.raises(BaseModelMismatch, match="built for base model"):
        apply_patch(other.unet, patch)
    target = tiny_pipeline(seed=0)
    apply_patch(target.unet, patch)
    state = target.unet.state_dict()
    assert all(torch.equal(state[k], v) for k, v in patch.weights.items())
    with pytest.raises(BaseModelMismatch, match="already carries an edit"):
        apply_patch(target.unet, patch)


def test_registry_errors_are_precise(tmp_path: Path) -> None:
    registry = VariantRegistry(tmp_path)
    with pytest.raises(VariantNotFound, match="known: \\(none\\)"):
        registry.load("missing")
    with pytest.raises(ErasureError, match="invalid variant name"):
        registry.path("../escape")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ErasureError, match="cannot read variant patch"):
        VariantPatch.load(tmp_path / "junk.safetensors")
