"""Forward generation to any OpenAI-compatible upstream (OpenAI, Azure-style proxies, LocalAI, …).

Every failure is translated here, at the boundary, into the ``GenerationError`` tree:

======================================  ============================================================
upstream answers 4xx / 5xx              ``UpstreamError(status=<upstream status>, code=<its code>)``
no answer within ``timeout_s``          ``UpstreamTimeout``
connection refused / reset / DNS        ``UpstreamError(status=502, code="upstream_unreachable")``
bad JSON, missing data, bad base64,     ``UpstreamError(status=502, code="upstream_bad_response")``
bytes that are not the media asked for,
fewer images than asked for
======================================  ============================================================

The upstream's API key is sent only to the upstream's own origin, and never appears in logs,
``repr`` or error messages (an upstream that echoes it back has it replaced by ``[redacted]``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
from typing import ClassVar, NoReturn

import httpx
from PIL import Image

from generators.base import (
    Artifact,
    GenerationRequest,
    InputImage,
    Modality,
    Operation,
    UnsupportedRequest,
    UpstreamError,
    UpstreamTimeout,
)
from generators.http_pool import ShardedAsyncClient
from generators.media_types import (
    AUDIO_FORMAT_MIME,
    sniff_audio_mime,
    sniff_image_mime,
    wav_duration_s,
)

__all__ = ["OpenAICompatGenerator"]

BAD_RESPONSE = "upstream_bad_response"
UNREACHABLE = "upstream_unreachable"
_ALL_MODALITIES = frozenset({Modality.IMAGE, Modality.AUDIO})
_MAX_UPSTREAM_MESSAGE = 500
_PCM_SAMPLE_RATE = 24_000  # OpenAI's pcm: raw 24 kHz signed 16-bit little-endian mono


class OpenAICompatGenerator:
    """Images (``/images/generations``; edits and variations forwarded as multipart to
    ``/images/edits`` and ``/images/variations``) and speech (``/audio/speech``) from an
    upstream API.

    ``base_url`` includes the version prefix (``https://api.openai.com/v1``). ``models`` are the
    upstream model names this generator answers to; ``modalities`` restricts what this instance
    serves (``enabled_modalities``) within what the class can do (``modalities``). ``timeout_s``
    bounds each call as a whole, including fetching images the upstream answers with by URL.
    ``transport`` is for tests and custom networking. Use one instance per upstream and close it
    with ``aclose()``.
    """

    name: ClassVar[str] = "openai_compat"
    modalities: ClassVar[frozenset[Modality]] = _ALL_MODALITIES
    operations: ClassVar[frozenset[Operation]] = frozenset(Operation)

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        models: tuple[str, ...],
        timeout_s: float = 60.0,
        modalities: frozenset[Modality] = _ALL_MODALITIES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        try:
            url = httpx.URL(base_url.rstrip("/"))
        except httpx.InvalidURL as exc:
            raise ValueError(f"base_url is not a valid URL: {exc}") from exc
        if url.scheme not in ("http", "https") or not url.host or url.userinfo:
            raise ValueError("base_url must be an absolute http(s) URL without credentials")
        if not models or not all(isinstance(m, str) and m for m in models):
            raise ValueError("models must name at least one upstream model")
        if not modalities or not modalities <= _ALL_MODALITIES:
            raise ValueError(f"modalities must be a non-empty subset of {set(_ALL_MODALITIES)}")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._base_url = url
        self._models = tuple(models)
        self._enabled = frozenset(modalities)
        self._timeout_s = timeout_s
        self._api_key = api_key or None
        # sharded: one httpx pool's CPU per request grows with its connections (http_pool.py);
        # 32 shards of up to 16 kept-alive connections serve concurrency 128 without reconnects
        self._client = ShardedAsyncClient(
            shards=32,
            busy_per_shard=4,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": "genguard-openai-compat"},
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={str(self._base_url)!r}, models={self._models!r}, "
            f"modalities={sorted(m.value for m in self._enabled)!r})"
        )

    @property
    def models(self) -> tuple[str, ...]:
        return self._models

    @property
    def enabled_modalities(self) -> frozenset[Modality]:
        """The modalities this instance serves (a subset of the class's ``modalities``)."""
        return self._enabled

    async def generate(self, request: GenerationRequest) -> list[Artifact]:
        self._validate(request)
        try:
            async with asyncio.timeout(self._timeout_s):
                if request.modality is Modality.IMAGE and request.images:
                    return await self._edit_images(request)
                if request.modality is Modality.IMAGE:
                    return await self._generate_images(request)
                return await self._generate_speech(request)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise UpstreamTimeout(
                f"the upstream did not answer within {self._timeout_s:g} s"
            ) from exc
        except (httpx.NetworkError, httpx.ProxyError) as exc:
            raise UpstreamError(
                f"the upstream could not be reached ({type(exc).__name__})",
                status=502,
                code=UNREACHABLE,
            ) from exc
        except httpx.RequestError as exc:  # protocol errors, bad encodings, redirect loops
            raise UpstreamError(
                f"the upstream broke the HTTP exchange ({type(exc).__name__})",
                status=502,
                code=BAD_RESPONSE,
            ) from exc

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- images --------------------------------------------------------------------------------

    async def _generate_images(self, request: GenerationRequest) -> list[Artifact]:
        body: dict[str, object] = {
            "model": request.model,
            "prompt": request.prompt,
            "n": request.n,
            "response_format": "b64_json",
        }
        if request.size is not None:
            body["size"] = f"{request.size[0]}x{request.size[1]}"
        response = await self._post("images/generations", body, accept="application/json")
        return await self._image_artifacts(response, request)

    async def _edit_images(self, request: GenerationRequest) -> list[Artifact]:
        """An edit or variation as the OpenAI API takes it: multipart, one image as ``image``,
        several as ``image[]`` (what the official client sends), the mask as ``mask``."""
        fields: dict[str, str] = {
            "model": request.model,
            "n": str(request.n),
            "response_format": "b64_json",
        }
        if request.operation is Operation.EDIT:
            fields["prompt"] = request.prompt
        if request.size is not None:
            fields["size"] = f"{request.size[0]}x{request.size[1]}"
        field = "image" if len(request.images) == 1 else "image[]"
        files = [
            (field, _upload(image, f"image-{i + 1}")) for i, image in enumerate(request.images)
        ]
        if request.mask is not None:
            files.append(("mask", _upload(request.mask, "mask")))
        path = "images/edits" if request.operation is Operation.EDIT else "images/variations"
        url = self._base_url.copy_with(path=self._base_url.path.rstrip("/") + "/" + path)
        headers = {"Accept": "application/json", **self._auth_headers()}
        response = await self._client.request(
            "POST", url, data=fields, files=files, headers=headers
        )
        self._raise_for_error(response)
        return await self._image_artifacts(response, request)

    async def _image_artifacts(
        self, response: httpx.Response, request: GenerationRequest
    ) -> list[Artifact]:
        items = _image_items(response, request.n)
        artifacts = []
        for item in items[: request.n]:
            data = await self._image_bytes(item)
            mime, width, height = _inspect_image(data)
            revised = item.get("revised_prompt")
            artifacts.append(
                Artifact(
                    data=data,
                    mime_type=mime,
                    modality=Modality.IMAGE,
                    generator=self.name,
                    model=request.model,
                    width=width,
                    height=height,
                    revised_prompt=revised if isinstance(revised, str) else None,
                )
            )
        return artifacts

    async def _image_bytes(self, item: dict[str, object]) -> bytes:
        b64 = item.get("b64_json")
        if isinstance(b64, str):
            try:
                return base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError) as exc:
                _bad_response("an image's b64_json is not valid base64", exc)
        url = item.get("url")
        if isinstance(url, str):
            return await self._fetch(url)
        _bad_response("an image has neither b64_json nor url")

    async def _fetch(self, raw_url: str) -> bytes:
        """GET an image the upstream answered with by URL; the key goes only to its own origin."""
        try:
            url = httpx.URL(raw_url)
        except httpx.InvalidURL as exc:
            _bad_response("an image url is not a valid URL", exc)
        if url.scheme not in ("http", "https") or not url.host:
            _bad_response("an image url is not an absolute http(s) URL")
        same_origin = (url.scheme, url.host, url.port) == (
            self._base_url.scheme,
            self._base_url.host,
            self._base_url.port,
        )
        response = await self._client.request(
            "GET", url, headers=self._auth_headers() if same_origin else {}, follow_redirects=True
        )
        if not response.is_success:
            raise UpstreamError(
                f"fetching a generated image failed with HTTP {response.status_code}",
                status=502,
                code=BAD_RESPONSE,
            )
        return response.content

    # -- speech --------------------------------------------------------------------------------

    async def _generate_speech(self, request: GenerationRequest) -> list[Artifact]:
        body: dict[str, object] = {
            "model": request.model,
            "input": request.prompt,
            "voice": request.voice if request.voice is not None else "alloy",
            "response_format": request.audio_format,
            "speed": request.speed,
        }
        response = await self._post("audio/speech", body, accept="application/octet-stream")
        data = response.content
        mime = sniff_audio_mime(data)
        duration_s: float | None = None
        if mime is None and request.audio_format == "pcm" and data and len(data) % 2 == 0:
            mime, duration_s = "audio/pcm", len(data) / 2 / _PCM_SAMPLE_RATE
        if mime is None:
            _bad_response(f"the speech is not {request.audio_format!r} audio")
        if mime != AUDIO_FORMAT_MIME.get(request.audio_format, mime):
            _bad_response(f"asked for {request.audio_format!r} speech, got {mime}")
        if mime == "audio/wav":
            duration_s = wav_duration_s(data)
        return [
            Artifact(
                data=data,
                mime_type=mime,
                modality=Modality.AUDIO,
                generator=self.name,
                model=request.model,
                duration_s=duration_s,
            )
        ]

    # -- plumbing ------------------------------------------------------------------------------

    async def _post(self, path: str, body: dict[str, object], *, accept: str) -> httpx.Response:
        url = self._base_url.copy_with(path=self._base_url.path.rstrip("/") + "/" + path)
        headers = {"Accept": accept, **self._auth_headers()}
        response = await self._client.request("POST", url, json=body, headers=headers)
        self._raise_for_error(response)
        return response

    def _raise_for_error(self, response: httpx.Response) -> None:
        """``UpstreamError`` for anything but a success (a redirect counts as a bad answer)."""
        if response.is_success:
            return
        if response.status_code < 400:
            raise UpstreamError(
                f"the upstream answered HTTP {response.status_code}, not a result",
                status=502,
                code=BAD_RESPONSE,
            )
        code, message = _error_details(response)
        label = f"HTTP {response.status_code}" + (f" ({code})" if code else "")
        raise UpstreamError(
            f"the upstream answered {label}: {self._redact(message)}",
            status=response.status_code,
            code=code,
        )

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]") if self._api_key else text

    def _validate(self, request: GenerationRequest) -> None:
        if request.modality not in self._enabled:
            raise UnsupportedRequest(
                f"this {self.name!r} generator does not serve {request.modality.value}",
                param="model",
            )
        if request.model not in self._models:
            raise UnsupportedRequest(
                f"unknown model {request.model!r}; expected one of {', '.join(self._models)}",
                param="model",
            )


