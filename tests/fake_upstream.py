"""A fake third-party OpenAI-compatible upstream, served by a real uvicorn in a background thread.

It stands in for OpenAI (or any provider behind ``OpenAICompatGenerator``) in unit and end-to-end
tests. It answers ``POST /v1/images/generations`` with real PNGs (Pillow) of the requested size,
``POST /v1/images/edits`` and ``/v1/images/variations`` (multipart, as OpenAI takes them) with the
first uploaded image's colours inverted (recorded ``body``: ``{"fields": …, "files": […]}``),
``POST /v1/audio/speech`` with a real WAV (or raw 24 kHz PCM), and ``GET /v1/models``. Set
``.mode`` to make it misbehave; every request it receives is recorded in ``.requests``::

    with serve_fake_upstream(api_key="sk-upstream") as upstream:
        upstream.mode = "error_400"
        ...  # point the code under test at upstream.base_url
        assert upstream.requests[-1].authorization == "Bearer sk-upstream"

Modes (they apply to the images and speech endpoints; ``/v1/models`` and image files always work):

- ``ok``: answers like OpenAI, images as ``b64_json``.
- ``ok_url``: images as ``url`` pointing at ``/files/<id>.png`` on this server (the host written
  in the URL is ``url_host``, so tests can make it look like another origin).
- ``error_400``: OpenAI's ``content_policy_violation`` error.
- ``error_500``: OpenAI's generic ``server_error``.
- ``slow``: sleeps ``slow_s`` seconds (longer than any client timeout in the tests), then answers.
- ``garbage``: HTTP 200 with a body that is not JSON (images) or not audio (speech).
- ``short``: one image fewer than asked for; an empty body for speech.

With ``api_key`` set, requests to ``/v1`` without ``Authorization: Bearer <api_key>`` get
OpenAI's 401 ``invalid_api_key``, whose message echoes the presented key in full (a worst case
that callers must redact).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import math
import socket
import threading
import time
import uuid
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import uvicorn
from PIL import Image, ImageDraw
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["FakeUpstream", "Mode", "ReceivedRequest", "serve_fake_upstream"]

Mode = Literal["ok", "ok_url", "error_400", "error_500", "slow", "garbage", "short"]
MODES: tuple[str, ...] = get_args(Mode)

SPEECH_SAMPLE_RATE = 24_000
CONTENT_POLICY_MESSAGE = (
    "Your request was rejected as a result of our safety system. Your prompt may contain text "
    "that is not allowed by our safety system."
)
SERVER_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!"


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the fake upstream saw it."""

    method: str
    path: str
    body: Any  # the parsed JSON body, or None when there was none or it was not JSON
    authorization: str | None
    headers: dict[str, str]


@dataclass
class FakeUpstream:
    """The running fake; its attributes may be changed between requests from the test thread."""

    origin: str
    api_key: str | None = None
    url_host: str = "127.0.0.1"
    slow_s: float = 5.0
    requests: list[ReceivedRequest] = field(default_factory=list)
    _mode: Mode = "ok"
    files: dict[str, bytes] = field(default_factory=dict)  # served at /files/<name>
    image: bytes | None = None  # when set, every generated image is these bytes (a fixed photo)

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, value: Mode) -> None:
        if value not in MODES:
            raise ValueError(f"unknown mode {value!r}; expected one of {MODES}")
        self._mode = value

    def reset(self) -> None:
        """Back to ``ok`` with no recorded requests."""
        self.requests.clear()
        self._mode = "ok"
        self.image = None

    def requests_to(self, path: str) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.path == path]


