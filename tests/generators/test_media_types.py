"""Magic-number sniffing and WAV duration parsing."""

from __future__ import annotations

import io
import struct
import wave

import pytest
from PIL import Image

from generators.media_types import sniff_audio_mime, sniff_image_mime, wav_duration_s


@pytest.mark.parametrize(
    ("pil_format", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_images_are_recognised(pil_format: str, mime: str) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(buffer, format=pil_format)
    assert sniff_image_mime(buffer.getvalue()) == mime
    assert sniff_audio_mime(buffer.getvalue()) != "audio/wav"


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"fLaC\x00\x00\x00\x22", "audio/flac"),
        (b"OggS\x00\x02", "audio/ogg"),
        (b"ID3\x04\x00", "audio/mpeg"),
        (b"\xff\xfb\x90\x64", "audio/mpeg"),
        (b"\xff\xf1\x50\x80", "audio/aac"),
        (b"\x00\x01\x02\x03", None),
        (b"", None),
    ],
)
def test_audio_is_recognised(head: bytes, mime: str | None) -> None:
    assert sniff_audio_mime(head) == mime
    assert sniff_image_mime(head) is None


def make_wav(frames: int, rate: int = 24_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\x01\x00" * frames)
    return buffer.getvalue()


def test_wav_duration() -> None:
    data = make_wav(12_000)
    assert sniff_audio_mime(data) == "audio/wav"
    assert wav_duration_s(data) == pytest.approx(0.5)


def test_streamed_wav_with_placeholder_length_counts_the_bytes_present() -> None:
    data = bytearray(make_wav(6_000))
    data_chunk = data.index(b"data")
    struct.pack_into("<I", data, data_chunk + 4, 0xFFFFFFFF)
    struct.pack_into("<I", data, 4, 0xFFFFFFFF)
    assert wav_duration_s(bytes(data)) == pytest.approx(0.25)


def test_not_a_wav_has_no_duration() -> None:
    assert wav_duration_s(b"RIFF\x00\x00\x00\x00WAVE") is None
    assert wav_duration_s(b"OggS" + b"\x00" * 40) is None
