"""Dependencies shared by the routes: the app's services, the caller, the request context."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from audit.sink import RedisStreamAuditSink
from gateway.backends import GeneratorRouter
from gateway.context import RequestContext
from gateway.errors import ApiError
from gateway.keys import ApiKeyStore, InvalidKey, KeyStoreUnavailable, Principal, Role
from gateway.observability import Telemetry
from gateway.pipeline import Pipeline
from gateway.recording import AuditRecorder
from gateway.settings import Settings
from gateway.storage import FileDelivery
from policies.redis_store import RedisPolicyStore
from policies.store import FilePolicyStore

__all__ = [
    "Auditor",
    "Caller",
    "Context",
    "PolicyApprover",
    "PolicyEditor",
    "PolicyReader",
    "PolicyStaff",
    "Reviewer",
    "Services",
    "ServicesDep",
    "authenticate",
    "principal_from_request",
]


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the lifespan built; one instance per app."""

    settings: Settings
    redis: Redis
    keys: ApiKeyStore
    pipeline: Pipeline
    recorder: AuditRecorder
    audit_sink: RedisStreamAuditSink
    checkpoint_key: bytes
    generators: GeneratorRouter
    signer_development: bool
    policies: FilePolicyStore | RedisPolicyStore | None = None
    files: FileDelivery | None = None  # response_format=url (gateway.storage)
    telemetry: Telemetry = field(default_factory=Telemetry)  # metrics and tracing


async def get_services(request: Request) -> Services:
    # async on purpose: FastAPI runs a plain ``def`` dependency in the thread pool (a thread
    # hop per request for a dictionary lookup)
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def principal_from_request(request: Request, keys: ApiKeyStore) -> Principal:
    """The caller behind ``Authorization: Bearer <key>``, or ``ApiError(401)`` saying why not."""
    header = request.headers.get("authorization")
    if not header:
        raise ApiError(
            401,
            "missing API key: send 'Authorization: Bearer <key>'",
            "missing_api_key",
            type="authentication_error",
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "the Authorization header must be 'Bearer <key>'",
            "invalid_api_key",
            type="authentication_error",
        )
    try:
        return await keys.authenticate(token.strip())
    except InvalidKey as exc:
        raise ApiError(
            401, f"invalid API key: {exc}", "invalid_api_key", type="authentication_error"
        ) from None
    except KeyStoreUnavailable as exc:  # not the caller's fault: say so, never a 401
        raise ApiError(
            503,
            f"API keys cannot be checked right now ({exc}); retry shortly",
            "auth_unavailable",
            type="server_error",
        ) from None


async def authenticate(request: Request, services: ServicesDep) -> Principal:
    principal = await principal_from_request(request, services.keys)
    request.state.principal = principal
    if not principal.has(Role.CLIENT):
        raise ApiError(
            403,
            "this API key lacks the 'client' role needed for generation routes",
            "insufficient_role",
            type="permission_error",
        )
    if await services.recorder.refuses_while_degraded(principal.tenant):
        raise ApiError(
            503,
            "the audit log is degraded (records are being spooled) and the policy says "
            "to refuse requests until it recovers",
            "audit_unavailable",
            type="server_error",
        )
    return principal


Caller = Annotated[Principal, Depends(authenticate)]


async def authenticate_auditor(request: Request, services: ServicesDep) -> Principal:
    """A caller with the ``auditor`` (or ``admin``) role, for the ``/admin/audit`` routes."""
    principal = await principal_from_request(request, services.keys)
    request.state.principal = principal
    if not principal.has(Role.AUDITOR):
        raise ApiError(
            403,
            "this API key lacks the 'auditor' or 'admin' role needed for audit routes",
            "insufficient_role",
            type="permission_error",
        )
    return principal


Auditor = Annotated[Principal, Depends(authenticate_auditor)]


def require_any_role(*roles: Role) -> Callable[[Request, Services], Awaitable[Principal]]:
    """A dependency: the caller must hold one of ``roles`` (``admin`` holds every role)."""
    names = " or ".join(f"'{role.value}'" for role in roles)

    async def dependency(request: Request, services: ServicesDep) -> Principal:
        principal = await principal_from_request(request, services.keys)
        request.state.principal = principal
        if not any(principal.has(role) for role in roles):
            raise ApiError(
                403,
                f"this API key lacks the {names} role needed here",
                "insufficient_role",
                type="permission_error",
            )
        return principal

    return dependency


PolicyEditor = Annotated[Principal, Depends(require_any_role(Role.POLICY_EDITOR))]
PolicyApprover = Annotated[Principal, Depends(require_any_role(Role.POLICY_APPROVER))]
PolicyReader = Annotated[
    Principal,
    Depends(require_any_role(Role.POLICY_EDITOR, Role.POLICY_APPROVER, Role.AUDITOR)),
]
Reviewer = Annotated[Principal, Depends(require_any_role(Role.REVIEWER))]
PolicyStaff = Annotated[
    Principal, Depends(require_any_role(Role.POLICY_EDITOR, Role.POLICY_APPROVER))
]


async def request_context(request: Request, principal: Caller) -> RequestContext:
    # async: no thread-pool hop (see get_services)
    return RequestContext(
        decision_id=request.state.decision_id,
        route=request.state.route_name,
        principal=principal,
        trace_id=request.state.trace_id,  # set by gateway.observability (the span's, if any)
        started=request.state.started,
    )


Context = Annotated[RequestContext, Depends(request_context)]