@contextmanager
def serve_fake_upstream(
    *, api_key: str | None = None, url_host: str = "127.0.0.1"
) -> Iterator[FakeUpstream]:
    """Start the fake on a free loopback port; stop it on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    upstream = FakeUpstream(origin=f"http://127.0.0.1:{port}", api_key=api_key, url_host=url_host)
    config = uvicorn.Config(
        _build_app(upstream, port),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fake-upstream", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake upstream failed to start")
            time.sleep(0.01)
        yield upstream
    finally:
        server.should_exit = True
        server.force_exit = True  # do not wait for a "slow" request still sleeping
        thread.join(timeout=10)
        sock.close()


def _build_app(upstream: FakeUpstream, port: int) -> Starlette:
    async def record(request: Request) -> Any:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        upstream.requests.append(
            ReceivedRequest(
                method=request.method,
                path=request.url.path,
                body=body,
                authorization=request.headers.get("authorization"),
                headers=dict(request.headers),
            )
        )
        return body

    def unauthorised(request: Request) -> Response | None:
        if upstream.api_key is None:
            return None
        presented = request.headers.get("authorization", "")
        if presented == f"Bearer {upstream.api_key}":
            return None
        key = presented.removeprefix("Bearer ")
        message = f"Incorrect API key provided: {key}."
        return _error(401, message, "invalid_request_error", "invalid_api_key")

    async def misbehave(request: Request) -> Response | None:
        mode = upstream.mode
        if mode == "error_400":
            kind, code = "invalid_request_error", "content_policy_violation"
            return _error(400, CONTENT_POLICY_MESSAGE, kind, code)
        if mode == "error_500":
            return _error(500, SERVER_ERROR_MESSAGE, "server_error", None)
        if mode == "slow":
            await asyncio.sleep(upstream.slow_s)
        return None

    async def images_generations(request: Request) -> Response:
        body = await record(request)
        failure = unauthorised(request) or await misbehave(request)
        if failure is not None:
            return failure
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            return _error(400, "'prompt' is a required property", "invalid_request_error", None)
        n, size = body.get("n") or 1, _parse_size(str(body.get("size") or "auto"))
        if not isinstance(n, int) or not 1 <= n <= 10:
            return _error(400, f"Invalid 'n': {n!r}", "invalid_request_error", "invalid_value")
        if size is None:
            message = f"Invalid 'size': {body.get('size')!r}"
            return _error(400, message, "invalid_request_error", "invalid_value")
        width, height = size
        if upstream.mode == "garbage":
            return Response(b'{"created": 1, "data": [{"b64_json": ', media_type="application/json")
        count = n - 1 if upstream.mode == "short" else n
        data = []
        for index in range(count):
            png = upstream.image or _render_png(body["prompt"], index, width, height)
            if upstream.mode == "ok_url" or body.get("response_format") == "url":
                name = f"{uuid.uuid4().hex}.png"
                upstream.files[name] = png
                data.append({"url": f"http://{upstream.url_host}:{port}/files/{name}"})
            else:
                data.append({"b64_json": base64.b64encode(png).decode("ascii")})
            data[-1]["revised_prompt"] = f"{body['prompt']} (revised by the fake upstream)"
        return JSONResponse({"created": int(time.time()), "data": data})

    async def image_edits(request: Request) -> Response:
        form = await request.form()
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        files = []
        for key, value in form.multi_items():
            if not isinstance(value, str):
                data = await value.read()
                files.append(
                    {
                        "field": key,
                        "filename": value.filename,
                        "content_type": value.content_type,
                        "data": data,
                    }
                )
        upstream.requests.append(
            ReceivedRequest(
                method=request.method,
                path=request.url.path,
                body={"fields": fields, "files": files},
                authorization=request.headers.get("authorization"),
                headers=dict(request.headers),
            )
        )
        failure = unauthorised(request) or await misbehave(request)
        if failure is not None:
            return failure
        images = [f for f in files if str(f["field"]).startswith("image")]
        if not images:
            return _error(400, "'image' is a required property", "invalid_request_error", None)
        if request.url.path.endswith("/edits") and not fields.get("prompt"):
            return _error(400, "'prompt' is a required property", "invalid_request_error", None)
        n = int(fields.get("n") or 1)
        with Image.open(io.BytesIO(images[0]["data"])) as opened:  # type: ignore[arg-type]
            source = opened.convert("RGB")
        size = _parse_size(fields["size"]) if fields.get("size") else source.size
        if size is None:
            message = f"Invalid 'size': {fields.get('size')!r}"
            return _error(400, message, "invalid_request_error", "invalid_value")
        inverted = Image.eval(source.resize(size), lambda v: 255 - v)
        buffer = io.BytesIO()
        inverted.save(buffer, format="PNG")
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        return JSONResponse({"created": int(time.time()), "data": [{"b64_json": encoded}] * n})

    async def audio_speech(request: Request) -> Response:
        body = await record(request)
        failure = unauthorised(request) or await misbehave(request)
        if failure is not None:
            return failure
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("input"), str)
            or not body["input"]
        ):
            return _error(400, "'input' is a required property", "invalid_request_error", None)
        if upstream.mode == "garbage":
            return Response(b"<html><body>Bad gateway</body></html>", media_type="audio/wav")
        if upstream.mode == "short":
            return Response(b"", media_type="audio/wav")
        audio_format = body.get("response_format") or "mp3"
        if audio_format not in ("wav", "pcm"):
            message = f"The fake upstream cannot encode {audio_format!r}; use wav or pcm"
            return _error(400, message, "invalid_request_error", "unsupported_format")
        samples = _render_speech(body["input"], float(body.get("speed") or 1.0))
        if audio_format == "pcm":
            return Response(samples.astype("<i2").tobytes(), media_type="audio/pcm")
        return Response(_encode_wav(samples), media_type="audio/wav")

    async def models(request: Request) -> Response:
        await record(request)
        failure = unauthorised(request)
        if failure is not None:
            return failure
        names = ("fake-image-1", "fake-tts-1")
        listing = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in names]
        return JSONResponse({"object": "list", "data": listing})

    async def files(request: Request) -> Response:
        await record(request)
        png = upstream.files.get(request.path_params["name"])
        if png is None:
            return Response(b"not found", status_code=404)
        return Response(png, media_type="image/png")

    return Starlette(
        routes=[
            Route("/v1/images/generations", images_generations, methods=["POST"]),
            Route("/v1/images/edits", image_edits, methods=["POST"]),
            Route("/v1/images/variations", image_edits, methods=["POST"]),
            Route("/v1/audio/speech", audio_speech, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/files/{name}", files, methods=["GET"]),
        ]
    )


def _error(status: int, message: str, kind: str, code: str | None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status)


def _parse_size(size: str) -> tuple[int, int] | None:
    """``"WxH"`` with sides in [16, 4096], ``"auto"`` (1024x1024), or ``None`` when invalid."""
    if size == "auto":
        return 1024, 1024
    width, _, height = size.partition("x")
    if not (width.isdigit() and height.isdigit()):
        return None
    if not (16 <= int(width) <= 4096 and 16 <= int(height) <= 4096):
        return None
    return int(width), int(height)


def _render_png(prompt: str, index: int, width: int, height: int) -> bytes:
    """A gradient with a disc, coloured by the prompt and the image's index in the batch."""
    digest = hashlib.sha256(f"{prompt}\x00{index}".encode()).digest()
    rng = np.random.default_rng(list(digest))
    top, bottom = rng.integers(0, 256, size=(2, 3))
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    pixels = (top * (1 - ramp) + bottom * ramp).repeat(width, axis=1).astype(np.uint8)
    image = Image.fromarray(pixels, mode="RGB")
    radius = min(width, height) // 4
    centre = (width // 2, height // 2)
    box = (centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius)
    ImageDraw.Draw(image).ellipse(box, fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _render_speech(text: str, speed: float) -> np.ndarray[Any, np.dtype[np.int16]]:
    """Not speech: one 40 ms tone burst per character (pitch from the character), at ``speed``."""
    burst = max(1, round(0.04 * SPEECH_SAMPLE_RATE / max(speed, 0.25)))
    t = np.arange(burst) / SPEECH_SAMPLE_RATE
    envelope = np.sin(np.pi * np.arange(burst) / burst)
    bursts = [np.sin(2 * math.pi * (150 + (ord(ch) % 64) * 8) * t) * envelope * 0.4 for ch in text]
    return (np.concatenate(bursts) * 32767).astype(np.int16)


def _encode_wav(samples: np.ndarray[Any, np.dtype[np.int16]]) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(SPEECH_SAMPLE_RATE)
        writer.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()
