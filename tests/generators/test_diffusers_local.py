"""The local diffusers generator: per-request variants, deterministic, never mixed."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from erasure.errors import BaseModelMismatch
from erasure.uce import UceConfig, uce_variant
from erasure.variants import VariantRegistry
from generators.base import GenerationError, GenerationRequest, Modality, UnsupportedRequest
from generators.diffusers_local import DiffusersLocalGenerator
from tests.erasure.tiny_sd import save_tiny_pipeline, tiny_pipeline


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("sd") / "tiny-sd", seed=0)


@pytest.fixture(scope="module")
def generator(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> DiffusersLocalGenerator:
    pipe = tiny_pipeline(seed=0)
    registry = VariantRegistry(tmp_path_factory.mktemp("variants"))
    registry.save(uce_variant(pipe, UceConfig.build(["cat"], "", lam=0.01), "no-cats")[0])
    registry.save(uce_variant(pipe, UceConfig.build(["dog"], "tree", lam=0.01), "no-dogs")[0])
    registry.save(uce_variant(pipe, UceConfig.build(["cat"], "cat", ["dog"]), "noop")[0])
    return DiffusersLocalGenerator(
        model_dir, model_name="tiny-sd", variants_dir=registry.directory, steps=2
    )


def _request(prompt: str, variant: str | None = None, seed: int = 5) -> GenerationRequest:
    return GenerationRequest(
        modality=Modality.IMAGE,
        prompt=prompt,
        model="tiny-sd",
        size=(64, 64),
        seed=seed,
        variant=variant,
        negative_prompt="blurry",
    )


def _pixels(data: bytes) -> np.ndarray[Any, Any]:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


async def test_models_list_the_variants(generator: DiffusersLocalGenerator) -> None:
    assert generator.models == ("tiny-sd", "tiny-sd:no-cats", "tiny-sd:no-dogs", "tiny-sd:noop")


async def test_variant_changes_only_what_its_edit_acts_on(
    generator: DiffusersLocalGenerator,
) -> None:
    base = (await generator.generate(_request("cat")))[0].data
    assert (await generator.generate(_request("cat")))[0].data == base  # deterministic seed
    erased = (await generator.generate(_request("cat", "no-cats")))[0].data
    assert np.abs(_pixels(erased) - _pixels(base)).max() > 0
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
    cases = [(p, v, s) for s in (1, 2) for v in (None, "no-cats", "no-dogs") for p in ("cat",)]
    sequential = [(await generator.generate(_request(p, v, s)))[0].data for p, v, s in cases]
    concurrent = await asyncio.gather(
        *(generator.generate(_request(p, v, s)) for p, v, s in cases * 2)
    )
    assert [a[0].data for a in concurrent] == sequential * 2


async def test_bad_requests_are_refused(generator: DiffusersLocalGenerator) -> None:
    with pytest.raises(UnsupportedRequest, match="unknown variant 'nope'"):
        await generator.generate(_request("cat", "nope"))
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
