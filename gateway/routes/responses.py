"""Headers and error bodies shared by the generation routes."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from gateway.errors import ApiError, error_response
from gateway.pipeline import GenerationResult

__all__ = ["decision_headers", "failed", "mark_audited", "refused"]


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
    if not result.decision.blocked:
        return None
    categories = sorted({r.category for r in result.decision.reasons if r.action == "block"})
    error = ApiError(
        400,
        f"Your request was rejected by the safety system ({', '.join(categories) or 'policy'}).",
        "content_policy_violation",
    )
    return failed(request, error, result.decision_id, "block", result.overhead_ms)
