"""``POST /v1/moderations`` (OpenAI Moderations API) scored by the policy's classifiers.

Text is judged by the prompt stage. OpenAI's multimodal shape (a list of ``text`` and
``image_url`` parts) is one input and gets one result: images must be ``data:`` URLs (the gateway
fetches nothing; a remote URL is a 400) and are judged by the policy's image output stage; the
result is flagged when any part is, and ``category_applied_input_types`` says which kinds of
input each category was scored on.
"""

from __future__ import annotations

import base64
import binascii
import re

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from classifiers.taxonomy import Category
from gateway.deps import Context, ServicesDep
from gateway.errors import ApiError
from gateway.pipeline import ModerationResult
from gateway.routes.responses import decision_headers, failed, mark_audited
from gateway.schemas import ModerationBody

router = APIRouter()


@router.post("/v1/moderations", name="moderations")
async def create_moderation(
    request: Request, body: ModerationBody, ctx: Context, services: ServicesDep
) -> Response:
    images = [_data_url_bytes(index, url) for index, url in enumerate(body.image_urls())]
    texts = body.texts()
    params: dict[str, object] = {"model": body.model, "inputs": len(texts), **body.extras()}
    if images:
        params["images"] = len(images)
    result = await services.pipeline.moderate(ctx, texts, params, images)
    if result.error is not None:
        return failed(request, result.error, ctx.decision_id, "error", result.overhead_ms)
    if images:
        return _multimodal(request, result, ctx.decision_id)
    results = []
    for scores, flagged, blocking in zip(
        result.scores, result.flagged, result.blocking, strict=True
    ):
        category_scores = {c.value: round(scores.get(c.value, 0.0), 6) for c in Category}
        results.append(
            {
                # flagged: the caller's policy would block this text at the prompt stage;
                # categories: the categories of the prompt rules that would block it
                "flagged": flagged,
                "categories": {c.value: c.value in blocking for c in Category},
                "category_scores": category_scores,
                "category_applied_input_types": {c.value: ["text"] for c in Category},
            }
        )
    mark_audited(request)
    action = "flag" if any(result.flagged) else "allow"
    return JSONResponse(
        {"id": f"modr-{ctx.decision_id[4:]}", "model": result.model, "results": results},
        headers=decision_headers(ctx.decision_id, action, result.overhead_ms),
    )


_DATA_URL = re.compile(r"^data:(image/[A-Za-z0-9.+-]+)?(;[^,]*)?;base64,(.*)$", re.DOTALL)
MAX_IMAGE_BYTES = 20 * 1024 * 1024


def _data_url_bytes(index: int, url: str) -> bytes:
    """The bytes of a ``data:image/...;base64,...`` URL; anything else is a precise 400."""
    if not url.startswith("data:"):
        scheme = url.split(":", 1)[0] if ":" in url else "(none)"
        raise ApiError(
            400,
            f"image_url part {index}: only data: URLs are accepted (base64-encoded image); "
            f"this gateway does not fetch remote images (got scheme {scheme!r})",
            "invalid_image_url",
            param="input",
        )
    match = _DATA_URL.match(url)
    if match is None:
        raise ApiError(
            400,
            f"image_url part {index}: expected data:image/<type>;base64,<data>",
            "invalid_image_url",
            param="input",
        )
    try:
        data = base64.b64decode(match.group(3), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(
            400,
            f"image_url part {index}: the base64 data is not valid: {exc}",
            "invalid_image_url",
            param="input",
        ) from exc
    if not data or len(data) > MAX_IMAGE_BYTES:
        raise ApiError(
            400,
            f"image_url part {index}: image is {len(data)} bytes; expected 1 to {MAX_IMAGE_BYTES}",
            "invalid_image_url",
            param="input",
        )
    return data


def _multimodal(request: Request, result: ModerationResult, decision_id: str) -> Response:
    """One result for the whole multimodal input: the highest score of any part per category,
    flagged when any part is, and the input types each category was scored on."""
    scores: dict[str, float] = {}
    applied: dict[str, list[str]] = {c.value: [] for c in Category}
    blocking: set[str] = set()
    for part_scores, part_blocking, kind in zip(
        result.scores, result.blocking, result.input_types, strict=True
    ):
        blocking |= part_blocking
        for category, value in part_scores.items():
            scores[category] = max(scores.get(category, 0.0), value)
        for category in Category:
            # text parts are scored on every category; an image on those its classifiers cover
            if (kind == "text" or category.value in part_scores) and kind not in applied[
                category.value
            ]:
                applied[category.value].append(kind)
    flagged = any(result.flagged)
    mark_audited(request)
    body = {
        "id": f"modr-{decision_id[4:]}",
        "model": result.model,
        "results": [
            {
                "flagged": flagged,
                "categories": {c.value: c.value in blocking for c in Category},
                "category_scores": {c.value: round(scores.get(c.value, 0.0), 6) for c in Category},
                "category_applied_input_types": applied,
            }
        ],
    }
    action = "flag" if flagged else "allow"
    return JSONResponse(body, headers=decision_headers(decision_id, action, result.overhead_ms))
