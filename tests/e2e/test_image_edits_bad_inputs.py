"""Bad uploads to the edit and variation routes: each a precise 4xx naming the field, audited,
never a 500, and never reaching the generator."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import openai
import pytest
from PIL import Image

from generators.procedural import render_procedural_png
from tests.e2e.audit_helpers import record_for
from tests.e2e.conftest import RunningGateway


def png(size: tuple[int, int] = (256, 256), mode: str = "RGB") -> bytes:
    if mode == "RGB":
        return render_procedural_png("bad inputs", 1, size)
    buffer = io.BytesIO()
    Image.new(mode, size, (0, 0, 0, 0) if mode == "RGBA" else 0).save(buffer, "PNG")
    return buffer.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def pixel_bomb(side: int = 20_000) -> bytes:
    """A valid 1-bit PNG of side x side black pixels: ~50 MB of scanlines, ~50 KB on the wire."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )


def refused(gateway: RunningGateway, **kwargs: Any) -> tuple[openai.APIStatusError, dict[str, Any]]:
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.client().images.edit(**kwargs)
    error = caught.value
    body = error.body
    assert isinstance(body, dict)
    with gateway.redis() as r:
        record = record_for(r, "default", body["decision_id"])
    assert record["decision"]["action"] == "error"
    assert record["error"]["code"] == error.code
    assert "generate" not in {s["stage"] for s in record["stages"]}
    return error, record


def test_a_file_that_is_not_an_image_is_refused_by_its_bytes(gateway: RunningGateway) -> None:
    error, _ = refused(
        gateway, image=("photo.png", b"GIF89a" + bytes(64), "image/png"), prompt="brighter"
    )
    assert (error.status_code, error.code) == (400, "invalid_image_format")
    assert error.body["param"] == "image[0]"  # type: ignore[index]
    assert "GIF" in error.message


def test_a_truncated_png_is_refused(gateway: RunningGateway) -> None:
    whole = png()
    error, record = refused(
        gateway, image=("t.png", whole[: len(whole) // 2], "image/png"), prompt="x"
    )
    assert (error.status_code, error.code) == (400, "invalid_image")
    assert "truncated or corrupt" in error.message
    validation = next(s for s in record["stages"] if s["classifier"] == "validation")
    assert validation["verdict"] == "error"


def test_a_decompression_bomb_is_refused_before_decoding(gateway: RunningGateway) -> None:
    bomb = pixel_bomb()
    assert len(bomb) < 200_000
    error, _ = refused(gateway, image=("bomb.png", bomb, "image/png"), prompt="x")
    assert (error.status_code, error.code) == (400, "image_too_large")
    assert "20000x20000" in error.message or "400000000" in error.message


def test_a_mask_of_another_size_is_refused(gateway: RunningGateway) -> None:
    error, _ = refused(
        gateway,
        image=("i.png", png((256, 256)), "image/png"),
        mask=("m.png", png((128, 128), "RGBA"), "image/png"),
        prompt="x",
    )
    assert (error.status_code, error.body["param"]) == (400, "mask")  # type: ignore[index]
    assert "128x128" in error.message and "256x256" in error.message


def test_a_mask_without_transparency_is_refused(gateway: RunningGateway) -> None:
    error, _ = refused(
        gateway,
        image=("i.png", png(), "image/png"),
        mask=("m.png", png((256, 256), "L"), "image/png"),
        prompt="x",
    )
    assert error.body["param"] == "mask" and "alpha" in error.message  # type: ignore[index]


def test_too_many_images_are_refused(gateway: RunningGateway) -> None:
    limit = gateway.settings.limits.max_input_images
    images = [(f"{i}.png", png(), "image/png") for i in range(limit + 1)]
    error, _ = refused(gateway, image=images, prompt="x")
    assert (error.status_code, error.code) == (400, "too_many_images")
    assert f"at most {limit}" in error.message


def test_a_json_body_is_refused_as_the_wrong_media_type(gateway: RunningGateway) -> None:
    with gateway.http() as http:
        answer = http.post("/v1/images/edits", json={"prompt": "x", "image": "data:..."})
    assert answer.status_code == 415
    body = answer.json()["error"]
    assert body["code"] == "unsupported_media_type"
    with gateway.redis() as r:
        record = record_for(r, "default", body["decision_id"])
    assert record["route"] == "images.edits" and record["error"]["status"] == 415


def test_a_variation_without_an_image_names_the_field(gateway: RunningGateway) -> None:
    with gateway.http() as http:
        answer = http.post("/v1/images/variations", files={"n": (None, "2")})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "image"
