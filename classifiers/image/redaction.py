"""Obscuring regions of an image: what the ``blur`` action does to a generated image.

The regions are the boxes that image classifiers report as evidence (``Evidence.box``). Each box
is grown by ``padding`` (a fraction of its size on each side), clipped to the image, then either
pixelated (shrunk so its longer side has ``blocks`` cells, enlarged with nearest-neighbour) or
Gaussian-blurred (radius scaled with the image: ``radius`` at 1024 px on the longer side).
Overlapping boxes are obscured one after another; the result is a new image, the input is left
as it was. CPU-bound: called from the worker pool.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageFilter

__all__ = ["Redaction", "encode_image", "redact_regions"]

Box = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Redaction:
    """How to obscure: ``pixelate`` (``blocks`` cells) or ``gaussian`` (``radius`` at 1024 px)."""

    method: Literal["pixelate", "gaussian"] = "pixelate"
    blocks: int = 8
    radius: float = 40.0
    padding: float = 0.1

    def __post_init__(self) -> None:
        if self.method not in ("pixelate", "gaussian"):
            raise ValueError(f"redaction method must be pixelate or gaussian, got {self.method!r}")
        if self.blocks < 1 or self.radius <= 0 or not 0.0 <= self.padding <= 1.0:
            raise ValueError("redaction: blocks >= 1, radius > 0 and padding in [0, 1] required")


def padded(box: Box, padding: float, size: tuple[int, int]) -> Box | None:
    """``box`` (x, y, w, h) grown by ``padding`` and clipped to ``size``; None when empty."""
    x, y, width, height = box
    dx, dy = round(width * padding), round(height * padding)
    left, top = max(0, x - dx), max(0, y - dy)
    right, bottom = min(size[0], x + width + dx), min(size[1], y + height + dy)
    if right <= left or bottom <= top:
        return None
    return left, top, right - left, bottom - top


def redact_regions(image: Image.Image, boxes: Sequence[Box], redaction: Redaction) -> Image.Image:
    """A copy of ``image`` with every box obscured as ``redaction`` says."""
    out = image.copy()
    for box in boxes:
        region = padded(box, redaction.padding, out.size)
        if region is None:
            continue
        left, top, width, height = region
        crop = out.crop((left, top, left + width, top + height))
        if redaction.method == "pixelate":
            scale = redaction.blocks / max(width, height)
            small = crop.resize(
                (max(1, round(width * scale)), max(1, round(height * scale))),
                Image.Resampling.BOX,
            )
            obscured = small.resize((width, height), Image.Resampling.NEAREST)
        else:
            radius = redaction.radius * max(out.size) / 1024
            obscured = crop.filter(ImageFilter.GaussianBlur(radius))
        out.paste(obscured, (left, top))
    return out


def encode_image(image: Image.Image, mime_type: str) -> bytes:
    """``image`` encoded as ``mime_type`` (JPEG at quality 95, WebP lossless, else PNG)."""
    buffer = io.BytesIO()
    if mime_type == "image/jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=95)
    elif mime_type == "image/webp":
        image.save(buffer, "WEBP", lossless=True)
    else:
        image.save(buffer, "PNG", compress_level=1)  # fast; the signer re-writes it anyway
    return buffer.getvalue()
