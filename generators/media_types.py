"""Recognise media from its leading bytes, never from what a server claims it sent."""

from __future__ import annotations

import struct

__all__ = ["AUDIO_FORMAT_MIME", "sniff_audio_mime", "sniff_image_mime", "wav_duration_s"]

AUDIO_FORMAT_MIME = {
    "wav": "audio/wav",
    "pcm": "audio/pcm",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
}
"""OpenAI ``response_format`` for speech → the MIME type of those bytes."""


def sniff_image_mime(data: bytes) -> str | None:
    """``image/png``, ``image/jpeg`` or ``image/webp`` by magic number; otherwise ``None``."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def sniff_audio_mime(data: bytes) -> str | None:
    """WAV, FLAC, Ogg, AAC (ADTS) or MP3 by magic number; otherwise ``None`` (raw PCM has none)."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data.startswith(b"fLaC"):
        return "audio/flac"
    if data.startswith(b"OggS"):
        return "audio/ogg"
    if data.startswith(b"ID3"):
        return "audio/mpeg"
    if len(data) >= 2 and data[0] == 0xFF:
        if data[1] & 0xF6 == 0xF0:  # ADTS sync word, layer 0
            return "audio/aac"
        if data[1] & 0xE0 == 0xE0 and data[1] & 0x06 != 0:  # MPEG audio frame, layer I-III
            return "audio/mpeg"
    return None


def wav_duration_s(data: bytes) -> float | None:
    """Duration of a RIFF/WAVE file from its ``fmt `` and ``data`` chunks, or ``None``.

    Tolerates streamed WAVs whose ``data`` chunk declares a placeholder length (such as
    0xFFFFFFFF): the bytes actually present are counted instead.
    """
    if sniff_audio_mime(data) != "audio/wav":
        return None
    offset, byte_rate = 12, 0
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        size: int = struct.unpack_from("<I", data, offset + 4)[0]
        body = offset + 8
        if chunk_id == b"fmt " and size >= 16 and body + 16 <= len(data):
            byte_rate = int(struct.unpack_from("<I", data, body + 8)[0])
        elif chunk_id == b"data":
            if byte_rate <= 0:
                return None
            return float(min(size, len(data) - body)) / byte_rate
        offset = body + size + (size & 1)
    return None
