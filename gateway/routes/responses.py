"""Headers and error bodies shared by the generation routes."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from gateway.errors import ApiError, error_response

__all__ = ["decision_headers", "failed", "mark_audited"]


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


def blocked_error(reasons: str) -> ApiError:
    return ApiError(
        400,
        f"Your request was rejected by the safety system ({reasons}).",
        "content_policy_violation",
    )
