"""Watermarks: payload code, image (DWT-DCT-SVD) and audio (spread spectrum), on real decoded
media."""

from __future__ import annotations

import importlib.util
import io
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from provenance.audio_watermark import embed_audio_watermark, read_audio_bits, resample
from provenance.image_watermark import embed_image_watermark, read_image_bits
from provenance.payload import (
    CODED_BITS,
    INTERLEAVER,
    decode_codeword,
    decode_payload,
    encode_codeword,
    encode_payload,
    format_watermark_id,
)

WATERMARK_ID = 0x5EC0DE42
KEY = b"test-audio-watermark-key"


def textured_image(size: int = 512, seed: int = 3) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([120 + 80 * np.sin(6 * x + 2 * c) * np.cos(4 * y - c) for c in range(3)], -1)
    noise = rng.normal(0, 12, (size, size, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def speech_like(seconds: float = 4.0, rate: int = 22_050, seed: int = 5) -> np.ndarray:
    """Voiced segments with a wandering pitch, syllable envelope and breath noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 25))
    envelope = np.clip(np.sin(2 * np.pi * 3.1 * t), 0, None) ** 0.5
    return 0.25 * voiced * envelope + 0.01 * rng.normal(size=t.size)


def dark_image(size: int = 512, seed: int = 4) -> Image.Image:
    """A night sky: near-black, almost no chroma, a few bright specks (like the Hubble deep
    field, where marks along the blocks' own singular vectors did not survive JPEG)."""
    rng = np.random.default_rng(seed)
    grey = np.clip(rng.normal(14, 5, (size, size)), 0, 255)
    specks = rng.random((size, size)) < 0.002
    grey[specks] = 220
    rgb = np.stack([grey, grey * 1.03, grey * 0.98], -1) + rng.normal(0, 1.5, (size, size, 3))
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_payload_round_trip_and_rejects_noise() -> None:
    bits = encode_payload(WATERMARK_ID)
    assert bits.shape == (48,)
    assert decode_payload(bits) == WATERMARK_ID
    flipped = bits.copy()
    flipped[7] ^= 1
    assert decode_payload(flipped) is None
    assert decode_payload(np.zeros(48, np.uint8)) is None
    assert decode_payload(np.ones(48, np.uint8)) is None
    assert format_watermark_id(WATERMARK_ID) == "5ec0de42"


def test_codeword_corrects_errors_and_rejects_noise() -> None:
    rng = np.random.default_rng(11)
    coded = encode_codeword(WATERMARK_ID)
    assert coded.shape == (CODED_BITS,)
    assert sorted(INTERLEAVER.tolist()) == list(range(CODED_BITS))
    signs = coded * 2.0 - 1.0
    assert decode_codeword(signs)[0] == WATERMARK_ID
    # 12 % of the coded bits wrong (hard), then Gaussian noise at a symbol SNR of 0 dB: the
    # soft-decision Viterbi decoder still finds the payload
    flipped = signs.copy()
    flipped[rng.choice(CODED_BITS, CODED_BITS * 12 // 100, replace=False)] *= -1
    assert decode_codeword(flipped)[0] == WATERMARK_ID
    assert decode_codeword(signs + rng.normal(0, 1.0, CODED_BITS))[0] == WATERMARK_ID
    # pure noise: no CRC-valid id, and a path agreement far below a clean mark's 1.0
    readings = [decode_codeword(rng.normal(size=CODED_BITS)) for _ in range(50)]
    assert all(watermark_id is None for watermark_id, _, _ in readings)
    assert max(agreement for _, _, agreement in readings) < 0.75


def test_image_mark_survives_jpeg_and_a_resize_back() -> None:
    original = textured_image()
    marked = embed_image_watermark(original, WATERMARK_ID)
    difference = np.asarray(marked, float) - np.asarray(original, float)
    psnr = 10 * np.log10(255**2 / np.mean(difference**2))
    assert psnr > 38
    assert read_image_bits(marked).watermark_id == WATERMARK_ID
    assert read_image_bits(_jpeg(marked, 75)).watermark_id == WATERMARK_ID
    half = marked.resize((256, 256), Image.Resampling.BICUBIC)
    assert read_image_bits(half, (512, 512)).watermark_id == WATERMARK_ID
    assert read_image_bits(original).watermark_id is None


def test_image_mark_survives_jpeg_on_a_dark_flat_image() -> None:
    original = dark_image()
    marked = embed_image_watermark(original, WATERMARK_ID)
    difference = np.asarray(marked, float) - np.asarray(original, float)
    assert 10 * np.log10(255**2 / np.mean(difference**2)) > 38
    assert read_image_bits(_jpeg(marked, 75)).watermark_id == WATERMARK_ID
    assert read_image_bits(_jpeg(original, 75)).watermark_id is None


def test_small_images_cannot_carry_a_mark() -> None:
    with pytest.raises(ValueError, match="too small"):
        embed_image_watermark(textured_image(200), WATERMARK_ID)


def _reference_decoder() -> ModuleType | None:
    """invisible-watermark's own dwtDctSvd module (its package __init__ imports torch)."""
    spec = importlib.util.find_spec("imwatermark")
    if (
        spec is None
        or not spec.submodule_search_locations
        or importlib.util.find_spec("pywt") is None
    ):
        return None
    location = f"{next(iter(spec.submodule_search_locations))}/dwtDctSvd.py"
    module_spec = importlib.util.spec_from_file_location("imwatermark_dwtdctsvd", location)
    if module_spec is None or module_spec.loader is None:
        return None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_invisible_watermark_reads_our_image_mark() -> None:
    reference = _reference_decoder()
    if reference is None:
        pytest.skip("invisible-watermark (scripts/bootstrap installs it) is not installed")
    marked = embed_image_watermark(textured_image(), WATERMARK_ID)
    bgr = np.ascontiguousarray(np.asarray(marked)[:, :, ::-1])
    # block n carries its reference bit n mod 162, which is our coded bit INTERLEAVER[n mod 162]
    bits = np.asarray(reference.EmbedDwtDctSvd([], wmLen=CODED_BITS).decode(bgr), np.uint8)
    # its decoder rounds YUV to uint8 and takes hard votes: a bit may flip on a noisy image
    agreement = np.mean(bits == encode_codeword(WATERMARK_ID)[INTERLEAVER])
    assert agreement >= 0.95
    assert decode_codeword(np.zeros(CODED_BITS) + (2.0 * bits - 1)[np.argsort(INTERLEAVER)])[0] == (
        WATERMARK_ID
    )


def test_audio_mark_survives_resampling_and_gain_and_needs_the_key() -> None:
    rate = 22_050
    clip = speech_like(rate=rate)
    marked = embed_audio_watermark(clip, rate, WATERMARK_ID, KEY)
    snr = 10 * np.log10(np.sum(clip**2) / np.sum((marked - clip) ** 2))
    assert snr > 20
    assert read_audio_bits(marked, rate, KEY).watermark_id == WATERMARK_ID
    through_16k = resample(resample(marked, rate, 16_000), 16_000, rate)
    assert read_audio_bits(through_16k, rate, KEY).watermark_id == WATERMARK_ID
    assert read_audio_bits(marked * 0.5, rate, KEY).watermark_id == WATERMARK_ID
    delayed = np.concatenate([np.zeros(700), marked])
    assert read_audio_bits(delayed, rate, KEY).watermark_id == WATERMARK_ID
    assert read_audio_bits(marked, rate, b"another key").watermark_id is None
    assert read_audio_bits(clip, rate, KEY).watermark_id is None


def test_short_audio_cannot_carry_a_mark() -> None:
    with pytest.raises(ValueError, match="too short"):
        embed_audio_watermark(speech_like(1.0), 22_050, WATERMARK_ID, KEY)
