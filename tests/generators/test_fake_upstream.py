"""The fake upstream speaks OpenAI's wire format: the official ``openai`` client accepts it."""

from __future__ import annotations

import base64
import io

import openai
import pytest
from PIL import Image

from tests.fake_upstream import FakeUpstream
from tests.generators.conftest import IMAGE_MODEL, SPEECH_MODEL, UPSTREAM_KEY


@pytest.fixture
async def client(fake_upstream: FakeUpstream) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake_upstream.base_url, api_key=UPSTREAM_KEY, max_retries=0)


async def test_official_client_generates_images(
    client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
) -> None:
    result = await client.images.generate(
        model=IMAGE_MODEL, prompt="a kite", n=2, size="256x256", response_format="b64_json"
    )
    assert result.data is not None and len(result.data) == 2
    for item in result.data:
        assert item.b64_json is not None
        image = Image.open(io.BytesIO(base64.b64decode(item.b64_json)))
        assert image.format == "PNG" and image.size == (256, 256)
    assert fake_upstream.requests[-1].authorization == f"Bearer {UPSTREAM_KEY}"


async def test_official_client_reads_url_images_and_models(
    client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.mode = "ok_url"
    result = await client.images.generate(model=IMAGE_MODEL, prompt="a kite", size="256x256")
    assert result.data is not None and result.data[0].url is not None
    assert result.data[0].url.startswith(fake_upstream.origin + "/files/")
    models = [model.id async for model in client.models.list()]
    assert models == [IMAGE_MODEL, SPEECH_MODEL]


async def test_official_client_sees_the_content_policy_error(
    client: openai.AsyncOpenAI, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.mode = "error_400"
    with pytest.raises(openai.BadRequestError) as caught:
        await client.images.generate(model=IMAGE_MODEL, prompt="something bad")
    assert caught.value.code == "content_policy_violation"
    fake_upstream.mode = "error_500"
    with pytest.raises(openai.InternalServerError):
        await client.images.generate(model=IMAGE_MODEL, prompt="anything")


async def test_official_client_gets_speech(client: openai.AsyncOpenAI) -> None:
    response = await client.audio.speech.create(
        model=SPEECH_MODEL, input="Hello there.", voice="alloy", response_format="wav"
    )
    audio = response.content
    assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"
    assert len(audio) > 44 + 2 * 24_000 * 0.3


async def test_wrong_key_is_refused(fake_upstream: FakeUpstream) -> None:
    client = openai.AsyncOpenAI(base_url=fake_upstream.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        await client.images.generate(model=IMAGE_MODEL, prompt="a kite")
    assert caught.value.code == "invalid_api_key"


def test_unknown_mode_is_refused(fake_upstream: FakeUpstream) -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        fake_upstream.mode = "flaky"  # type: ignore[assignment]
    assert fake_upstream.mode == "ok"


async def test_invalid_parameters_get_openai_errors(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.images.generate(model=IMAGE_MODEL, prompt="a kite", size="huge")
    assert caught.value.code == "invalid_value"
    with pytest.raises(openai.BadRequestError):
        await client.images.generate(model=IMAGE_MODEL, prompt="a kite", n=11)