def _upload(image: InputImage, stem: str) -> tuple[str, bytes, str]:
    extension = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
    return f"{stem}.{extension.get(image.mime_type, 'png')}", image.data, image.mime_type


def _bad_response(reason: str, cause: BaseException | None = None) -> NoReturn:
    raise UpstreamError(
        f"the upstream sent a malformed response: {reason}", status=502, code=BAD_RESPONSE
    ) from cause


def _image_items(response: httpx.Response, expected: int) -> list[dict[str, object]]:
    try:
        payload = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        _bad_response("the body is not JSON", exc)
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        _bad_response("the body has no 'data' list of images")
    if len(data) < expected:
        _bad_response(f"asked for {expected} images, got {len(data)}")
    return data


def _inspect_image(data: bytes) -> tuple[str, int, int]:
    """MIME type from the magic number, size from the header (no pixel decoding)."""
    mime = sniff_image_mime(data)
    if mime is None:
        _bad_response("an image is not PNG, JPEG or WebP")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        _bad_response(f"an image ({mime}) cannot be read", exc)
    return mime, width, height


def _error_details(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) from an OpenAI-shaped error body; falls back to the body's text."""
    try:
        payload = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message")
        return (
            code if isinstance(code, str) and code else None,
            _shorten(message if isinstance(message, str) else json.dumps(error)),
        )
    text = response.text.strip() or response.reason_phrase or "no message"
    return None, _shorten(text)


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= _MAX_UPSTREAM_MESSAGE:
        return text
    return text[: _MAX_UPSTREAM_MESSAGE - 1] + "…"
