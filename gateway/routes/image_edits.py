"""``POST /v1/images/edits`` and ``POST /v1/images/variations`` (OpenAI Images API, multipart).

Edits take ``image`` (one file, or several as ``image[]``), an optional ``mask``, ``prompt``,
``n``, ``size``, ``response_format`` and ``model``; variations take one ``image`` and no prompt.
Unknown OpenAI fields (``quality``, ``background``, ``user`` …) are recorded and ignored, as on
the generations route. The uploads go through the pipeline's input stage before anything is
generated (docs/image-edits.md). Every refusal here is audited by the app's error handler.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response

from gateway.deps import Context, ServicesDep
from gateway.errors import ApiError
from gateway.routes.images import image_response
from gateway.uploads import MultipartForm, UploadedFile, read_multipart
from generators.base import GenerationRequest, InputImage, Modality, Operation

__all__ = ["router"]

router = APIRouter()

_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")
_MAX_N = 10
_KNOWN = {"prompt", "n", "size", "response_format", "model", "seed", "negative_prompt"}


@router.post("/v1/images/edits", name="images.edits")
async def edit_image(request: Request, ctx: Context, services: ServicesDep) -> Response:
    return await _run(request, ctx, services, Operation.EDIT)


@router.post("/v1/images/variations", name="images.variations")
async def create_variation(request: Request, ctx: Context, services: ServicesDep) -> Response:
    return await _run(request, ctx, services, Operation.VARIATION)


async def _run(
    request: Request, ctx: Context, services: ServicesDep, operation: Operation
) -> Response:
    limits = services.settings.limits
    form = await read_multipart(
        request, max_bytes=limits.max_upload_bytes, max_file_bytes=limits.max_input_image_bytes
    )
    fields = form.fields
    if fields.get("stream", "false").lower() not in ("false", "0", ""):
        raise ApiError(
            400, "streaming image edits are not supported", "unsupported_value", param="stream"
        )
    prompt = ""
    if operation is Operation.EDIT:
        prompt = fields.get("prompt", "")
        if not prompt.strip():
            raise ApiError(
                400,
                "'prompt' is required (and not blank)",
                "missing_required_parameter",
                param="prompt",
            )
    elif "prompt" in fields:
        raise ApiError(400, "variations take no prompt", "invalid_value", param="prompt")
    _check_image_count(form, operation, limits.max_input_images)
    n = _integer(fields, "n", 1, _MAX_N) or 1
    seed = _integer(fields, "seed", 0, 2**63 - 1)
    size = _size(fields.get("size"))
    response_format = fields.get("response_format") or "b64_json"
    if response_format not in ("b64_json", "url"):
        raise ApiError(
            400,
            f"'response_format' must be 'b64_json' or 'url', got {response_format!r}",
            "invalid_value",
            param="response_format",
        )
    generator, model = services.generators.resolve(Modality.IMAGE, fields.get("model") or None)
    generation = GenerationRequest(
        modality=Modality.IMAGE,
        prompt=prompt,
        model=model,
        n=n,
        size=size,
        negative_prompt=fields.get("negative_prompt") or None,
        seed=seed,
        operation=operation,
        images=tuple(_unchecked(upload) for upload in form.images),
        mask=_unchecked(form.mask) if form.mask is not None else None,
    )
    params: dict[str, object] = {
        "operation": operation.value,
        "model": model,
        "generator": generator.name,
        "n": n,
        "size": f"{size[0]}x{size[1]}" if size else "auto",
        "response_format": response_format,
        "seed": seed,
        "images": len(form.images),
        "mask": form.mask is not None,
        **{k: v for k, v in fields.items() if k not in _KNOWN},
    }
    result = await services.pipeline.generate(
        ctx,
        generation,
        params,
        delivery="url" if response_format == "url" else "b64_json",
    )
    return image_response(request, services, result)


def _check_image_count(form: MultipartForm, operation: Operation, limit: int) -> None:
    count = len(form.images)
    if count == 0:
        raise ApiError(
            400,
            "'image' is required (a PNG, JPEG or WebP file)",
            "missing_required_parameter",
            param="image",
        )
    if operation is Operation.VARIATION:
        if count > 1:
            raise ApiError(
                400, f"variations take one image, got {count}", "invalid_value", param="image"
            )
        if form.mask is not None:
            raise ApiError(400, "variations take no mask", "invalid_value", param="mask")
    elif count > limit:
        raise ApiError(
            400,
            f"{count} images uploaded; at most {limit} are accepted per request",
            "too_many_images",
            param="image",
        )


def _unchecked(upload: UploadedFile) -> InputImage:
    """The upload before the input stage has looked at it (type and size unknown yet)."""
    return InputImage(data=upload.data, mime_type="", width=0, height=0, name=upload.param)


def _integer(fields: dict[str, str], name: str, low: int, high: int) -> int | None:
    """An integer form field within [low, high], or None when absent."""
    raw = fields.get(name)
    if raw is None or raw == "":
        return None
    if not re.fullmatch(r"-?\d{1,19}", raw.strip()):
        message = f"'{name}' must be an integer, got {raw[:20]!r}"
        raise ApiError(400, message, "invalid_value", param=name)
    value = int(raw)
    if not low <= value <= high:
        message = f"'{name}' must be between {low} and {high}, got {value}"
        raise ApiError(400, message, "invalid_value", param=name)
    return value


def _size(raw: str | None) -> tuple[int, int] | None:
    if raw is None or raw in ("", "auto"):
        return None  # the first image's size
    match = _SIZE.match(raw)
    if match is None:
        raise ApiError(
            400,
            f"'size' must look like '1024x1024' or be 'auto', got {raw[:20]!r}",
            "invalid_value",
            param="size",
        )
    return int(match.group(1)), int(match.group(2))
