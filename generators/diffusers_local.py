"""Local Stable Diffusion generation with concept-erased variants served from one base model.

``DiffusersLocalGenerator`` loads a diffusers pipeline from a local directory only
(``local_files_only=True``; no hub), and every variant patch from the variants directory whose
base fingerprint matches that model (others are refused at start-up). A variant is selected per
request — ``request.variant`` or the model name ``<model>:<variant>`` — without reloading: the
generator keeps the original tensors of every key any variant touches and, under one lock,
copies the requested variant's tensors (or the originals) into the live modules before running
the pipeline. Generation holds the same lock, so concurrent requests for different variants never
mix; they are serialised, as they would be on one GPU anyway. Switching costs one in-place copy of
the edited projections (SD 1.5: 32 matrices, ~20 MB; see ``bench/erasure_uce.py``).

Seeds are deterministic: image ``i`` of a request with ``seed`` uses ``torch.Generator`` seeded
``seed + i`` on the CPU (the initial latents are drawn on the CPU and moved to the device).

``request.safe_guidance`` adds Safe Latent Diffusion (``erasure.sld``) to that request: the safety
concept is encoded once per concept text (cached) and a forward hook on the UNet applies the
preset's guidance, under the same lock. It combines with a variant. The artifacts' ``model`` is
``<model>:<variant>`` when a variant made them, so the C2PA manifest names the variant.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image

from erasure.errors import ErasureError
from erasure.sld import DEFAULT_SAFETY_CONCEPT, SLD_PRESETS, SafeLatentGuidance
from erasure.variants import VariantMetadata, VariantPatch, VariantRegistry, check_base
from generators.base import (
    Artifact,
    CpuRunner,
    GenerationError,
    GenerationRequest,
    Modality,
    SafeGuidance,
    UnsupportedRequest,
    png_artifacts,
)

__all__ = ["DiffusersLocalGenerator"]

MAX_IMAGES = 4
DEFAULT_SEED = 0
_CONCEPT_CACHE = 16  # safety-concept embeddings kept (one per distinct concept text)


class DiffusersLocalGenerator:
    """A local SD/SDXL pipeline plus its erased variants (``<model>:<variant>`` in ``models``)."""

    name: ClassVar[str] = "diffusers_local"
    modalities: ClassVar[frozenset[Modality]] = frozenset({Modality.IMAGE})

    def __init__(
        self,
        model_path: Path,
        *,
        model_name: str = "local-sd",
        variants_dir: Path | None = None,
        variants: Mapping[str, VariantPatch] | None = None,
        steps: int = 25,
        guidance_scale: float = 7.5,
        default_size: tuple[int, int] = (512, 512),
        device: str = "cpu",
        run_cpu: CpuRunner | None = None,
    ) -> None:
        self._run_cpu: CpuRunner = run_cpu if run_cpu is not None else asyncio.to_thread
        self._model_name = model_name
        self._steps = steps
        self._guidance = guidance_scale
        self._default_size = default_size
        self._device = device
        self._pipe = _load_pipeline(model_path, device)
        self._unet: torch.nn.Module = self._pipe.unet
        patches = dict(variants or {})
        if variants_dir is not None:
            registry = VariantRegistry(variants_dir)
            for name in registry.names():
                patches.setdefault(name, registry.load(name))
        state = self._unet.state_dict()
        self._variants: dict[str, dict[str, torch.Tensor]] = {}
        self._metadata: dict[str, VariantMetadata] = {}
        for name, patch in sorted(patches.items()):
            try:
                check_base(self._unet, patch)
            except ErasureError as exc:
                raise GenerationError(f"cannot serve variant {name!r}: {exc}") from exc
            self._variants[name] = {
                k: v.to(device=state[k].device, dtype=state[k].dtype)
                for k, v in patch.weights.items()
            }
            self._metadata[name] = patch.metadata
        touched = {k for weights in self._variants.values() for k in weights}
        self._originals = {k: state[k].detach().clone() for k in sorted(touched)}
        self._live = {k: state[k] for k in self._originals}
        self._active: str | None = None
        self._lock = threading.Lock()
        self._concepts: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}

    @property
    def models(self) -> tuple[str, ...]:
        return (self._model_name, *(f"{self._model_name}:{v}" for v in self._variants))

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(self._variants)

    def variant_info(self, name: str) -> Mapping[str, object]:
        """The variant's patch metadata (no fingerprint beyond its first 16 hex digits)."""
        meta = asdict(self._metadata[name])
        meta["base_fingerprint"] = meta["base_fingerprint"][:16]
        meta["tensors"] = len(self._variants[name])
        return meta

    async def generate(self, request: GenerationRequest) -> list[Artifact]:
        variant, (width, height) = self._validate(request)
        images = await self._run_cpu(self.render, request, variant, (width, height))
        model = self._model_name if variant is None else f"{self._model_name}:{variant}"
        return png_artifacts(images, generator=self.name, model=model, size=(width, height))

    def render(
        self, request: GenerationRequest, variant: str | None, size: tuple[int, int]
    ) -> list[bytes]:
        """Generate ``request.n`` PNGs with ``variant`` active. CPU/GPU-bound; call in the pool."""
        seed = DEFAULT_SEED if request.seed is None else request.seed
        generators = [torch.Generator("cpu").manual_seed(seed + i) for i in range(request.n)]
        width, height = size
        with self._lock:
            self._activate(variant)
            try:
                guidance = self._guidance_for(request.safe_guidance)
                with guidance:
                    output = self._pipe(
                        prompt=[request.prompt] * request.n,
                        negative_prompt=(
                            None
                            if request.negative_prompt is None
                            else [request.negative_prompt] * request.n
                        ),
                        num_inference_steps=self._steps,
                        guidance_scale=self._guidance,
                        width=width,
                        height=height,
                        generator=generators,
                        output_type="pil",
                    )
            except (RuntimeError, ValueError, ErasureError) as exc:
                raise GenerationError(f"local diffusion failed: {exc}") from exc
        return [_png(image) for image in output.images]

    def _guidance_for(
        self, safe: SafeGuidance | None
    ) -> SafeLatentGuidance | contextlib.nullcontext[None]:
        """SLD for this request (call under the lock), or nothing."""
        if safe is None:
            return contextlib.nullcontext()
        concept = safe.concept or DEFAULT_SAFETY_CONCEPT
        embeds = self._concepts.get(concept)
        if embeds is None:
            with torch.no_grad():
                encoded = self._pipe.encode_prompt(
                    prompt=concept,
                    device=self._pipe.device,
                    num_images_per_prompt=1,
                    do_classifier_free_guidance=False,
                )
            pooled = encoded[2] if len(encoded) == 4 else None  # SDXL: (embeds, _, pooled, _)
            embeds = (encoded[0], pooled)
            if len(self._concepts) >= _CONCEPT_CACHE:
                self._concepts.pop(next(iter(self._concepts)))
            self._concepts[concept] = embeds
        return SafeLatentGuidance(self._unet, SLD_PRESETS[safe.preset], embeds[0], embeds[1])

    @contextlib.contextmanager
    def session(self, request: GenerationRequest) -> Iterator[tuple[Any, tuple[int, int]]]:
        """The loaded pipeline with ``request``'s variant active and its safe guidance applied,
        held under the generation lock, and the validated output size: for pipelines built from
        the same components (img2img and inpainting in ``generators.diffusers_edit``)."""
        variant, size = self._validate(request)
        with self._lock:
            self._activate(variant)
            with self._guidance_for(request.safe_guidance):
                yield self._pipe, size

    @torch.no_grad()
    def _activate(self, variant: str | None) -> None:
        if variant == self._active:
            return
        weights = self._originals if variant is None else self._variants[variant]
        for key, live in self._live.items():
            live.copy_(weights.get(key, self._originals[key]))
        self._active = variant

    async def aclose(self) -> None:
        """Weights stay in memory until the process ends; nothing to close."""

    def _validate(self, request: GenerationRequest) -> tuple[str | None, tuple[int, int]]:
        if request.modality is not Modality.IMAGE:
            raise UnsupportedRequest(f"{self.name!r} makes images", param="model")
        base, _, from_model = request.model.partition(":")
        if base != self._model_name:
            raise UnsupportedRequest(
                f"unknown model {request.model!r}; expected one of {', '.join(self.models)}",
                param="model",
            )
        variant = request.variant or from_model or None
        if variant is not None and variant not in self._variants:
            known = ", ".join(self._variants) or "(none)"
            raise UnsupportedRequest(
                f"unknown variant {variant!r} of {self._model_name!r}; loaded: {known}",
                param="model",
            )
        if request.safe_guidance is not None:
            if request.safe_guidance.preset not in SLD_PRESETS:
                raise UnsupportedRequest(
                    f"unknown safe guidance preset {request.safe_guidance.preset!r}; "
                    f"expected one of {', '.join(SLD_PRESETS)}"
                )
            if self._guidance <= 1:
                raise UnsupportedRequest(
                    "safe latent guidance needs classifier-free guidance "
                    f"(diffusers.guidance_scale > 1, it is {self._guidance:g})"
                )
        if not 1 <= request.n <= MAX_IMAGES:
            raise UnsupportedRequest(f"n must be between 1 and {MAX_IMAGES}", param="n")
        width, height = request.size if request.size is not None else self._default_size
        if width % 8 or height % 8 or not (64 <= width <= 2048 and 64 <= height <= 2048):
            raise UnsupportedRequest(
                f"size {width}x{height}: sides must be multiples of 8 in [64, 2048]",
                param="size",
            )
        return variant, (width, height)


def _load_pipeline(path: Path, device: str) -> Any:
    if not path.is_dir():
        raise GenerationError(f"local diffusion model directory {path} does not exist")
    try:
        from diffusers import DiffusionPipeline
    except ImportError as exc:
        raise GenerationError("diffusers is not installed (pip install 'genguard[ml]')") from exc
    try:
        pipe = DiffusionPipeline.from_pretrained(  # type: ignore[no-untyped-call]
            str(path), local_files_only=True, safety_checker=None, requires_safety_checker=False
        )
    except (OSError, ValueError) as exc:
        raise GenerationError(f"cannot load the diffusion pipeline at {path}: {exc}") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
