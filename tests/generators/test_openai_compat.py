"""OpenAICompatGenerator against a real (fake third-party) upstream on a loopback port."""

from __future__ import annotations

import io
import socket
import wave
from typing import Any

import pytest
from PIL import Image

from generators import (
    GenerationRequest,
    Modality,
    OpenAICompatGenerator,
    UnsupportedRequest,
    UpstreamError,
    UpstreamTimeout,
)
from tests.fake_upstream import FakeUpstream, serve_fake_upstream
from tests.generators.conftest import IMAGE_MODEL, SPEECH_MODEL, UPSTREAM_KEY


def image_request(**overrides: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "modality": Modality.IMAGE,
        "prompt": "a red bicycle",
        "model": IMAGE_MODEL,
        "size": (96, 64),
        "n": 2,
    }
    fields.update(overrides)
    return GenerationRequest(**fields)


def speech_request(**overrides: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "modality": Modality.AUDIO,
        "prompt": "Hello from upstream.",
        "model": SPEECH_MODEL,
        "voice": "nova",
        "speed": 1.25,
    }
    fields.update(overrides)
    return GenerationRequest(**fields)


def assert_key_hidden(*texts: object) -> None:
    for text in texts:
        assert UPSTREAM_KEY not in str(text)
        assert UPSTREAM_KEY not in repr(text)


async def test_images_are_decoded_and_the_key_forwarded(
    upstream_generator: OpenAICompatGenerator, fake_upstream: FakeUpstream
) -> None:
    artifacts = await upstream_generator.generate(image_request())
    assert len(artifacts) == 2
    assert len({a.data for a in artifacts}) == 2
    for artifact in artifacts:
        image = Image.open(io.BytesIO(artifact.data))
        assert image.format == "PNG" and image.size == (96, 64)
        assert artifact.mime_type == "image/png"
        assert (artifact.width, artifact.height) == (96, 64)
        assert artifact.modality is Modality.IMAGE
        assert artifact.generator == "openai_compat"
        assert artifact.model == IMAGE_MODEL
        assert artifact.revised_prompt == "a red bicycle (revised by the fake upstream)"
    [received] = fake_upstream.requests_to("/v1/images/generations")
    assert received.authorization == f"Bearer {UPSTREAM_KEY}"
    assert received.body == {
        "model": IMAGE_MODEL,
        "prompt": "a red bicycle",
        "n": 2,
        "size": "96x64",
        "response_format": "b64_json",
    }
    assert_key_hidden(upstream_generator)


async def test_size_is_left_to_the_upstream_when_not_given(
    upstream_generator: OpenAICompatGenerator, fake_upstream: FakeUpstream
) -> None:
    [artifact] = await upstream_generator.generate(image_request(size=None, n=1))
    assert (artifact.width, artifact.height) == (1024, 1024)  # the fake's default
    assert "size" not in fake_upstream.requests[-1].body


