"""``POST /v1/images/generations`` (OpenAI Images API) and ``GET /v1/media/{token}``."""

from __future__ import annotations

import base64
import secrets
import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from gateway.deps import Context, ServicesDep
from gateway.errors import ApiError
from gateway.routes.responses import decision_headers, mark_audited, refused
from gateway.schemas import ImageGenerationBody, parse_size
from generators.base import GenerationRequest, Modality

router = APIRouter()

MEDIA_PREFIX = "genguard:media:"


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
    params: dict[str, object] = {
        "model": model,
        "generator": generator.name,
        "n": body.n,
        "size": f"{generation.size[0]}x{generation.size[1]}" if generation.size else None,
        "response_format": body.response_format or "b64_json",
        "seed": body.seed,
        **body.extras(),
    }
    result = await services.pipeline.generate(ctx, generation, params)
    refusal = refused(request, result)
    if refusal is not None:
        return refusal
    data: list[dict[str, object]] = []
    for asset, revised in zip(result.assets, result.revised_prompts, strict=False):
        item: dict[str, object] = {}
        if body.response_format == "url":
            token = secrets.token_urlsafe(24)
            await services.redis.hset(
                MEDIA_PREFIX + token, mapping={"data": asset.data, "mime": asset.mime_type}
            )
            await services.redis.expire(MEDIA_PREFIX + token, services.settings.limits.media_ttl_s)
            base = services.settings.public_base_url or str(request.base_url).rstrip("/")
            item["url"] = f"{base}/v1/media/{token}"
        else:
            item["b64_json"] = base64.b64encode(asset.data).decode("ascii")
        if revised:
            item["revised_prompt"] = revised
        data.append(item)
    mark_audited(request)
    headers = decision_headers(ctx.decision_id, result.action, result.overhead_ms)
    return JSONResponse({"created": int(time.time()), "data": data}, headers=headers)


@router.get("/v1/media/{token}", name="media")
async def get_media(token: str, services: ServicesDep) -> Response:
    """Images returned with ``response_format=url``: unguessable, short-lived links."""
    stored = await services.redis.hgetall(MEDIA_PREFIX + token)
    if not stored:
        raise ApiError(
            404,
            f"no such media (links expire after {services.settings.limits.media_ttl_s}s)",
            "not_found",
        )
    fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in stored.items()}
    mime = fields["mime"]
    return Response(fields["data"], media_type=mime.decode() if isinstance(mime, bytes) else mime)
