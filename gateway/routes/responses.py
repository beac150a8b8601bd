"""Headers and error bodies shared by the generation routes."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from gateway.errors import ApiError, error_response
from gateway.pipeline import GenerationResult

__all__ = ["decision_headers", "failed", "mark_audited", "pending_review", "refused"]


def decision_headers(decision_id: str, action: str, overhead_ms: float) -> dict[str, str]:
    return {
        "x-genguard-decision-id": decision_id,
        "x-genguard-decision": action,
        "x-genguard-overhead-ms": f"{overhead_ms:.2f}",
    }


def mark_audited(request: Request) -> None:
    request.state.audited = True


def failed(
    request: Request, error: ApiError, decision_id: str, action: str, overhead_ms: float
) -> JSONResponse:
    mark_audited(request)
    return error_response(error, decision_id, decision_headers(decision_id, action, overhead_ms))


def refused(request: Request, result: GenerationResult) -> JSONResponse | None:
    """The error response for a failed or blocked generation, or None when it was allowed."""
    if result.error is not None:
        return failed(request, result.error, result.decision_id, "error", result.overhead_ms)
    if result.action == "review":
        return pending_review(request, result)
    if not result.decision.blocked:
        return None
    categories = sorted({r.category for r in result.decision.reasons if r.action == "block"})
    error = ApiError(
        400,
        f"Your request was rejected by the safety system ({', '.join(categories) or 'policy'}).",
        "content_policy_violation",
    )
    return failed(request, error, result.decision_id, "block", result.overhead_ms)


def pending_review(request: Request, result: GenerationResult) -> JSONResponse:
    """HTTP 202: the output was generated but is held for a human reviewer."""
    mark_audited(request)
    categories = sorted({r.category for r in result.decision.reasons if r.action == "review"})
    body = {
        "id": result.decision_id,
        "status": "pending",
        "message": (
            "The output is held for human review "
            f"({', '.join(categories) or 'policy'}); fetch it from the location given "
            "once a reviewer approves it."
        ),
        "location": f"/v1/reviews/{result.decision_id}",
    }
    headers = decision_headers(result.decision_id, "review", result.overhead_ms)
    headers["location"] = body["location"]
    return JSONResponse(body, status_code=202, headers=headers)
