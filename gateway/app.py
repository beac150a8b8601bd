"""The FastAPI application: factory, lifespan and the one place the middleware stack is built."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.console import router as console_router
from gateway.context import RequestContext, new_decision_id
from gateway.deps import Services, principal_from_request
from gateway.errors import ApiError, error_for_exception, error_response
from gateway.jobs.connection import open_job_queue
from gateway.lifespan import open_services
from gateway.observability import ObservabilityMiddleware
from gateway.routes import (
    admin_audit,
    admin_hashbanks,
    admin_policies,
    admin_voices,
    audio,
    files,
    image_edits,
    images,
    jobs,
    moderations,
    provenance,
    review,
    system,
)
from gateway.settings import Settings
from gateway.validation import api_error_for_validation

__all__ = ["create_app"]

logger = logging.getLogger("genguard")

AUDITED_ROUTES = {
    "/v1/images/generations": "images.generations",
    "/v1/images/edits": "images.edits",
    "/v1/images/variations": "images.variations",
    "/v1/audio/speech": "audio.speech",
    "/v1/moderations": "moderations",
    "/v1/jobs": "jobs.submit",
}


UPLOAD_ROUTES = frozenset({"/v1/images/edits", "/v1/images/variations"})
"""Multipart uploads: limited by ``limits.max_upload_bytes`` instead of ``max_body_bytes``."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            with open_job_queue(settings) as app.state.job_queue:
                yield

    app = FastAPI(
        title="GenGuard",
        version="0.1.0",
        summary="Content-safety and provenance gateway (OpenAI-compatible)",
        lifespan=lifespan,
    )
    app.include_router(images.router)
    app.include_router(image_edits.router)
    app.include_router(files.router)
    app.include_router(audio.router)
    app.include_router(moderations.router)
    app.include_router(system.router)
    app.include_router(admin_audit.router)
    app.include_router(admin_policies.router)
    app.include_router(console_router)
    app.include_router(provenance.router)
    app.include_router(review.router)
    app.include_router(admin_voices.router)
    app.include_router(admin_hashbanks.router)
    app.include_router(jobs.router)
    _install_middleware(app, settings)
    _install_error_handlers(app)
    return app


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(RequestStateMiddleware, settings=settings)
    # outermost: decision id, log fields, span, HTTP metrics and the access line of everything
    app.add_middleware(ObservabilityMiddleware)


class RequestStateMiddleware:
    """The request's state for routes and error handlers, and the body size limit (413).

    Sets ``decision_id`` and ``trace_id`` unless ``ObservabilityMiddleware`` has, ``started``,
    ``route_name``, ``audited=False`` and ``principal=None``; answers an audited 413 when the
    declared ``Content-Length`` exceeds ``limits.max_body_bytes`` (``max_upload_bytes`` on the
    upload routes). Pure ASGI: no extra task or response re-streaming per request, which
    Starlette's ``BaseHTTPMiddleware`` (``@app.middleware``) costs.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self._max_body_bytes = settings.limits.max_body_bytes
        self._max_upload_bytes = settings.limits.max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if "decision_id" not in state:  # ObservabilityMiddleware sets it
            state["decision_id"] = new_decision_id()
            state["trace_id"] = secrets.token_hex(16)
        path = _url_path(scope)
        state["started"] = time.perf_counter()
        state["route_name"] = AUDITED_ROUTES.get(path, path)
        state["audited"] = False
        state["principal"] = None
        length = _header(scope, b"content-length")
        limit = self._max_upload_bytes if path in UPLOAD_ROUTES else self._max_body_bytes
        if length and length.isdigit() and int(length) > limit:
            error = ApiError(
                413,
                f"request body of {length} bytes exceeds the limit of {limit}",
                "request_too_large",
            )
            response = await _audited_error(Request(scope, receive), error)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _url_path(scope: Scope) -> str:
    """``request.url.path`` without building the URL (Starlette escapes these three)."""
    path: str = scope["path"]
    if "?" in path or "#" in path or "\\" in path:
        return Request(scope).url.path
    return path


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), as ``request.headers.get`` gives it."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> Response:
        return await _audited_error(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> Response:
        return await _audited_error(request, api_error_for_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed"}
        error = ApiError(
            exc.status_code,
            f"{request.method} {request.url.path}: {exc.detail}",
            codes.get(exc.status_code, "http_error"),
        )
        return await _audited_error(request, error)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s", request.url.path)
        return await _audited_error(request, error_for_exception(exc))


async def _audited_error(request: Request, error: ApiError) -> Response:
    """Answer with the OpenAI error shape; audit it if the route is audited and nobody has."""
    decision_id: str | None = getattr(request.state, "decision_id", None)
    route = AUDITED_ROUTES.get(request.url.path)
    services: Services | None = getattr(request.app.state, "services", None)
    if route and services and decision_id and not getattr(request.state, "audited", True):
        request.state.audited = True
        principal = getattr(request.state, "principal", None)
        if principal is None and error.status != 401:
            try:
                principal = await principal_from_request(request, services.keys)
            except ApiError:
                principal = None
        ctx = RequestContext(
            decision_id=decision_id,
            route=route,
            principal=principal,
            trace_id=request.state.trace_id,
            started=request.state.started,
        )
        try:
            await services.recorder.record_failure(ctx, error, params={"path": request.url.path})
        except Exception:
            logger.exception("could not audit failed request %s", decision_id)
            error = ApiError(
                503,
                "the audit log is unavailable; request refused",
                "audit_unavailable",
                type="server_error",
            )
    return error_response(error, decision_id)
