"""Edits and variations in every image generator: the procedural demo (deterministic, mask
respected pixel for pixel), the OpenAI-compatible upstream (multipart, as the official client
sends it) and the local diffusers model (img2img and inpainting on a tiny random pipeline)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from generators.base import GenerationRequest, InputImage, Modality, Operation, UnsupportedRequest
from generators.openai_compat import OpenAICompatGenerator
from generators.procedural import ProceduralImageGenerator, render_procedural_png
from tests.fake_upstream import FakeUpstream

from .conftest import IMAGE_MODEL

SIZE = (128, 128)


def upload(data: bytes, name: str = "image[0]", alpha: bool = False) -> InputImage:
    return InputImage(data, "image/png", SIZE[0], SIZE[1], name, alpha)


def mask_png(box: tuple[int, int, int, int] = (32, 32, 96, 96)) -> bytes:
    mask = Image.new("RGBA", SIZE, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), box)
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    return buffer.getvalue()


def rgb(data: bytes) -> np.ndarray[Any, Any]:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def request(
    operation: Operation, model: str, *, mask: bool = True, n: int = 1, images: int = 1
) -> GenerationRequest:
    sources = tuple(
        upload(render_procedural_png("source", i, SIZE), f"image[{i}]") for i in range(images)
    )
    return GenerationRequest(
        modality=Modality.IMAGE,
        prompt="a red balloon" if operation is Operation.EDIT else "",
        model=model,
        n=n,
        size=SIZE,
        seed=3,
        operation=operation,
        images=sources,
        mask=upload(mask_png(), "mask", alpha=True)
        if mask and operation is Operation.EDIT
        else None,
    )


async def test_procedural_edit_changes_only_the_masked_area() -> None:
    generator = ProceduralImageGenerator()
    wanted = request(Operation.EDIT, "genguard-procedural-demo", n=2)
    first, second = await generator.generate(wanted)
    again, _ = await generator.generate(wanted)
    assert first.data == again.data and first.data != second.data  # deterministic, per index
    difference = np.abs(rgb(first.data) - rgb(wanted.images[0].data)).max(axis=2)
    assert difference[32:96, 32:96].mean() > 10
    difference[32:96, 32:96] = 0
    assert difference.max() == 0  # outside the mask: exactly the input


async def test_procedural_variation_is_a_derivative_of_the_input() -> None:
    generator = ProceduralImageGenerator()
    source = request(Operation.VARIATION, "genguard-procedural-demo")
    [varied] = await generator.generate(source)
    other = render_procedural_png("another picture", 9, SIZE)
    unrelated = np.abs(rgb(other) - rgb(source.images[0].data)).mean()
    assert 0 < np.abs(rgb(varied.data) - rgb(source.images[0].data)).mean() < unrelated * 2
    assert varied.width == SIZE[0]


async def test_upstream_receives_edits_as_the_openai_client_sends_them(
    fake_upstream: FakeUpstream, upstream_generator: OpenAICompatGenerator
) -> None:
    wanted = request(Operation.EDIT, IMAGE_MODEL, images=2)
    [artifact] = await upstream_generator.generate(wanted)
    [received] = fake_upstream.requests_to("/v1/images/edits")
    fields, files = received.body["fields"], received.body["files"]
    assert fields["prompt"] == "a red balloon" and fields["size"] == "128x128"
    assert fields["response_format"] == "b64_json" and fields["model"] == IMAGE_MODEL
    assert [f["field"] for f in files] == ["image[]", "image[]", "mask"]
    assert [f["data"] for f in files[:2]] == [i.data for i in wanted.images]
    assert received.authorization is not None and received.authorization.startswith("Bearer ")
    inverted = 255 - rgb(wanted.images[0].data)
    assert np.abs(rgb(artifact.data) - inverted).max() == 0

    variation = request(Operation.VARIATION, IMAGE_MODEL)
    await upstream_generator.generate(variation)
    [sent] = fake_upstream.requests_to("/v1/images/variations")
    assert "prompt" not in sent.body["fields"]
    assert [f["field"] for f in sent.body["files"]] == ["image"]


async def test_upstream_errors_on_edits_are_translated(
    fake_upstream: FakeUpstream, upstream_generator: OpenAICompatGenerator
) -> None:
    from generators.base import UpstreamError

    fake_upstream.mode = "error_400"
    with pytest.raises(UpstreamError) as caught:
        await upstream_generator.generate(request(Operation.EDIT, IMAGE_MODEL))
    assert caught.value.code == "content_policy_violation"


@pytest.fixture(scope="module")
def diffusers_generator(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("diffusers")
    from generators.diffusers_edit import DiffusersEditGenerator
    from generators.diffusers_local import DiffusersLocalGenerator
    from tests.erasure.tiny_sd import save_tiny_pipeline

    model_dir: Path = save_tiny_pipeline(tmp_path_factory.mktemp("sd") / "tiny-sd")
    local = DiffusersLocalGenerator(model_dir, model_name="tiny-sd", steps=2)
    return DiffusersEditGenerator(local, steps=2)


async def test_diffusers_inpainting_keeps_the_unmasked_pixels(diffusers_generator: Any) -> None:
    wanted = request(Operation.EDIT, "tiny-sd")
    [edited] = await diffusers_generator.generate(wanted)
    assert (await diffusers_generator.generate(wanted))[0].data == edited.data  # seeded
    difference = np.abs(rgb(edited.data) - rgb(wanted.images[0].data)).max(axis=2)
    assert difference[32:96, 32:96].mean() > 5
    difference[32:96, 32:96] = 0
    assert difference.max() == 0


async def test_diffusers_img2img_edit_and_variation(diffusers_generator: Any) -> None:
    without_mask = request(Operation.EDIT, "tiny-sd", mask=False)
    [edited] = await diffusers_generator.generate(without_mask)
    [varied] = await diffusers_generator.generate(request(Operation.VARIATION, "tiny-sd"))
    source = rgb(without_mask.images[0].data)
    for artifact in (edited, varied):
        assert (artifact.width, artifact.height) == SIZE
        assert np.abs(rgb(artifact.data) - source).mean() > 1  # the whole image was redrawn
    with pytest.raises(UnsupportedRequest) as caught:
        await diffusers_generator.generate(request(Operation.EDIT, "tiny-sd", images=2))
    assert caught.value.param == "image"
    generated = await diffusers_generator.generate(
        GenerationRequest(Modality.IMAGE, "a cat", "tiny-sd", size=(64, 64), seed=1)
    )
    assert generated[0].width == 64  # plain generation goes to the wrapped generator
