"""ProceduralImageGenerator: deterministic, honours size and n, draws a plausible image."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image

from generators import (
    GenerationRequest,
    Modality,
    ProceduralImageGenerator,
    UnsupportedRequest,
)

MODEL = "genguard-procedural-demo"


def image_request(**overrides: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "modality": Modality.IMAGE,
        "prompt": "a lighthouse at dusk",
        "model": MODEL,
        "size": (128, 96),
        "seed": 7,
    }
    fields.update(overrides)
    return GenerationRequest(**fields)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.fixture(scope="module")
def generator() -> ProceduralImageGenerator:
    return ProceduralImageGenerator()


async def test_same_prompt_and_seed_give_identical_bytes(
    generator: ProceduralImageGenerator,
) -> None:
    first = await generator.generate(image_request())
    second = await ProceduralImageGenerator().generate(image_request())
    assert first[0].data == second[0].data


@pytest.mark.parametrize(
    "change",
    [{"seed": 8}, {"prompt": "a lighthouse at dawn"}, {"seed": None}],
    ids=["seed", "prompt", "no-seed"],
)
async def test_different_seed_or_prompt_gives_different_image(
    generator: ProceduralImageGenerator, change: dict[str, Any]
) -> None:
    base = await generator.generate(image_request())
    changed = await generator.generate(image_request(**change))
    assert changed[0].data != base[0].data


async def test_without_seed_output_is_still_deterministic(
    generator: ProceduralImageGenerator,
) -> None:
    first = await generator.generate(image_request(seed=None))
    second = await generator.generate(image_request(seed=None))
    assert first[0].data == second[0].data


@pytest.mark.parametrize("size", [(64, 64), (320, 200), (200, 333), (2048, 64)])
async def test_requested_size_is_honoured(
    generator: ProceduralImageGenerator, size: tuple[int, int]
) -> None:
    [artifact] = await generator.generate(image_request(size=size))
    image = decode(artifact.data)
    assert image.format == "PNG"
    assert image.mode == "RGB"
    assert image.size == size
    assert (artifact.width, artifact.height) == size
    assert artifact.mime_type == "image/png"
    assert artifact.modality is Modality.IMAGE
    assert artifact.generator == "procedural"
    assert artifact.model == MODEL


async def test_default_size_is_1024_square(generator: ProceduralImageGenerator) -> None:
    [artifact] = await generator.generate(image_request(size=None))
    assert decode(artifact.data).size == (1024, 1024)


async def test_batch_images_are_distinct_and_reproducible(
    generator: ProceduralImageGenerator,
) -> None:
    batch = await generator.generate(image_request(n=4))
    assert len(batch) == 4
    assert len({artifact.data for artifact in batch}) == 4
    again = await generator.generate(image_request(n=2))
    assert [a.data for a in again] == [a.data for a in batch[:2]]


async def test_image_is_not_flat(generator: ProceduralImageGenerator) -> None:
    [artifact] = await generator.generate(image_request(size=(256, 256)))
    pixels = np.asarray(decode(artifact.data), dtype=np.float32)
    assert pixels.std(axis=(0, 1)).min() > 8  # every channel varies
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 5_000
    # Structure, not only noise: the 4x-downscaled image still varies a lot.
    coarse = np.asarray(decode(artifact.data).resize((16, 16), Image.Resampling.BOX), np.float32)
    assert coarse.std() > 10


@pytest.mark.parametrize("size", [(63, 512), (512, 63), (2049, 512), (512, 4096), (0, 0)], ids=str)
async def test_unsupported_size_is_rejected(
    generator: ProceduralImageGenerator, size: tuple[int, int]
) -> None:
    with pytest.raises(UnsupportedRequest) as caught:
        await generator.generate(image_request(size=size))
    assert caught.value.param == "size"
    assert f"{size[0]}x{size[1]}" in str(caught.value)
    assert "64" in str(caught.value) and "2048" in str(caught.value)


@pytest.mark.parametrize("n", [0, 11, -1])
async def test_unsupported_n_is_rejected(generator: ProceduralImageGenerator, n: int) -> None:
    with pytest.raises(UnsupportedRequest) as caught:
        await generator.generate(image_request(n=n))
    assert caught.value.param == "n"


async def test_unknown_model_and_audio_are_rejected(generator: ProceduralImageGenerator) -> None:
    with pytest.raises(UnsupportedRequest) as caught:
        await generator.generate(image_request(model="dall-e-3"))
    assert caught.value.param == "model"
    assert MODEL in str(caught.value)
    with pytest.raises(UnsupportedRequest) as caught:
        await generator.generate(image_request(modality=Modality.AUDIO))
    assert caught.value.param == "model"


async def test_rendering_goes_through_the_given_cpu_runner() -> None:
    calls: list[str] = []

    async def counting_runner(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", "?"))
        return fn(*args, **kwargs)

    generator = ProceduralImageGenerator(run_cpu=counting_runner)
    artifacts = await generator.generate(image_request(n=3))
    assert len(artifacts) == 3
    assert calls == ["render_procedural_png"] * 3
