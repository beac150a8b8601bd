"""``POST /v1/images/generations`` (OpenAI Images API) and the images response of every route.

``response_format=url`` answers with signed, expiring links to ``GET /v1/files/…``
(``gateway.storage``); ``b64_json`` (the default) inlines the signed bytes.
"""

from __future__ import annotations

import base64
import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from gateway.deps import Context, Services, ServicesDep
from gateway.errors import ApiError
from gateway.pipeline import GenerationResult
from gateway.routes.responses import decision_headers, mark_audited, refused
from gateway.schemas import ImageGenerationBody, parse_size
from generators.base import GenerationRequest, Modality

__all__ = ["image_response", "router"]

router = APIRouter()


@router.post("/v1/images/generations", name="images.generations")
async def create_image(
    request: Request, body: ImageGenerationBody, ctx: Context, services: ServicesDep
) -> Response:
    generator, model = services.generators.resolve(Modality.IMAGE, body.model)
    generation = GenerationRequest(
        modality=Modality.IMAGE,
        prompt=body.prompt,
        model=model,
        n=body.n,
        size=parse_size(body.size),
        negative_prompt=body.negative_prompt,
        seed=body.seed,
    )
    response_format = body.response_format or "b64_json"
    params: dict[str, object] = {
        "model": model,
        "generator": generator.name,
        "n": body.n,
        "size": f"{generation.size[0]}x{generation.size[1]}" if generation.size else None,
        "response_format": response_format,
        "seed": body.seed,
        **body.extras(),
    }
    result = await services.pipeline.generate(ctx, generation, params, delivery=response_format)
    return image_response(request, services, result)


def image_response(request: Request, services: Services, result: GenerationResult) -> Response:
    """The OpenAI images body (``created``, ``data``) of a finished request, or its refusal."""
    refusal = refused(request, result)
    if refusal is not None:
        return refusal
    data: list[dict[str, object]] = []
    for asset, revised in zip(result.assets, result.revised_prompts, strict=False):
        item: dict[str, object] = {}
        if asset.location is not None and asset.location_expires is not None:
            if services.files is None:  # the pipeline stored it, so this cannot happen
                raise ApiError(503, "file delivery is not configured", "storage_unavailable")
            base = services.settings.public_base_url or str(request.base_url).rstrip("/")
            item["url"] = services.files.url(base, asset.location, asset.location_expires)
        else:
            item["b64_json"] = base64.b64encode(asset.data).decode("ascii")
        if revised:
            item["revised_prompt"] = revised
        data.append(item)
    mark_audited(request)
    headers = decision_headers(result.decision_id, result.action, result.overhead_ms)
    return JSONResponse({"created": int(time.time()), "data": data}, headers=headers)
