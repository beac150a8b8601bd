"""``POST /v1/moderations`` (OpenAI Moderations API) scored by the policy's prompt classifiers."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from classifiers.taxonomy import Category
from gateway.deps import Context, ServicesDep
from gateway.errors import ApiError
from gateway.routes.responses import decision_headers, failed, mark_audited
from gateway.schemas import ModerationBody

router = APIRouter()


@router.post("/v1/moderations", name="moderations")
async def create_moderation(
    request: Request, body: ModerationBody, ctx: Context, services: ServicesDep
) -> Response:
    if body.image_urls():
        raise ApiError(
            400,
            "image inputs to /v1/moderations are not supported yet; send text",
            "unsupported_value",
            param="input",
        )
    texts = body.texts()
    params: dict[str, object] = {"model": body.model, "inputs": len(texts), **body.extras()}
    result = await services.pipeline.moderate(ctx, texts, params)
    if result.error is not None:
        return failed(request, result.error, ctx.decision_id, "error", result.overhead_ms)
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
