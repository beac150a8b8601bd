"""The local diffusers generator: per-request variants, deterministic, never mixed; Safe Latent
Diffusion per request.

The tiny pipeline here has 64-wide text states and 16 positions, so that a variant can preserve
every position of a benign prompt and of the negative prompt (32 vectors) besides the erased one:
its output for that prompt must then stay the base model's, while the erased prompt changes."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from erasure.errors import BaseModelMismatch
from erasure.targets import TokenPolicy
from erasure.uce import UceConfig, uce_variant
from erasure.variants import VariantRegistry
from generators.base import (
    GenerationError,
    GenerationRequest,
    Modality,
    SafeGuidance,
    UnsupportedRequest,
)
from generators.diffusers_local import DiffusersLocalGenerator
from tests.erasure.tiny_sd import save_tiny_pipeline, tiny_pipeline

SHAPE = {"text_dim": 64, "max_length": 16}
STEPS = 2


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("sd") / "tiny-sd", seed=0, **SHAPE)


@pytest.fixture(scope="module")
def pipe() -> Any:
    return tiny_pipeline(seed=0, **SHAPE)


@pytest.fixture(scope="module")
def generator(
    model_dir: Path, pipe: Any, tmp_path_factory: pytest.TempPathFactory
) -> DiffusersLocalGenerator:
    registry = VariantRegistry(tmp_path_factory.mktemp("variants"))
    no_cats = UceConfig.build(
        ["cat"], "", ["a tree", "blurry"], lam=0.01, preserve_token_policy=TokenPolicy.ALL
    )
    registry.save(uce_variant(pipe, no_cats, "no-cats")[0])
    registry.save(uce_variant(pipe, UceConfig.build(["dog"], "tree", lam=0.01), "no-dogs")[0])
    registry.save(uce_variant(pipe, UceConfig.build(["cat"], "cat", ["dog"]), "noop")[0])
    return DiffusersLocalGenerator(
        model_dir, model_name="tiny-sd", variants_dir=registry.directory, steps=STEPS
    )


def _request(
    prompt: str, variant: str | None = None, seed: int = 5, sld: str | None = None
) -> GenerationRequest:
    return GenerationRequest(
        modality=Modality.IMAGE,
        prompt=prompt,
        model="tiny-sd",
        size=(64, 64),
        seed=seed,
        variant=variant,
        negative_prompt="blurry",
        safe_guidance=None if sld is None else SafeGuidance(sld, "nudity"),
    )


def _pixels(data: bytes) -> np.ndarray[Any, Any]:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


async def test_models_list_the_variants(generator: DiffusersLocalGenerator) -> None:
    assert generator.models == ("tiny-sd", "tiny-sd:no-cats", "tiny-sd:no-dogs", "tiny-sd:noop")
    info = generator.variant_info("no-cats")
    assert (info["method"], info["concepts"], info["preserve"]) == (
        "uce",
        ("cat",),
        ("a tree", "blurry"),
    )
    assert info["tensors"] == 12 and len(str(info["base_fingerprint"])) == 16


async def test_variant_changes_only_what_its_edit_acts_on(
    generator: DiffusersLocalGenerator,
) -> None:
    base_art = (await generator.generate(_request("cat")))[0]
    base = base_art.data
    assert base_art.model == "tiny-sd"
    assert (await generator.generate(_request("cat")))[0].data == base  # deterministic seed
    erased_art = (await generator.generate(_request("cat", "no-cats")))[0]
    erased = erased_art.data
    assert erased_art.model == "tiny-sd:no-cats"  # what the C2PA manifest names
    assert np.abs(_pixels(erased) - _pixels(base)).max() >= 5
    # a prompt the edit preserved (every position, and the negative prompt's): the base image
    tree = _pixels((await generator.generate(_request("a tree")))[0].data)
    tree_erased = _pixels((await generator.generate(_request("a tree", "no-cats")))[0].data)
    assert np.abs(tree_erased - tree).max() <= 1
    # a no-op edit (guide = erase) leaves the output as the base model's
    noop = (await generator.generate(_request("cat", "noop")))[0].data
    assert np.abs(_pixels(noop) - _pixels(base)).max() <= 1
    # selecting the base again restores the original weights bit for bit
    assert (await generator.generate(_request("cat")))[0].data == base
    by_model_name = GenerationRequest(
        modality=Modality.IMAGE,
        prompt="cat",
        model="tiny-sd:no-cats",
        size=(64, 64),
        seed=5,
        negative_prompt="blurry",
    )
    assert (await generator.generate(by_model_name))[0].data == erased


async def test_interleaved_concurrent_requests_equal_sequential_results(
    generator: DiffusersLocalGenerator,
) -> None:
    cases = [(v, sld) for v in (None, "no-cats", "no-dogs") for sld in (None, "max")]
    sequential = [
        (await generator.generate(_request("cat", v, 1, sld)))[0].data for v, sld in cases
    ]
    assert len(set(sequential)) == len(cases)  # every variant and guidance gives another image
    concurrent = await asyncio.gather(
        *(generator.generate(_request("cat", v, 1, sld)) for v, sld in cases * 2)
    )
    assert [a[0].data for a in concurrent] == sequential * 2


async def test_safe_latent_diffusion_off_equals_plain_generation(
    generator: DiffusersLocalGenerator, pipe: Any
) -> None:
    plain = pipe(
        prompt=["a cat"],
        negative_prompt=["blurry"],
        num_inference_steps=STEPS,
        guidance_scale=7.5,
        width=64,
        height=64,
        generator=[torch.Generator("cpu").manual_seed(5)],
        output_type="pil",
    ).images[0]
    base = _pixels((await generator.generate(_request("a cat")))[0].data)
    assert _same_image(base, np.asarray(plain.convert("RGB"), dtype=np.int16))
    # the weak preset's warm-up (15 steps) outlasts this 2-step run: guidance never applied
    weak = _pixels((await generator.generate(_request("a cat", sld="weak")))[0].data)
    assert _same_image(weak, base)
    guided = _pixels((await generator.generate(_request("a cat", sld="max")))[0].data)
    assert np.abs(guided - base).max() >= 5
    assert _same_image(_pixels((await generator.generate(_request("a cat")))[0].data), base)


def _same_image(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    """Equal up to float reduction order (full-suite runs saw single pixels one level apart):
    far below what guidance changes (>= 5 levels)."""
    apart = np.abs(a - b)
    return bool(apart.max() <= 2 and (apart > 0).mean() < 0.01)


async def test_bad_requests_are_refused(generator: DiffusersLocalGenerator) -> None:
    with pytest.raises(UnsupportedRequest, match="unknown variant 'nope'"):
        await generator.generate(_request("cat", "nope"))
    with pytest.raises(UnsupportedRequest, match="unknown safe guidance preset 'extreme'"):
        await generator.generate(_request("cat", sld="extreme"))
    with pytest.raises(UnsupportedRequest, match="multiples of 8"):
        await generator.generate(
            GenerationRequest(modality=Modality.IMAGE, prompt="x", model="tiny-sd", size=(65, 64))
        )


def test_variant_of_another_base_model_is_refused_at_start_up(
    model_dir: Path, tmp_path: Path
) -> None:
    registry = VariantRegistry(tmp_path)
    registry.save(uce_variant(tiny_pipeline(seed=1), UceConfig.build(["cat"], ""), "alien")[0])
    with pytest.raises(GenerationError, match="cannot serve variant 'alien'") as info:
        DiffusersLocalGenerator(model_dir, variants_dir=tmp_path, steps=2)
    assert isinstance(info.value.__cause__, BaseModelMismatch)


def test_missing_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="does not exist"):
        DiffusersLocalGenerator(tmp_path / "absent")
