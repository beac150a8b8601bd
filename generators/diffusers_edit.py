"""Image edits and variations with the local diffusion model: img2img and inpainting.

``DiffusersEditGenerator`` wraps a ``DiffusersLocalGenerator`` and serves the same models and
variants. New images go to the wrapped generator; edits and variations run diffusers'
img2img and inpainting pipelines built once from the *same* components (``from_pipe``: the
UNet, VAE and text encoder are shared, not copied), under the wrapped generator's lock with the
request's concept-erased variant active and its safe guidance applied (``session``), so an edit
gets the same protections as a generation.

- **edit with a mask** (or an image with transparency): inpainting of the transparent area,
  then the pixels outside it are put back exactly (a soft mask blends), so only what the mask
  frees changes, as the OpenAI contract says;
- **edit without a mask**: img2img at ``strength`` (default 0.75);
- **variation**: img2img of the image with an empty prompt at ``variation_strength`` (0.6).

The local model edits one image at a time: a request with several images is refused (400)
rather than silently using the first. Seeds are deterministic as for generation
(image ``i`` uses ``seed + i``).
"""

from __future__ import annotations

import asyncio
import io
import threading
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from generators.base import (
    Artifact,
    CpuRunner,
    GenerationError,
    GenerationRequest,
    Modality,
    Operation,
    UnsupportedRequest,
    png_artifacts,
)
from generators.diffusers_local import DEFAULT_SEED, DiffusersLocalGenerator

__all__ = ["DiffusersEditGenerator"]


class DiffusersEditGenerator:
    """The local diffusion generator plus img2img / inpainting for edits and variations."""

    name: ClassVar[str] = DiffusersLocalGenerator.name
    modalities: ClassVar[frozenset[Modality]] = frozenset({Modality.IMAGE})
    operations: ClassVar[frozenset[Operation]] = frozenset(Operation)

    def __init__(
        self,
        local: DiffusersLocalGenerator,
        *,
        steps: int = 25,
        guidance_scale: float = 7.5,
        strength: float = 0.75,
        variation_strength: float = 0.6,
        run_cpu: CpuRunner | None = None,
    ) -> None:
        if not (0.0 < strength <= 1.0 and 0.0 < variation_strength <= 1.0):
            raise ValueError("strength and variation_strength must be in (0, 1]")
        self._local = local
        self._steps = steps
        self._guidance = guidance_scale
        self._strength = strength
        self._variation_strength = variation_strength
        self._run_cpu: CpuRunner = run_cpu if run_cpu is not None else asyncio.to_thread
        self._built: dict[str, Any] = {}
        self._build_lock = threading.Lock()

    @property
    def models(self) -> tuple[str, ...]:
        return self._local.models

    @property
    def variants(self) -> tuple[str, ...]:
        return self._local.variants

    def variant_info(self, name: str) -> Any:
        return self._local.variant_info(name)

    async def generate(self, request: GenerationRequest) -> list[Artifact]:
        if request.operation is Operation.GENERATE:
            return await self._local.generate(request)
        if len(request.images) != 1:
            raise UnsupportedRequest(
                f"the local diffusion model edits one image at a time, got {len(request.images)}",
                param="image",
            )
        pngs, size = await self._run_cpu(self.render, request)
        base = request.model.partition(":")[0]
        model = request.model if request.variant is None else f"{base}:{request.variant}"
        return png_artifacts(pngs, generator=self.name, model=model, size=size)

    def render(self, request: GenerationRequest) -> tuple[list[bytes], tuple[int, int]]:
        """Run the edit or variation; CPU/GPU-bound, call in the pool."""
        seed = DEFAULT_SEED if request.seed is None else request.seed
        generators = [torch.Generator("cpu").manual_seed(seed + i) for i in range(request.n)]
        with self._local.session(request) as (pipe, size):
            source = _decode(request.images[0].data, "RGBA").resize(size, Image.Resampling.BICUBIC)
            init = source.convert("RGB")
            editable = _editable_area(request, source, size)
            common: dict[str, Any] = {
                "num_inference_steps": self._steps,
                "guidance_scale": self._guidance,
                "generator": generators,
                "output_type": "pil",
            }
            negative = request.negative_prompt
            try:
                if request.operation is Operation.VARIATION:
                    output = self._pipeline("img2img", pipe)(
                        prompt=[""] * request.n,
                        negative_prompt=None if negative is None else [negative] * request.n,
                        image=init,
                        strength=self._variation_strength,
                        **common,
                    )
                elif editable is not None:
                    output = self._pipeline("inpaint", pipe)(
                        prompt=[request.prompt] * request.n,
                        negative_prompt=None if negative is None else [negative] * request.n,
                        image=init,
                        mask_image=editable,
                        width=size[0],
                        height=size[1],
                        **common,
                    )
                else:
                    output = self._pipeline("img2img", pipe)(
                        prompt=[request.prompt] * request.n,
                        negative_prompt=None if negative is None else [negative] * request.n,
                        image=init,
                        strength=self._strength,
                        **common,
                    )
            except (RuntimeError, ValueError) as exc:
                raise GenerationError(f"local diffusion edit failed: {exc}") from exc
        images = [image.convert("RGB").resize(size) for image in output.images]
        if editable is not None:
            images = [_keep_outside(init, image, editable) for image in images]
        return [_png(image) for image in images], size

    def _pipeline(self, kind: str, pipe: Any) -> Any:
        """img2img / inpainting over ``pipe``'s components, built once (shared modules)."""
        built = self._built.get(kind)
        if built is not None:
            return built
        with self._build_lock:
            if kind not in self._built:
                from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

                factory = (
                    AutoPipelineForImage2Image if kind == "img2img" else AutoPipelineForInpainting
                )
                made = factory.from_pipe(pipe)
                made.set_progress_bar_config(disable=True)
                self._built[kind] = made
            return self._built[kind]

    async def aclose(self) -> None:
        await self._local.aclose()


def _decode(data: bytes, mode: str) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert(mode)


def _editable_area(
    request: GenerationRequest, source: Image.Image, size: tuple[int, int]
) -> Image.Image | None:
    """Diffusers' mask (white = repaint) from the OpenAI one (transparent = edit), or None."""
    if request.operation is not Operation.EDIT:
        return None
    if request.mask is not None:
        alpha = _decode(request.mask.data, "RGBA").resize(size).getchannel("A")
    elif request.images[0].has_alpha:
        alpha = source.getchannel("A")
    else:
        return None
    return Image.eval(alpha, lambda value: 255 - value)


def _keep_outside(original: Image.Image, edited: Image.Image, editable: Image.Image) -> Image.Image:
    weight = np.asarray(editable, dtype=np.float32)[..., None] / 255.0
    before = np.asarray(original, dtype=np.float32)
    after = np.asarray(edited, dtype=np.float32)
    mixed = np.clip(before * (1 - weight) + after * weight + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(mixed, "RGB")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
