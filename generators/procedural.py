"""An offline DEMO image generator: abstract procedural art, no model, no network.

``ProceduralImageGenerator`` exists so that GenGuard runs end to end on a machine with nothing
installed (``genguard serve``, tests, demos). It does not understand the prompt: the prompt only
seeds the random composition. The pictures are deliberately plausible images (gradients, soft
shapes, waves, texture) rather than flat colour, so that image classifiers, perceptual hashes and
watermarks downstream have real content to work on.

Output is a pure function of (prompt, seed, size, index in batch): the same request gives the same
bytes on every machine with the same numpy / Pillow versions.

Edits and variations are real image operations on the uploads, equally deterministic (a pure
function of the input pixels, prompt, seed, size and index): an edit fills the editable area
(the mask's transparent pixels; without a mask, the first image's own transparency; without
either, the whole image at half strength) with the procedural picture of the prompt, mixed with
any further images; every pixel outside it is kept exactly. A variation turns the image's
colours by a seeded hue angle and lays the procedural texture over it.
"""

from __future__ import annotations

import asyncio
import colorsys
import hashlib
import io
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from generators.base import (
    Artifact,
    CpuRunner,
    GenerationRequest,
    Modality,
    Operation,
    UnsupportedRequest,
    png_artifacts,
    require_model,
)

__all__ = ["ProceduralImageGenerator", "render_procedural_edit", "render_procedural_png"]

MIN_SIDE = 64
MAX_SIDE = 2048
MAX_IMAGES = 10
DEFAULT_SIZE = (1024, 1024)

Float2D = NDArray[np.float32]
Float3D = NDArray[np.float32]


class ProceduralImageGenerator:
    """DEMO generator: deterministic abstract images rendered with numpy, encoded as PNG.

    Accepts any ``WxH`` with both sides in [64, 2048] (default 1024x1024) and ``n`` in [1, 10].
    ``negative_prompt`` and ``variant`` are ignored. Rendering runs through ``run_cpu`` (the
    gateway's worker pool; ``asyncio.to_thread`` by default), one call per image.
    """

    name: ClassVar[str] = "procedural"
    modalities: ClassVar[frozenset[Modality]] = frozenset({Modality.IMAGE})
    operations: ClassVar[frozenset[Operation]] = frozenset(Operation)
    _MODELS: ClassVar[tuple[str, ...]] = ("genguard-procedural-demo",)

    def __init__(self, *, run_cpu: CpuRunner | None = None) -> None:
        self._run_cpu: CpuRunner = run_cpu if run_cpu is not None else asyncio.to_thread

    @property
    def models(self) -> tuple[str, ...]:
        return self._MODELS

    async def generate(self, request: GenerationRequest) -> list[Artifact]:
        width, height = self._validate(request)
        if request.operation is not Operation.GENERATE:
            if not request.images:
                raise UnsupportedRequest(f"an image {request.operation.value} needs an image")
            renders = [
                self._run_cpu(render_procedural_edit, request, (width, height), i)
                for i in range(request.n)
            ]
        else:
            renders = [
                self._run_cpu(
                    render_procedural_png, request.prompt, request.seed, (width, height), i
                )
                for i in range(request.n)
            ]
        images = await asyncio.gather(*renders)
        return png_artifacts(images, generator=self.name, model=request.model, size=(width, height))

    async def aclose(self) -> None:
        """Nothing to release: the worker pool belongs to the caller."""

    def _validate(self, request: GenerationRequest) -> tuple[int, int]:
        require_model(self.name, request, Modality.IMAGE, self._MODELS)
        if not 1 <= request.n <= MAX_IMAGES:
            raise UnsupportedRequest(f"n must be between 1 and {MAX_IMAGES}", param="n")
        width, height = request.size if request.size is not None else DEFAULT_SIZE
        if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
            raise UnsupportedRequest(
                f"size {width}x{height} is not supported: width and height must each be "
                f"between {MIN_SIDE} and {MAX_SIDE} pixels",
                param="size",
            )
        return width, height


def render_procedural_png(
    prompt: str, seed: int | None, size: tuple[int, int], index: int = 0
) -> bytes:
    """Render one demo image and encode it as PNG. CPU-bound; pure function of its arguments."""
    width, height = size
    rng = np.random.default_rng(_seed_material(prompt, seed, size, index))
    pixels = _compose(rng, width, height)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def render_procedural_edit(
    request: GenerationRequest, size: tuple[int, int], index: int = 0
) -> bytes:
    """Edit or vary ``request.images`` (see the module docstring) and encode the result as PNG.

    CPU-bound; a pure function of the input pixels, prompt, seed, size and index."""
    width, height = size
    digests = "".join(hashlib.sha256(i.data).hexdigest() for i in request.images)
    mask_digest = hashlib.sha256(request.mask.data).hexdigest() if request.mask else ""
    key = f"{request.operation.value}\x00{digests}\x00{mask_digest}\x00{request.prompt}"
    rng = np.random.default_rng(_seed_material(key, request.seed, size, index))
    base = _decode_rgba(request.images[0].data, size)
    original = base[..., :3]
    picture = _compose(rng, width, height).astype(np.float32)
    if request.operation is Operation.VARIATION:
        turned = _turn_hue(original, float(rng.uniform(0.08, 0.92)))
        result = turned.astype(np.float32) * np.float32(0.8) + picture * np.float32(0.2)
        return _encode_png(np.clip(result + 0.5, 0, 255).astype(np.uint8))
    fill = picture
    others = [_decode_rgba(i.data, size)[..., :3].astype(np.float32) for i in request.images[1:]]
    if others:
        fill = (picture + np.mean(others, axis=0, dtype=np.float32)) / np.float32(2.0)
    if request.mask is not None:
        editable = 1.0 - _decode_rgba(request.mask.data, size)[..., 3].astype(np.float32) / 255.0
    elif request.images[0].has_alpha:
        editable = 1.0 - base[..., 3].astype(np.float32) / 255.0
    else:
        editable = np.full((height, width), 0.5, dtype=np.float32)
    weight = editable[..., None]
    blended = original.astype(np.float32) * (1 - weight) + fill * weight
    edited = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return _encode_png(np.where(weight > 0, edited, original))


