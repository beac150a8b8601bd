"""Malformed upstream answers that the fake server does not produce, served by an in-process
third-party stand-in (``httpx.MockTransport``): each must become ``upstream_bad_response`` or a
faithful ``UpstreamError``, never a crash or a silent success."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable

import httpx
import pytest
from PIL import Image

from generators import GenerationRequest, Modality, OpenAICompatGenerator, UpstreamError

KEY = "sk-mock-upstream-key"


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 16), "orange").save(buffer, format="PNG")
    return buffer.getvalue()


def images_answer(payload: object) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=payload)

    return handler


async def generate_with(handler: Callable[[httpx.Request], httpx.Response]) -> UpstreamError:
    generator = OpenAICompatGenerator(
        base_url="https://upstream.example/v1",
        api_key=KEY,
        models=("mock-image",),
        transport=httpx.MockTransport(handler),
    )
    request = GenerationRequest(modality=Modality.IMAGE, prompt="p", model="mock-image", n=1)
    try:
        with pytest.raises(UpstreamError) as caught:
            await generator.generate(request)
    finally:
        await generator.aclose()
    assert KEY not in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"data": [{"b64_json": "!!! not base64 !!!"}]}, "not valid base64"),
        ({"data": [{"b64_json": base64.b64encode(b"GIF89a....").decode()}]}, "not PNG, JPEG"),
        ({"data": [{"b64_json": base64.b64encode(b"\x89PNG\r\n\x1a\nbroken").decode()}]}, "read"),
        ({"data": [{"revised_prompt": "no image"}]}, "neither b64_json nor url"),
        ({"data": [{"url": "file:///etc/passwd"}]}, "http(s)"),
        ({"data": "nope"}, "no 'data' list"),
        ({"created": 1}, "no 'data' list"),
        (["not", "an", "object"], "no 'data' list"),
        ({"data": []}, "asked for 1 images, got 0"),
    ],
)
async def test_malformed_image_payloads(payload: object, reason: str) -> None:
    error = await generate_with(images_answer(payload))
    assert (error.status, error.code) == (502, "upstream_bad_response")
    assert reason in str(error)


async def test_jpeg_and_webp_are_accepted() -> None:
    for pil_format, mime in (("JPEG", "image/jpeg"), ("WEBP", "image/webp")):
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), "navy").save(buffer, format=pil_format)
        payload = {"data": [{"b64_json": base64.b64encode(buffer.getvalue()).decode()}]}
        generator = OpenAICompatGenerator(
            base_url="https://upstream.example/v1",
            api_key=KEY,
            models=("mock-image",),
            transport=httpx.MockTransport(images_answer(payload)),
        )
        request = GenerationRequest(modality=Modality.IMAGE, prompt="p", model="mock-image")
        try:
            [artifact] = await generator.generate(request)
        finally:
            await generator.aclose()
        assert (artifact.mime_type, artifact.width, artifact.height) == (mime, 40, 30)


async def test_failed_url_fetch_is_a_bad_response() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/images/generations":
            return httpx.Response(200, json={"data": [{"url": "https://cdn.example/x.png"}]})
        assert "authorization" not in request.headers  # another origin: no key
        return httpx.Response(403, text="expired signature")

    error = await generate_with(handler)
    assert (error.status, error.code) == (502, "upstream_bad_response")
    assert "HTTP 403" in str(error)


async def test_url_fetch_follows_redirects_to_the_image() -> None:
    png = png_bytes()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/images/generations":
            return httpx.Response(200, json={"data": [{"url": "https://cdn.example/a.png"}]})
        if request.url.path == "/a.png":
            return httpx.Response(302, headers={"location": "https://blob.example/b.png"})
        return httpx.Response(200, content=png)

    generator = OpenAICompatGenerator(
        base_url="https://upstream.example/v1",
        api_key=KEY,
        models=("mock-image",),
        transport=httpx.MockTransport(handler),
    )
    request = GenerationRequest(modality=Modality.IMAGE, prompt="p", model="mock-image")
    try:
        [artifact] = await generator.generate(request)
    finally:
        await generator.aclose()
    assert artifact.data == png


async def test_error_body_that_is_not_json_is_quoted_briefly() -> None:
    html = "<html><body><h1>502 Bad Gateway</h1>" + "x" * 2000 + "</body></html>"
    error = await generate_with(lambda _: httpx.Response(502, text=html))
    assert (error.status, error.code) == (502, None)
    assert "502 Bad Gateway" in str(error)
    assert len(str(error)) < 600


async def test_error_body_with_key_echoed_is_redacted() -> None:
    body = {"error": {"message": f"key {KEY} is revoked", "type": "auth", "code": 17}}
    error = await generate_with(lambda _: httpx.Response(403, content=json.dumps(body)))
    assert (error.status, error.code) == (403, None)  # a non-string code is dropped
    assert "key [redacted] is revoked" in str(error)


async def test_redirect_from_the_api_is_not_followed() -> None:
    error = await generate_with(
        lambda _: httpx.Response(307, headers={"location": "https://elsewhere.example/v1"})
    )
    assert (error.status, error.code) == (502, "upstream_bad_response")


async def test_broken_connection_mid_answer_is_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset by peer", request=request)

    error = await generate_with(handler)
    assert (error.status, error.code) == (502, "upstream_unreachable")


async def test_protocol_error_is_a_bad_response() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("illegal header", request=request)

    error = await generate_with(handler)
    assert (error.status, error.code) == (502, "upstream_bad_response")


async def test_requests_go_under_the_base_path_and_keep_its_query() -> None:
    seen: list[httpx.URL] = []
    png = base64.b64encode(png_bytes()).decode()

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={"data": [{"b64_json": png}]})

    generator = OpenAICompatGenerator(
        base_url="https://upstream.example/openai/v1/?api-version=2025-01-01",
        api_key=KEY,
        models=("mock-image",),
        transport=httpx.MockTransport(handler),
    )
    request = GenerationRequest(modality=Modality.IMAGE, prompt="p", model="mock-image")
    try:
        await generator.generate(request)
    finally:
        await generator.aclose()
    assert [str(u) for u in seen] == [
        "https://upstream.example/openai/v1/images/generations?api-version=2025-01-01"
    ]