async def test_url_answers_are_fetched_with_the_same_client(
    upstream_generator: OpenAICompatGenerator, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.mode = "ok_url"
    artifacts = await upstream_generator.generate(image_request(n=3))
    assert [Image.open(io.BytesIO(a.data)).size for a in artifacts] == [(96, 64)] * 3
    fetches = [r for r in fake_upstream.requests if r.path.startswith("/files/")]
    assert len(fetches) == 3
    # Same origin as base_url: the upstream's own file server gets the key.
    assert all(r.authorization == f"Bearer {UPSTREAM_KEY}" for r in fetches)


async def test_url_on_another_origin_does_not_get_the_key() -> None:
    with serve_fake_upstream(api_key=UPSTREAM_KEY, url_host="localhost") as upstream:
        upstream.mode = "ok_url"
        generator = OpenAICompatGenerator(
            base_url=upstream.base_url, api_key=UPSTREAM_KEY, models=(IMAGE_MODEL,), timeout_s=5
        )
        try:
            [artifact] = await generator.generate(image_request(n=1))
        finally:
            await generator.aclose()
    assert artifact.mime_type == "image/png"
    [fetch] = [r for r in upstream.requests if r.path.startswith("/files/")]
    assert fetch.headers["host"].startswith("localhost:")
    assert fetch.authorization is None


async def test_content_policy_rejection_keeps_status_code_and_message(
    upstream_generator: OpenAICompatGenerator, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.mode = "error_400"
    with pytest.raises(UpstreamError) as caught:
        await upstream_generator.generate(image_request())
    assert caught.value.status == 400
    assert caught.value.code == "content_policy_violation"
    assert "rejected as a result of our safety system" in str(caught.value)
    assert_key_hidden(caught.value)


async def test_server_error_maps_to_upstream_error(
    upstream_generator: OpenAICompatGenerator, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.mode = "error_500"
    with pytest.raises(UpstreamError) as caught:
        await upstream_generator.generate(image_request())
    assert caught.value.status == 500
    assert caught.value.code is None
    assert "The server had an error" in str(caught.value)
    assert_key_hidden(caught.value)


async def test_wrong_key_is_redacted_from_the_upstream_message(
    fake_upstream: FakeUpstream,
) -> None:
    wrong_key = "sk-wrong-key-that-must-not-leak-42"
    generator = OpenAICompatGenerator(
        base_url=fake_upstream.base_url, api_key=wrong_key, models=(IMAGE_MODEL,), timeout_s=5
    )
    try:
        with pytest.raises(UpstreamError) as caught:
            await generator.generate(image_request())
    finally:
        await generator.aclose()
    assert (caught.value.status, caught.value.code) == (401, "invalid_api_key")
    assert "Incorrect API key provided: [redacted]" in str(caught.value)
    assert wrong_key not in str(caught.value) and wrong_key not in repr(generator)


async def test_slow_upstream_times_out(
    upstream_generator: OpenAICompatGenerator, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.mode = "slow"
    with pytest.raises(UpstreamTimeout) as caught:
        await upstream_generator.generate(image_request())
    assert "1 s" in str(caught.value)
    assert_key_hidden(caught.value)


async def test_slow_speech_times_out(
    upstream_generator: OpenAICompatGenerator, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.mode = "slow"
    with pytest.raises(UpstreamTimeout):
        await upstream_generator.generate(speech_request())


async def test_unreachable_upstream() -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    generator = OpenAICompatGenerator(
        base_url=f"http://127.0.0.1:{port}/v1", api_key=UPSTREAM_KEY, models=(IMAGE_MODEL,)
    )
    try:
        with pytest.raises(UpstreamError) as caught:
            await generator.generate(image_request())
    finally:
        await generator.aclose()
    assert (caught.value.status, caught.value.code) == (502, "upstream_unreachable")
    assert_key_hidden(caught.value)


@pytest.mark.parametrize("mode", ["garbage", "short"])
async def test_malformed_image_answers_are_bad_responses(
    upstream_generator: OpenAICompatGenerator, fake_upstream: FakeUpstream, mode: str
) -> None:
    fake_upstream.mode = mode  # type: ignore[assignment]
    with pytest.raises(UpstreamError) as caught:
        await upstream_generator.generate(image_request(n=3))
    assert (caught.value.status, caught.value.code) == (502, "upstream_bad_response")
    if mode == "short":
        assert "asked for 3 images, got 2" in str(caught.value)
    assert_key_hidden(caught.value)


@pytest.mark.parametrize("mode", ["garbage", "short"])
async def test_malformed_speech_answers_are_bad_responses(
    upstream_generator: OpenAICompatGenerator, fake_upstream: FakeUpstream, mode: str
) -> None:
    fake_upstream.mode = mode  # type: ignore[assignment]
    with pytest.raises(UpstreamError) as caught:
        await upstream_generator.generate(speech_request())
    assert (caught.value.status, caught.value.code) == (502, "upstream_bad_response")


async def test_speech_wav(
    upstream_generator: OpenAICompatGenerator, fake_upstream: FakeUpstream
) -> None:
    [artifact] = await upstream_generator.generate(speech_request(audio_format="wav"))
    with wave.open(io.BytesIO(artifact.data)) as reader:
        frames, rate = reader.getnframes(), reader.getframerate()
    assert artifact.mime_type == "audio/wav"
    assert artifact.modality is Modality.AUDIO
    assert artifact.duration_s == pytest.approx(frames / rate)
    assert artifact.duration_s is not None and artifact.duration_s > 0
    [received] = fake_upstream.requests_to("/v1/audio/speech")
    assert received.body == {
        "model": SPEECH_MODEL,
        "input": "Hello from upstream.",
        "voice": "nova",
        "response_format": "wav",
        "speed": 1.25,
    }
    assert received.authorization == f"Bearer {UPSTREAM_KEY}"
    assert received.headers["accept"] == "application/octet-stream"


async def test_speech_pcm(upstream_generator: OpenAICompatGenerator) -> None:
    [wav] = await upstream_generator.generate(speech_request(audio_format="wav"))
    [pcm] = await upstream_generator.generate(speech_request(audio_format="pcm"))
    assert pcm.mime_type == "audio/pcm"
    assert pcm.duration_s == pytest.approx(wav.duration_s)


async def test_upstream_rejection_of_a_format_is_passed_on(
    upstream_generator: OpenAICompatGenerator,
) -> None:
    with pytest.raises(UpstreamError) as caught:
        await upstream_generator.generate(speech_request(audio_format="mp3"))
    assert (caught.value.status, caught.value.code) == (400, "unsupported_format")


async def test_requests_outside_the_configuration_are_refused_locally(
    fake_upstream: FakeUpstream,
) -> None:
    generator = OpenAICompatGenerator(
        base_url=fake_upstream.base_url,
        api_key=None,
        models=(IMAGE_MODEL,),
        modalities=frozenset({Modality.IMAGE}),
    )
    try:
        with pytest.raises(UnsupportedRequest) as caught:
            await generator.generate(speech_request(model=IMAGE_MODEL))
        assert caught.value.param == "model"
        with pytest.raises(UnsupportedRequest) as caught:
            await generator.generate(image_request(model="dall-e-3"))
        assert caught.value.param == "model"
        assert generator.enabled_modalities == frozenset({Modality.IMAGE})
        assert fake_upstream.requests == []
        # Without a key no Authorization header is sent at all (and this upstream wants one).
        with pytest.raises(UpstreamError) as rejected:
            await generator.generate(image_request(n=1))
    finally:
        await generator.aclose()
    assert rejected.value.status == 401
    assert fake_upstream.requests[-1].authorization is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "ftp://example.com/v1"},
        {"base_url": "/v1"},
        {"base_url": "http://[::1/v1"},
        {"base_url": f"https://user:{UPSTREAM_KEY}@upstream.example/v1"},
        {"models": ()},
        {"modalities": frozenset()},
        {"timeout_s": 0},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any]) -> None:
    settings: dict[str, Any] = {
        "base_url": "https://upstream.example/v1",
        "api_key": UPSTREAM_KEY,
        "models": (IMAGE_MODEL,),
    }
    settings.update(kwargs)
    with pytest.raises(ValueError) as caught:
        OpenAICompatGenerator(**settings)
    assert UPSTREAM_KEY not in str(caught.value)