def _decode_rgba(data: bytes, size: tuple[int, int]) -> NDArray[np.uint8]:
    with Image.open(io.BytesIO(data)) as image:
        rgba = image.convert("RGBA")
    if rgba.size != size:
        rgba = rgba.resize(size, Image.Resampling.BICUBIC)
    return np.asarray(rgba, dtype=np.uint8)


def _turn_hue(rgb: NDArray[np.uint8], turn: float) -> NDArray[np.uint8]:
    hsv = np.array(Image.fromarray(rgb, mode="RGB").convert("HSV"), dtype=np.uint16)
    hsv[..., 0] = (hsv[..., 0] + round(turn * 256)) % 256
    return np.asarray(Image.fromarray(hsv.astype(np.uint8), mode="HSV").convert("RGB"))


def _encode_png(pixels: NDArray[np.uint8]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _seed_material(prompt: str, seed: int | None, size: tuple[int, int], index: int) -> list[int]:
    key = f"genguard-procedural-v1\x00{prompt}\x00{seed}\x00{size[0]}x{size[1]}\x00{index}"
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, len(digest), 4)]


def _compose(rng: np.random.Generator, width: int, height: int) -> NDArray[np.uint8]:
    """Smooth layers at half resolution (they are soft anyway), texture at full resolution."""
    palette = _palette(rng)
    work_w, work_h = (width + 1) // 2, (height + 1) // 2
    # Normalised coordinates: the shorter side spans [0, 1], so shapes stay round.
    scale = 1.0 / min(work_w, work_h)
    xs = (np.arange(work_w, dtype=np.float32) + 0.5) * np.float32(scale)
    ys = (np.arange(work_h, dtype=np.float32) + 0.5) * np.float32(scale)
    x = xs[None, :]
    y = ys[:, None]
    extent = (float(xs[-1]), float(ys[-1]))

    canvas = _background(rng, palette, x, y, extent)
    _blend(canvas, _clouds(rng, work_w, work_h) * np.float32(rng.uniform(0.25, 0.5)), palette[2])
    _draw_waves(rng, canvas, palette, x, y, extent)
    _draw_orbs(rng, canvas, palette, xs, ys, extent)
    smooth = np.clip(canvas * 255.0 + 0.5, 0, 255).astype(np.uint8)
    upsampled = Image.fromarray(smooth, mode="RGB").resize(
        (width, height), Image.Resampling.BICUBIC
    )
    shade = _texture(rng, width, height)
    textured = np.asarray(upsampled, dtype=np.float32) * shade[..., None]
    pixels: NDArray[np.uint8] = np.clip(textured + 0.5, 0, 255).astype(np.uint8)
    return pixels


def _palette(rng: np.random.Generator) -> list[NDArray[np.float32]]:
    """Six colours around a random base hue (analogous, complementary or triadic)."""
    base = rng.random()
    offsets = [(0.0, 0.08, -0.08), (0.0, 0.5, 0.08), (0.0, 1 / 3, 2 / 3)][int(rng.integers(3))]
    colours = []
    for i in range(6):
        hue = (base + offsets[i % 3] + rng.normal(0, 0.02)) % 1.0
        saturation = rng.uniform(0.35, 0.85)
        value = rng.uniform(0.25, 0.55) if i == 0 else rng.uniform(0.55, 0.98)
        colours.append(np.array(colorsys.hsv_to_rgb(hue, saturation, value), dtype=np.float32))
    return colours


def _background(
    rng: np.random.Generator,
    palette: list[NDArray[np.float32]],
    x: Float2D,
    y: Float2D,
    extent: tuple[float, float],
) -> Float3D:
    angle = rng.uniform(0, 2 * np.pi)
    dx, dy = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    ramp = x * dx + y * dy
    low = min(0.0, extent[0] * float(dx)) + min(0.0, extent[1] * float(dy))
    span = abs(extent[0] * float(dx)) + abs(extent[1] * float(dy))
    t = ((ramp - np.float32(low)) / np.float32(max(span, 1e-6)))[..., None]
    canvas: Float3D = palette[0] * (1 - t) + palette[1] * t
    # A soft glow somewhere in the frame.
    gx, gy = rng.uniform(0, extent[0]), rng.uniform(0, extent[1])
    glow = np.exp(-((x - np.float32(gx)) ** 2 + (y - np.float32(gy)) ** 2) / np.float32(0.18))
    _blend(canvas, glow * np.float32(0.45), palette[3])
    return canvas


