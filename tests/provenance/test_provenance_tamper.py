"""Tampered signed files, for every signed container we watermark (PNG, JPEG, WAV): a flipped
media byte, the manifest of another output pasted in, and truncation at several points. Each
gives the right C2PA status through ``inspect_asset`` (what ``POST /v1/provenance/verify`` runs),
or a ``ManifestReadError`` (the endpoint's 422), never anything else."""

from __future__ import annotations

import io
import wave
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from generators.base import Artifact, Modality
from provenance import ManifestReadError, ManifestSpec, SigningCredentials
from provenance.signer import C2paSigner
from provenance.verifier import AssetInspection, inspect_asset

KEY = b"tamper-test-key"
DATA_HASH_MISMATCH = "assertion.dataHash.mismatch"


def _image(fmt: str, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, fmt)
    return buffer.getvalue()


def _wav(seed: int) -> bytes:
    samples = np.random.default_rng(seed).normal(0, 3000, 32_000).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16_000)
        writer.writeframes(samples.tobytes())
    return buffer.getvalue()


MAKERS: dict[str, Callable[[int], bytes]] = {
    "image/png": lambda seed: _image("PNG", seed),
    "image/jpeg": lambda seed: _image("JPEG", seed),
    "audio/wav": _wav,
}


def _png_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    out, offset = [], 8
    while offset < len(png):
        length = int.from_bytes(png[offset : offset + 4], "big")
        out.append((png[offset + 4 : offset + 8], png[offset : offset + 12 + length]))
        offset += 12 + length
    return out


def _jpeg_segments(jpeg: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """(marker, whole segment) up to the start of scan, and the rest (scan data onwards)."""
    out, offset = [], 2
    while jpeg[offset + 1] != 0xDA:
        length = int.from_bytes(jpeg[offset + 2 : offset + 4], "big")
        out.append((jpeg[offset + 1], jpeg[offset : offset + 2 + length]))
        offset += 2 + length
    return out, jpeg[offset:]


def _riff_chunks(wav: bytes) -> list[tuple[bytes, bytes]]:
    out, offset = [], 12
    while offset + 8 <= len(wav):
        length = int.from_bytes(wav[offset + 4 : offset + 8], "little")
        end = offset + 8 + length + (length & 1)
        out.append((wav[offset : offset + 4], wav[offset:end]))
        offset = end
    return out


def swap_manifest(target: bytes, donor: bytes, mime_type: str) -> bytes:
    """``target``'s media with its C2PA manifest store replaced by ``donor``'s."""
    if mime_type == "image/png":
        manifest = next(raw for kind, raw in _png_chunks(donor) if kind == b"caBX")
        body = b"".join(manifest if kind == b"caBX" else raw for kind, raw in _png_chunks(target))
        return target[:8] + body
    if mime_type == "image/jpeg":
        donor_segments, _ = _jpeg_segments(donor)
        target_segments, scan = _jpeg_segments(target)
        app11 = b"".join(raw for marker, raw in donor_segments if marker == 0xEB)
        others = [raw for marker, raw in target_segments if marker != 0xEB]
        return target[:2] + others[0] + app11 + b"".join(others[1:]) + scan
    manifest = next(raw for kind, raw in _riff_chunks(donor) if kind == b"C2PA")
    body = b"".join(manifest if kind == b"C2PA" else raw for kind, raw in _riff_chunks(target))
    return b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WAVE" + body


def flip_media_byte(signed: bytes, mime_type: str) -> bytes:
    data = bytearray(signed)
    if mime_type == "image/png":
        offset = data.index(b"IDAT") + 40
    elif mime_type == "image/jpeg":
        offset = data.rindex(b"\xff\xda") + 200  # inside the entropy-coded scan
    else:
        offset = data.index(b"data") + 2_000
    data[offset] ^= 0x21
    return bytes(data)


@pytest.fixture(scope="module")
def signed_pairs(dev_credentials: SigningCredentials) -> dict[str, tuple[bytes, bytes]]:
    """Two different signed outputs per media type."""
    signer = C2paSigner(dev_credentials)
    spec = ManifestSpec("offline-demo", "demo", "dec-tamper", "default", "rev-1")

    def sign(mime_type: str, seed: int) -> bytes:
        audio = mime_type.startswith("audio/")
        artifact = Artifact(
            MAKERS[mime_type](seed),
            mime_type,
            Modality.AUDIO if audio else Modality.IMAGE,
            "offline-demo",
            "demo",
            None if audio else 300,
            None if audio else 300,
            2.0 if audio else None,
            None,
        )
        return signer.sign(artifact, spec).data

    return {mime: (sign(mime, 1), sign(mime, 2)) for mime in MAKERS}


def _inspect(data: bytes, anchors: bytes) -> AssetInspection:
    return inspect_asset(data, trust_anchors_pem=anchors, audio_key=KEY)


@pytest.mark.parametrize("mime_type", list(MAKERS))
def test_untouched_then_flipped_byte(
    signed_pairs: dict[str, tuple[bytes, bytes]],
    dev_credentials: SigningCredentials,
    mime_type: str,
) -> None:
    anchors = dev_credentials.trust_anchor_pem
    signed = signed_pairs[mime_type][0]
    assert _inspect(signed, anchors).c2pa.validation_state == "Trusted"
    flipped = _inspect(flip_media_byte(signed, mime_type), anchors)
    assert flipped.mime_type == mime_type
    assert flipped.c2pa.validation_state == "Invalid"
    assert flipped.c2pa.failure_codes == (DATA_HASH_MISMATCH,)


@pytest.mark.parametrize("mime_type", list(MAKERS))
def test_manifest_swapped_from_another_output(
    signed_pairs: dict[str, tuple[bytes, bytes]],
    dev_credentials: SigningCredentials,
    mime_type: str,
) -> None:
    first, second = signed_pairs[mime_type]
    swapped = _inspect(swap_manifest(first, second, mime_type), dev_credentials.trust_anchor_pem)
    # the donor's signature is genuine and trusted; its hard binding does not fit these bytes
    assert swapped.c2pa.has_manifest
    assert swapped.c2pa.validation_state == "Invalid"
    assert DATA_HASH_MISMATCH in swapped.c2pa.failure_codes
    assert "claimSignature.validated" in swapped.c2pa.success_codes


@pytest.mark.parametrize("mime_type", list(MAKERS))
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_truncated_file(
    signed_pairs: dict[str, tuple[bytes, bytes]],
    dev_credentials: SigningCredentials,
    mime_type: str,
    keep: float,
) -> None:
    signed = signed_pairs[mime_type][0]
    truncated = signed[: int(len(signed) * keep)]
    if mime_type == "image/jpeg":
        # the manifest (APP11) sits before the scan and survives; the hash over the image does not
        inspection = _inspect(truncated, dev_credentials.trust_anchor_pem)
        assert inspection.c2pa.validation_state == "Invalid"
        assert inspection.c2pa.failure_codes == (DATA_HASH_MISMATCH,)
        assert inspection.watermark_error is not None  # the pixels cannot be decoded
    else:
        # PNG chunks and RIFF chunks run past the end: c2pa cannot parse the container (422)
        with pytest.raises(ManifestReadError, match="could not be parsed"):
            _inspect(truncated, dev_credentials.trust_anchor_pem)
