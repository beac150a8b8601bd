"""Invisible image watermark: DWT-DCT-SVD quantisation, the scheme of invisible-watermark.

The payload (``provenance.payload``: 48 bits, convolutionally coded to 162) goes into the chroma
(U of YUV, BT.601) of the image: one Haar DWT level (computed directly: the low-pass coefficient
of a 2x2 pixel square is half its sum, and a change of the coefficient spreads back as half of it
on each pixel), the low-pass band cut into 4x4 blocks, and in each block the largest singular
value is quantised (QIM, step ``SCALE``) to the lattice point that means 0 or 1. Block ``n``
carries coded bit ``INTERLEAVER[n mod 162]`` in row-major order, so every coded bit is repeated
tens to hundreds of times; the decoder sums the soft votes of its blocks and Viterbi-decodes the
162 sums (``payload.decode_codeword``). The largest singular value of a block equals that of its
2-D DCT (the DCT is orthonormal), so this is the mark of invisible-watermark's ``dwtDctSvd``
with ``scales=[0, 36, 0]``; its decoder reads our coded bits (``wmLen=162``; it rounds YUV to
uint8 and takes hard votes, so a few bits differ). We compute it with one batched power
iteration on ``BᵀB`` (``eigh`` for the few blocks where it has not converged) instead of one
Python SVD call per block: many times faster (see docs/benchmarks.md).

The domain matters. invisible-watermark works on 8-bit YUV, where U is stored as ``U + 128``;
cv2's float YUV stores ``U + 0.5``. We add the difference (``U_OFFSET`` = 127.5) before the DWT,
as the reference does implicitly. Then every 4x4 block of the low band carries a large constant
(255 per coefficient), its top singular vectors are close to the block mean, and the QIM mostly
moves the chroma mean of the 8x8 pixel area: JPEG keeps that (it is the chroma DC), where the
offset-free version moved blocks along their own noisy singular vectors, a high-frequency chroma
pattern that JPEG's subsampling and quantisation erased in flat or dark images (Hubble deep
field, JPEG q75: 3 of 3 ids lost before; docs/benchmarks.md).

Robust to JPEG down to q≈50, WebP, PNG re-encoding and metadata stripping; a resize survives
only if the image is resized back to its original size before decoding (the verifier does that
with the sizes the repository knows). Cropping shifts the block grid and rotation destroys it:
neither survives. Images smaller than 256x256 are not marked.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from provenance.payload import (
    CODED_BITS,
    INTERLEAVER,
    PAYLOAD_BITS,
    Bits,
    decode_codeword,
    encode_codeword,
)

__all__ = ["MIN_IMAGE_SIDE", "ImageWatermarkReading", "embed_image_watermark", "read_image_bits"]

MIN_IMAGE_SIDE = 256
SCALE = 36.0
BLOCK = 4
U_OFFSET = 127.5  # cv2's 8-bit YUV stores U + 128, its float YUV U + 0.5: work as the 8-bit

FloatArray = npt.NDArray[np.float64]

# the RGB change of a unit change of U (cv2's BT.601 YUV, linear): (0, -0.395, 2.032)
_U_TO_RGB = (
    cv2.cvtColor(np.array([[[0.0, 1.0, 0.0]]], np.float32), cv2.COLOR_YUV2RGB)
    - cv2.cvtColor(np.zeros((1, 1, 3), np.float32), cv2.COLOR_YUV2RGB)
).reshape(3)


@dataclass(frozen=True, slots=True)
class ImageWatermarkReading:
    """What the decoder saw at one size: the id (``None`` if the CRC failed), the 48 decoded
    payload bits, the hard decisions on the 162 coded bits before Viterbi (``coded_bits``) and
    the mean absolute soft vote per coded bit in [0, 1] (1 = every block agrees)."""

    watermark_id: int | None
    bits: Bits
    confidence: float
    size: tuple[int, int]
    coded_bits: Bits


def can_carry(width: int, height: int) -> bool:
    return min(width, height) >= MIN_IMAGE_SIDE


def _blocks(band: FloatArray) -> tuple[FloatArray, int, int]:
    rows, cols = band.shape[0] // BLOCK, band.shape[1] // BLOCK
    blocks = (
        band[: rows * BLOCK, : cols * BLOCK]
        .reshape(rows, BLOCK, cols, BLOCK)
        .transpose(0, 2, 1, 3)
        .reshape(-1, BLOCK, BLOCK)
    )
    return blocks, rows, cols


def _haar_low(channel: FloatArray) -> FloatArray:
    """The low-pass band of one orthonormal Haar level (``pywt.dwt2(x, "haar")[0]``)."""
    return (
        channel[0::2, 0::2] + channel[0::2, 1::2] + channel[1::2, 0::2] + channel[1::2, 1::2]
    ) / 2.0


def _chroma(image: Image.Image) -> tuple[npt.NDArray[np.float32], int, int]:
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    yuv: npt.NDArray[np.float32] = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV), np.float32)
    return yuv, (rgb.shape[0] // 4) * 4, (rgb.shape[1] // 4) * 4


def _top_eigenpair(gram: FloatArray, squarings: int = 5) -> tuple[FloatArray, FloatArray]:
    """The largest eigenvalue and its unit eigenvector of each symmetric PSD 4x4 matrix.

    Power iteration by repeated squaring (``G^32``, rescaled each step) costs a third of a
    batched ``eigh``; blocks whose eigenpair has not converged to a relative residual of 1e-9
    (nearly equal top eigenvalues, about 1 % of blocks) are solved with ``eigh``, so the
    result is ``eigh``'s to rounding.
    """
    power = gram / np.maximum(np.trace(gram, axis1=1, axis2=2), 1e-300)[:, None, None]
    for _ in range(squarings):
        power = power @ power
        power /= np.maximum(np.abs(power).max(axis=(1, 2)), 1e-300)[:, None, None]
    strongest = np.linalg.norm(power, axis=1).argmax(axis=1)
    vector = np.take_along_axis(power, strongest[:, None, None], axis=2)[:, :, 0]
    vector /= np.maximum(np.linalg.norm(vector, axis=1), 1e-300)[:, None]
    image = np.einsum("nij,nj->ni", gram, vector)
    value = np.einsum("ni,ni->n", vector, image)
    residual = np.linalg.norm(image - value[:, None] * vector, axis=1)
    unsettled = residual > 1e-9 * np.maximum(value, 1e-12)
    if unsettled.any():
        values, vectors = np.linalg.eigh(gram[unsettled])
        value[unsettled] = values[:, -1]
        vector[unsettled] = vectors[:, :, -1]
    return value, vector


def _carriers(count: int) -> npt.NDArray[np.intp]:
    """The coded bit that each of ``count`` blocks carries."""
    return INTERLEAVER[np.arange(count) % CODED_BITS]


def embed_image_watermark(image: Image.Image, watermark_id: int) -> Image.Image:
    """``image`` (RGB) carrying ``watermark_id``. ``ValueError`` if it is under 256 px a side."""
    if not can_carry(image.width, image.height):
        raise ValueError(f"a {image.width}x{image.height} image is too small to carry a watermark")
    coded = encode_codeword(watermark_id).astype(np.float64)
    rgb = np.array(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.float32)
    height, width = (rgb.shape[0] // 4) * 4, (rgb.shape[1] // 4) * 4
    chroma = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV)[:height, :width, 1].astype(np.float64)
    low = _haar_low(chroma + U_OFFSET)
    blocks, rows, cols = _blocks(low)
    value, right = _top_eigenpair(np.einsum("nji,njk->nik", blocks, blocks))  # v0
    largest = np.sqrt(np.maximum(value, 0.0))
    left = np.einsum("nij,nj->ni", blocks, right) / np.maximum(largest, 1e-9)[:, None]  # u0
    wanted = coded[_carriers(len(blocks))]
    target = (np.floor(largest / SCALE) + 0.25 + 0.5 * wanted) * SCALE
    change = (target - largest)[:, None, None] * (left[:, :, None] * right[:, None, :])
    low_change = np.zeros_like(low)
    low_change[: rows * BLOCK, : cols * BLOCK] = (
        change.reshape(rows, cols, BLOCK, BLOCK).transpose(0, 2, 1, 3).reshape(rows * BLOCK, -1)
    )
    # each 2x2 pixel square moves by half the change of its coefficient, in U only: in RGB that
    # is a fixed direction, so no YUV -> RGB conversion of the whole image is needed
    squares = rgb[:height, :width].reshape(height // 2, 2, width // 2, 2, 3)
    squares += (low_change / 2.0).astype(np.float32)[:, None, :, None, None] * _U_TO_RGB
    np.rint(rgb, out=rgb)
    np.clip(rgb, 0, 255, out=rgb)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def read_image_bits(
    image: Image.Image, size: tuple[int, int] | None = None
) -> ImageWatermarkReading:
    """Decode the payload, after resizing to ``size`` (width, height) if given."""
    if size is not None and image.size != size:
        image = image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    if not can_carry(image.width, image.height):
        nothing = np.zeros(PAYLOAD_BITS, np.uint8)
        return ImageWatermarkReading(None, nothing, 0.0, image.size, np.zeros(CODED_BITS, np.uint8))
    yuv, height, width = _chroma(image)
    blocks, _, _ = _blocks(_haar_low(yuv[:height, :width, 1].astype(np.float64) + U_OFFSET))
    gram = np.einsum("nji,njk->nik", blocks, blocks)
    largest = np.sqrt(np.maximum(np.linalg.eigvalsh(gram)[:, -1], 0.0))
    # +1 at the lattice point for bit 1 (0.75 of a step), -1 at the point for bit 0 (0.25)
    votes = -np.sin(2 * np.pi * (largest / SCALE))
    index = _carriers(len(votes))
    sums = np.bincount(index, weights=votes, minlength=CODED_BITS).astype(np.float64)
    counts = np.bincount(index, minlength=CODED_BITS)
    watermark_id, bits, _ = decode_codeword(sums)
    soft = sums / np.maximum(counts, 1)
    return ImageWatermarkReading(
        watermark_id, bits, float(np.mean(np.abs(soft))), image.size, (soft > 0).astype(np.uint8)
    )