def _clouds(rng: np.random.Generator, width: int, height: int) -> Float2D:
    """Low-frequency value noise in [0, 1]: a coarse random grid upsampled bicubically."""
    cells = int(rng.integers(3, 7))
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    upsampled = Image.fromarray(grid, mode="F").resize((width, height), Image.Resampling.BICUBIC)
    field = np.asarray(upsampled, dtype=np.float32)
    low, high = float(field.min()), float(field.max())
    return (field - np.float32(low)) / np.float32(max(high - low, 1e-6))


def _draw_waves(
    rng: np.random.Generator,
    canvas: Float3D,
    palette: list[NDArray[np.float32]],
    x: Float2D,
    y: Float2D,
    extent: tuple[float, float],
) -> None:
    """Two to four layered, soft-edged wave bands rising from the bottom, like distant hills."""
    layers = int(rng.integers(2, 5))
    for layer in range(layers):
        base = extent[1] * (0.45 + 0.5 * (layer + rng.uniform(0, 0.6)) / layers)
        edge = np.full_like(x, np.float32(base))
        for _ in range(3):
            amplitude = np.float32(rng.uniform(0.01, 0.07))
            frequency = np.float32(rng.uniform(2.0, 12.0))
            phase = np.float32(rng.uniform(0, 2 * np.pi))
            edge = edge + amplitude * np.sin(frequency * x + phase)
        softness = np.float32(rng.uniform(0.004, 0.03))
        mask = np.clip((y - edge) / softness + np.float32(0.5), 0, 1)
        # Bands darken slightly with depth, so the layers read as a landscape.
        colour = palette[2 + (layer % 4)] * np.float32(0.55 + 0.45 * (layer + 1) / layers)
        _blend(canvas, mask * np.float32(rng.uniform(0.55, 0.9)), colour)


def _draw_orbs(
    rng: np.random.Generator,
    canvas: Float3D,
    palette: list[NDArray[np.float32]],
    xs: NDArray[np.float32],
    ys: NDArray[np.float32],
    extent: tuple[float, float],
) -> None:
    """Soft discs and rings, each computed only inside its bounding box."""
    for _ in range(int(rng.integers(4, 11))):
        radius = rng.uniform(0.04, 0.22)
        cx, cy = rng.uniform(0, extent[0]), rng.uniform(0, extent[1])
        softness = rng.uniform(0.05, 0.6)
        reach = radius * (1 + softness)
        cols = slice(*np.searchsorted(xs, (cx - reach, cx + reach)))
        rows = slice(*np.searchsorted(ys, (cy - reach, cy + reach)))
        if cols.start == cols.stop or rows.start == rows.stop:
            continue
        distance = np.sqrt(
            (xs[None, cols] - np.float32(cx)) ** 2 + (ys[rows, None] - np.float32(cy)) ** 2
        )
        inner = radius * (1 - softness)
        mask = np.clip((np.float32(reach) - distance) / np.float32(reach - inner), 0, 1)
        mask = mask * mask * (3 - 2 * mask)  # smoothstep
        if rng.random() < 0.3:  # a ring: cut out the middle
            hole = np.clip((distance - np.float32(radius * 0.6)) / np.float32(radius * 0.15), 0, 1)
            mask = mask * hole
        colour = palette[int(rng.integers(1, len(palette)))]
        _blend(canvas[rows, cols], mask * np.float32(rng.uniform(0.35, 0.85)), colour)


def _texture(rng: np.random.Generator, width: int, height: int) -> Float2D:
    """A brightness multiplier: fine stripes, film grain and a vignette, so nothing is flat."""
    scale = np.float32(1.0 / min(width, height))
    x = np.arange(width, dtype=np.float32)[None, :] * scale
    y = np.arange(height, dtype=np.float32)[:, None] * scale
    angle = rng.uniform(0, np.pi)
    frequency = np.float32(rng.uniform(80, 200))
    stripes = np.sin(frequency * (x * np.float32(np.cos(angle)) + y * np.float32(np.sin(angle))))
    shade = rng.standard_normal((height, width), dtype=np.float32)
    shade *= np.float32(0.035)
    shade += np.float32(1.0)
    shade += np.float32(0.015) * stripes
    cx, cy = np.float32(x[0, -1] / 2), np.float32(y[-1, 0] / 2)
    radius2 = ((x - cx) ** 2 + (y - cy) ** 2) / (cx * cx + cy * cy)
    shade *= np.float32(1.0) - np.float32(0.35) * radius2
    return shade


def _blend(target: Float3D, alpha: Float2D, colour: NDArray[np.float32]) -> None:
    """In place: ``target = target * (1 - alpha) + colour * alpha``."""
    delta = colour - target
    delta *= alpha[..., None]
    target += delta
