"""Request validation errors → one precise OpenAI-shaped error (which field, what was wrong)."""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError

from gateway.errors import ApiError

__all__ = ["api_error_for_validation"]


def api_error_for_validation(exc: RequestValidationError) -> ApiError:
    errors = list(exc.errors())
    if not errors:
        return ApiError(400, "invalid request", "invalid_request")
    first = errors[0]
    if first.get("type") == "json_invalid":
        ctx = first.get("ctx") or {}
        where = first.get("loc", ("body", 0))
        position = where[1] if len(where) > 1 else "?"
        return ApiError(
            400,
            f"the request body is not valid JSON ({ctx.get('error', 'parse error')}"
            f" at position {position})",
            "invalid_json",
        )
    param = _param(first.get("loc", ()))
    if param == "":
        return ApiError(400, "the request body must be a JSON object", "invalid_request")
    message = "; ".join(_describe(e) for e in errors[:5])
    if len(errors) > 5:
        message += f"; and {len(errors) - 5} more"
    code = "missing_required_parameter" if first.get("type") == "missing" else "invalid_value"
    return ApiError(400, message, code, param=param)


def _param(loc: Any) -> str:
    parts = [str(p) for p in loc if p != "body"]
    # drop pydantic's union-branch tags such as "str" or "list[str]"
    parts = [p for p in parts if not (p.startswith(("list[", "function-")) or p in {"str", "int"})]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def _describe(error: Any) -> str:
    param = _param(error.get("loc", ())) or "body"
    message = str(error.get("msg", "invalid"))
    if error.get("type") == "missing":
        return f"'{param}' is required"
    value = error.get("input")
    shown = repr(value) if isinstance(value, int | float | bool | None) else type(value).__name__
    if isinstance(value, str):
        shown = f"a string of {len(value)} characters"
    return f"'{param}': {message} (got {shown})"
