"""The input stage of edits and variations: validate every upload, classify it, find its parent.

Runs before anything is generated (the pipeline orders it; see ``gateway.pipeline``):

1. **validate** each image and the mask (``gateway.uploads.inspect_image``: type from the bytes,
   pixels from the header, then a full decode), the mask against the first image (same size,
   an alpha channel); the output size defaults to the first image's;
2. **classify** the uploads and the mask with the policy's ``input.classifiers`` (the image
   classifiers of the output stage: NudeNet, CLIP concepts, PDQ hash banks). NudeNet runs once
   per image: its detections give both its category scores and the per-label evidence that
   ``input.combined`` conditions use ("the upload shows a face");
3. **lineage**: a GenGuard watermark found in an upload is resolved in the manifest repository
   and the new decision is linked to the decision that produced the upload.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from PIL import Image

from classifiers.base import Scores
from classifiers.image.nudenet import NudeNetClassifier
from gateway.errors import ApiError
from gateway.recording import StageLog
from gateway.uploads import inspect_image
from gateway.workers import WorkerPool
from generators.base import GenerationRequest, InputImage, Operation
from policies.combined import StageEvidence
from policies.schema import InputSection
from provenance.marking import detect_watermark
from provenance.stamp import ContentCredentials

__all__ = ["CheckedInputs", "ParentLink", "find_parents", "input_runs", "validate_inputs"]

INPUT_STAGE = "input"
ClassifierRun = tuple[str, Callable[[Sequence[Image.Image]], list[Scores]]]


@dataclass(frozen=True, slots=True)
class CheckedInputs:
    """The request with validated uploads (sizes known, output size defaulted) and the decoded
    pixels of every upload, the mask last."""

    request: GenerationRequest
    pixels: tuple[Image.Image, ...]


@dataclass(frozen=True, slots=True)
class ParentLink:
    """An upload that GenGuard produced earlier: where its watermark leads."""

    input: str
    watermark_id: str
    decision_id: str
    same_tenant: bool

    def to_json(self) -> dict[str, object]:
        return {
            "input": self.input,
            "watermark_id": self.watermark_id,
            "decision_id": self.decision_id,
            "same_tenant": self.same_tenant,
        }


async def validate_inputs(
    pool: WorkerPool, request: GenerationRequest, log: StageLog, max_pixels: int
) -> CheckedInputs:
    """Inspect every upload in the pool; ``ApiError`` 4xx naming the field otherwise."""
    started = time.perf_counter()
    uploads = [*request.images, *([request.mask] if request.mask is not None else [])]
    try:
        if not request.images:
            raise ApiError(400, "'image' is required", "missing_required_parameter", param="image")
        if request.operation is Operation.VARIATION and request.mask is not None:
            raise ApiError(400, "variations take no mask", "invalid_value", param="mask")
        inspected = await asyncio.gather(
            *(pool.cpu(inspect_image, u.data, u.name, max_pixels) for u in uploads)
        )
        images = tuple(value for value, _ in inspected[: len(request.images)])
        mask = inspected[-1][0] if request.mask is not None else None
        if mask is not None:
            _check_mask(mask, images[0])
    except ApiError as exc:
        log.add(
            INPUT_STAGE,
            "validation",
            latency_ms=_ms(started),
            verdict="error",
            detail={"code": exc.code, "param": exc.param, "message": exc.message},
        )
        raise
    size = request.size or (images[0].width, images[0].height)
    log.add(
        INPUT_STAGE,
        "validation",
        latency_ms=_ms(started),
        verdict="ok",
        detail={
            "uploads": [
                {
                    "name": u.name,
                    "mime_type": u.mime_type,
                    "size": f"{u.width}x{u.height}",
                    "bytes": len(u.data),
                }
                for u in (*images, *([mask] if mask is not None else []))
            ]
        },
    )
    checked = replace(request, images=images, mask=mask, size=size)
    return CheckedInputs(checked, tuple(pixels for _, pixels in inspected))


def _check_mask(mask: InputImage, image: InputImage) -> None:
    if (mask.width, mask.height) != (image.width, image.height):
        raise ApiError(
            400,
            f"the mask is {mask.width}x{mask.height} but image[0] is "
            f"{image.width}x{image.height}; they must be the same size",
            "invalid_value",
            param="mask",
        )
    if not mask.has_alpha:
        raise ApiError(
            400,
            "the mask has no alpha channel: its fully transparent pixels mark where to edit "
            "(send a PNG or WebP with transparency)",
            "invalid_value",
            param="mask",
        )


def input_runs(
    section: InputSection,
    image_classifier: Callable[[str], object],
    labels: dict[str, float],
) -> list[ClassifierRun]:
    """The input stage's classifier runs. NudeNet's run fills ``labels`` (best detection score
    per label, every label) from the same detections its category scores come from."""
    runs: list[ClassifierRun] = []
    for name in section.classifiers:
        backend = image_classifier(name)
        if isinstance(backend, NudeNetClassifier):
            runs.append((name, _nudenet_run(backend, labels)))
        else:
            runs.append((name, backend.classify))  # type: ignore[attr-defined]
    return runs


def _nudenet_run(
    model: NudeNetClassifier, labels: dict[str, float]
) -> Callable[[Sequence[Image.Image]], list[Scores]]:
    """NudeNet as configured by the input section (its scores exactly as at the output stage),
    recording the best score of every detected label for ``combined`` rules."""

    def run(images: Sequence[Image.Image]) -> list[Scores]:
        results = model.classify_with_detections(images)
        for _, detections in results:
            for detection in detections:
                labels[detection.label] = max(labels.get(detection.label, 0.0), detection.score)
        return [scores for scores, _ in results]

    return run


def evidence_of(scores: Sequence[Scores], labels: dict[str, float]) -> StageEvidence:
    return StageEvidence(scores=tuple(scores), labels=dict(labels))


async def find_parents(
    pool: WorkerPool,
    credentials: ContentCredentials | None,
    tenant: str,
    images: Sequence[InputImage],
    log: StageLog,
) -> tuple[ParentLink, ...]:
    """Resolve the GenGuard watermark of each upload to the decision that produced it.

    Never blocks the request: a failure is logged in the stage record and lineage is skipped.
    """
    repository = credentials.repository if credentials is not None else None
    if credentials is None or repository is None:
        log.add(INPUT_STAGE, "lineage", latency_ms=0.0, verdict="skipped")
        return ()
    started = time.perf_counter()
    links: list[ParentLink] = []
    try:
        sizes = await repository.image_sizes()
        found = await asyncio.gather(
            *(
                pool.cpu(
                    detect_watermark,
                    image.data,
                    image.mime_type,
                    audio_key=credentials.audio_key,
                    image_sizes=sizes,
                )
                for image in images
            )
        )
        for image, watermark in zip(images, found, strict=True):
            if watermark.watermark_id is None:
                continue
            registered = await repository.lookup(watermark.watermark_id)
            if registered is None:
                continue
            output, _ = registered
            links.append(
                ParentLink(
                    image.name, output.watermark_id, output.decision_id, output.tenant == tenant
                )
            )
    except Exception as exc:  # lineage is evidence, never a reason to fail the request
        log.add_error(INPUT_STAGE, "lineage", exc, started)
        return ()
    log.add(
        INPUT_STAGE,
        "lineage",
        latency_ms=_ms(started),
        verdict="ok",
        detail={"parents": [link.to_json() for link in links]},
    )
    return tuple(links)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
