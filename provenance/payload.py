"""The watermark payload: a 32-bit watermark id protected by a CRC-16, as 48 bits.

Both watermarks (image and audio) carry the same payload. The id is random (``new_watermark_id``)
and names a record in the manifest repository; the CRC (CRC-16/CCITT, initial value 0xFFFF,
``binascii.crc_hqx``) tells a recovered id from noise: an unmarked asset decodes to a random
48-bit word whose CRC matches with probability 2**-16, and the verifier additionally requires the
id to be registered. The 48 bits are XORed with a fixed mask so that a flat or empty carrier
(all bits 0 or all 1) never decodes as a valid payload.
"""

from __future__ import annotations

import binascii
import secrets

import numpy as np
import numpy.typing as npt

__all__ = [
    "PAYLOAD_BITS",
    "decode_payload",
    "encode_payload",
    "format_watermark_id",
    "new_watermark_id",
    "parse_watermark_id",
]

PAYLOAD_BITS = 48
_MASK = bytes.fromhex("a55a3cc3965a")  # whitening: no constant bit pattern is a valid payload

Bits = npt.NDArray[np.uint8]


def new_watermark_id() -> int:
    """A random 32-bit id, never 0."""
    return secrets.randbelow(2**32 - 1) + 1


def format_watermark_id(watermark_id: int) -> str:
    """The id as it appears in manifests, audit records and the API: 8 lower-case hex digits."""
    return f"{watermark_id:08x}"


def parse_watermark_id(text: str) -> int:
    """The inverse of ``format_watermark_id``; ``ValueError`` for anything else."""
    if len(text) != 8:
        raise ValueError(f"a watermark id is 8 hex digits, got {text!r}")
    return int(text, 16)


def encode_payload(watermark_id: int) -> Bits:
    """48 bits (uint8 0/1, most significant first): id (32) + CRC-16 (16), whitened."""
    if not 0 < watermark_id < 2**32:
        raise ValueError(f"watermark id {watermark_id} is not a non-zero 32-bit integer")
    body = watermark_id.to_bytes(4, "big")
    word = body + binascii.crc_hqx(body, 0xFFFF).to_bytes(2, "big")
    whitened = bytes(a ^ b for a, b in zip(word, _MASK, strict=True))
    return np.unpackbits(np.frombuffer(whitened, dtype=np.uint8))


def decode_payload(bits: Bits) -> int | None:
    """The watermark id if ``bits`` (48 of them) carry a valid payload, else ``None``."""
    if bits.shape != (PAYLOAD_BITS,):
        raise ValueError(f"expected {PAYLOAD_BITS} bits, got shape {bits.shape}")
    whitened = np.packbits(bits.astype(np.uint8)).tobytes()
    word = bytes(a ^ b for a, b in zip(whitened, _MASK, strict=True))
    body, crc = word[:4], int.from_bytes(word[4:], "big")
    if binascii.crc_hqx(body, 0xFFFF) != crc:
        return None
    watermark_id = int.from_bytes(body, "big")
    return watermark_id or None
