"""Human review of held outputs: reviewers under ``/admin/review/*``, requesters under
``/v1/reviews/{decision_id}``.

A reviewer (role ``reviewer`` or ``admin``) sees only their own tenant's queue (an ``admin`` may
name any tenant); a decision id of another tenant answers 404, never confirming that it exists.
Approving or rejecting, and every delivery of an approved output, is audited
(``admin.review.approve`` / ``admin.review.reject`` / ``review.fetch`` in the tenant's chain).
The requester's answers: 202 while pending, 403 ``review_rejected`` once rejected, and the
output itself once approved (the image JSON of the Images API, or the audio bytes).
"""

from __future__ import annotations

import base64
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Response
from fastapi.responses import JSONResponse

from gateway.deps import Caller, Reviewer, ServicesDep
from gateway.errors import ApiError
from gateway.keys import Principal, Role
from gateway.recording import admin_record
from gateway.review import HeldOutput, RedisReviewQueue, ReviewConflict

__all__ = ["router"]

router = APIRouter(tags=["review"])

Note = Annotated[str, Body(embed=True, max_length=2000)]


def _not_found(decision_id: str) -> ApiError:
    return ApiError(
        404,
        f"no output held for review under {decision_id!r} (held outputs expire after 7 days)",
        "not_found",
        param="decision_id",
    )


async def _held_for(services: ServicesDep, principal: Principal, decision_id: str) -> HeldOutput:
    held = await RedisReviewQueue(services.redis).get(decision_id)
    if held is None or (held.tenant != principal.tenant and Role.ADMIN not in principal.roles):
        raise _not_found(decision_id)
    return held


@router.get("/admin/review", name="admin.review.list")
async def list_pending(
    principal: Reviewer,
    services: ServicesDep,
    tenant: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JSONResponse:
    target = tenant or principal.tenant
    if target != principal.tenant and Role.ADMIN not in principal.roles:
        raise ApiError(
            403,
            f"a reviewer of tenant {principal.tenant!r} cannot read tenant {target!r}",
            "tenant_forbidden",
            type="permission_error",
            param="tenant",
        )
    items = await RedisReviewQueue(services.redis).pending(target, limit=limit)
    return JSONResponse({"tenant": target, "data": [h.summary() for h in items]})


@router.get("/admin/review/{decision_id}", name="admin.review.get")
async def get_item(decision_id: str, principal: Reviewer, services: ServicesDep) -> JSONResponse:
    return JSONResponse((await _held_for(services, principal, decision_id)).summary())


@router.get("/admin/review/{decision_id}/outputs/{index}", name="admin.review.output")
async def get_output(
    decision_id: str, index: int, principal: Reviewer, services: ServicesDep
) -> Response:
    """The held bytes themselves, so the reviewer can look at (or listen to) them."""
    held = await _held_for(services, principal, decision_id)
    if not 0 <= index < len(held.assets):
        raise ApiError(
            404, f"output {index} does not exist (0..{len(held.assets) - 1})", "not_found"
        )
    asset = held.assets[index]
    return Response(asset.data, media_type=asset.mime_type)


async def _decide(
    services: ServicesDep,
    principal: Principal,
    decision_id: str,
    status: Literal["approved", "rejected"],
    note: str,
) -> JSONResponse:
    held = await _held_for(services, principal, decision_id)
    actor = principal.key_id or "-"
    try:
        updated = await RedisReviewQueue(services.redis).decide(
            held, status, actor=actor, note=note
        )
    except ReviewConflict as exc:
        raise ApiError(409, str(exc), "review_already_decided") from None
    verb = "approve" if status == "approved" else "reject"
    params: dict[str, object] = {"decision_id": decision_id, "note": note}
    await services.audit_sink.append(
        admin_record(f"admin.review.{verb}", held.tenant, actor, params)
    )
    return JSONResponse(updated.summary())


@router.post("/admin/review/{decision_id}/approve", name="admin.review.approve")
async def approve(
    decision_id: str, principal: Reviewer, services: ServicesDep, note: Note = ""
) -> JSONResponse:
    return await _decide(services, principal, decision_id, "approved", note)


@router.post("/admin/review/{decision_id}/reject", name="admin.review.reject")
async def reject(
    decision_id: str, principal: Reviewer, services: ServicesDep, note: Note = ""
) -> JSONResponse:
    return await _decide(services, principal, decision_id, "rejected", note)


@router.get("/v1/reviews/{decision_id}", name="reviews.get")
async def fetch_result(decision_id: str, principal: Caller, services: ServicesDep) -> Response:
    """The requester's view: pending (202), rejected (403), or the approved output (200)."""
    held = await RedisReviewQueue(services.redis).get(decision_id)
    if held is None or held.tenant != principal.tenant:
        raise _not_found(decision_id)
    headers = {"x-genguard-decision-id": decision_id, "x-genguard-review": held.status}
    if held.status == "pending":
        body = {
            "id": decision_id,
            "status": "pending",
            "message": "The output is still waiting for a human reviewer; try again later.",
        }
        return JSONResponse(body, status_code=202, headers=headers)
    if held.status == "rejected":
        raise ApiError(
            403,
            "A human reviewer rejected this output; it will not be delivered.",
            "review_rejected",
            type="permission_error",
        )
    await services.audit_sink.append(
        admin_record(
            "review.fetch",
            held.tenant,
            principal.key_id or "-",
            {"decision_id": decision_id, "outputs": len(held.assets)},
        )
    )
    if held.route == "audio.speech":
        asset = held.assets[0]
        return Response(asset.data, media_type=asset.mime_type, headers=headers)
    data = [{"b64_json": base64.b64encode(a.data).decode("ascii")} for a in held.assets]
    return JSONResponse({"created": int(time.time()), "data": data}, headers=headers)
