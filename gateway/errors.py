"""Every error answers in the OpenAI error shape, with the decision id.

``ApiError`` is the value routes and the pipeline return or raise; ``error_for_exception`` is the
one table that maps the packages' exceptions to HTTP. Body::

    {"error": {"message", "type", "code", "param", "decision_id"}}
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.responses import JSONResponse

from audit.errors import AuditError
from classifiers.base import ClassifierError
from generators.base import (
    GenerationError,
    UnsupportedRequest,
    UpstreamError,
    UpstreamTimeout,
)
from genguard_keyspace import REDIS_CLIENT_UNAVAILABLE
from policies.errors import PolicyError
from provenance.errors import ProvenanceError

__all__ = ["ApiError", "error_for_exception", "error_response"]


@dataclass(eq=False)
class ApiError(Exception):
    """An error as the client sees it. Not frozen: Python and Starlette set ``__traceback__``."""

    status: int
    message: str
    code: str
    type: str = "invalid_request_error"
    param: str | None = None

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def body(self, decision_id: str | None) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
                "decision_id": decision_id,
            }
        }


def error_response(
    error: ApiError, decision_id: str | None, headers: dict[str, str] | None = None
) -> JSONResponse:
    all_headers = dict(headers or {})
    if decision_id:
        all_headers.setdefault("x-genguard-decision-id", decision_id)
        all_headers.setdefault("x-genguard-decision", "error")
    return JSONResponse(error.body(decision_id), status_code=error.status, headers=all_headers)


def error_for_exception(exc: BaseException) -> ApiError:
    """Map an exception from any package to the HTTP error a client sees."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, UnsupportedRequest):
        return ApiError(400, str(exc), "unsupported_value", param=exc.param)
    if isinstance(exc, UpstreamTimeout):
        return ApiError(
            504,
            f"the upstream generator timed out: {exc}",
            "upstream_timeout",
            type="upstream_error",
        )
    if isinstance(exc, UpstreamError):
        if exc.code == "content_policy_violation":
            return ApiError(
                400,
                f"the upstream generator refused the request: {exc}",
                "content_policy_violation",
            )
        if 400 <= exc.status < 500 and exc.status not in (401, 403, 429):
            return ApiError(
                exc.status,
                f"the upstream generator rejected the request: {exc}",
                exc.code or "upstream_rejected",
            )
        return ApiError(
            502,
            f"the upstream generator failed: {exc}",
            exc.code or "upstream_error",
            type="upstream_error",
        )
    if isinstance(exc, GenerationError):
        return ApiError(502, f"generation failed: {exc}", "generation_failed", type="server_error")
    if isinstance(exc, ClassifierError):
        return ApiError(
            503, f"a safety classifier failed: {exc}", "classifier_failed", type="server_error"
        )
    if isinstance(exc, ProvenanceError):
        return ApiError(
            500,
            f"content credentials could not be attached: {exc}",
            "provenance_failed",
            type="server_error",
        )
    if isinstance(exc, AuditError):
        return ApiError(
            503, f"the audit log is unavailable: {exc}", "audit_unavailable", type="server_error"
        )
    if isinstance(exc, PolicyError):
        return ApiError(
            503, f"the policy could not be applied: {exc}", "policy_error", type="server_error"
        )
    if isinstance(exc, TimeoutError):
        return ApiError(504, "a stage timed out", "stage_timeout", type="server_error")
    if isinstance(exc, REDIS_CLIENT_UNAVAILABLE):  # e.g. a cluster failing over, mid-request
        return ApiError(
            503,
            f"Redis is unavailable ({type(exc).__name__}: {exc}); retry shortly",
            "redis_unavailable",
            type="server_error",
        )
    return ApiError(
        500,
        "internal error (see the audit record for details)",
        "internal_error",
        type="server_error",
    )
