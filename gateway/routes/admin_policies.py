"""``/admin/policies/*``: validate, diff, propose, approve, activate, roll back, history,
dry-run and shadow — the compliance workflow over HTTP — and the console page that drives it.

Who may do what: ``policy_editor`` validates, diffs, proposes, activates approved versions,
rolls back, dry-runs and starts/stops shadow evaluation; ``policy_approver`` approves (never
their own proposal — the store refuses that whoever asks) and may also activate and roll back;
``auditor`` reads. ``admin`` holds every role. A key acts on its own tenant's policy; the
``base`` policy belongs to the operator tenant (``default``) and admins. Every change is audited
by the store (``admin.policies.*`` records).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.deps import PolicyApprover, PolicyEditor, PolicyReader, PolicyStaff, ServicesDep
from gateway.errors import ApiError
from gateway.keys import Principal, Role
from policies.diff import diff_policies
from policies.dryrun import dry_run, shadow_summary
from policies.errors import (
    ApprovalRefused,
    InvalidTransition,
    PolicyError,
    PolicyUnavailable,
    PolicyValidationError,
    VersionNotFound,
)
from policies.loader import PolicyBundle
from policies.redis_store import RedisPolicyStore
from policies.reference import json_schema
from policies.versions import BASE_SCOPE, PolicyVersion, PolicyVersions

__all__ = ["OPERATOR_TENANT", "actor_of", "router"]

OPERATOR_TENANT = "default"
CONSOLE = Path(__file__).resolve().parent.parent / "console" / "static"
_CONSOLE_FILES = {
    "app.js": ("policies.js", "text/javascript"),
    "app.css": ("policies.css", "text/css"),
}
_HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}

router = APIRouter()
Scope = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ValidateBody(_Body):
    yaml: str
    scope: Scope = BASE_SCOPE


class ProposeBody(_Body):
    yaml: Annotated[str, Field(max_length=1_000_000)]
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class DiffBody(_Body):
    from_version: int | None = None  # default: the active version
    to_version: int | None = None
    yaml: str | None = None  # instead of to_version: unsaved text


class StepBody(_Body):
    reason: Annotated[str, Field(max_length=2000)] = ""


class RollbackBody(_Body):
    version: int | None = None  # default: the version active before the current one
    reason: Annotated[str, Field(max_length=2000)] = ""


class DryRunBody(_Body):
    version: int | None = None
    yaml: str | None = None
    limit: Annotated[int, Field(ge=1, le=10_000)] = 500


class ShadowBody(_Body):
    version: int


def actor_of(principal: Principal) -> str:
    return f"{principal.tenant}/{principal.key_id}"


def _authorize(principal: Principal, scope: str) -> None:
    if Role.ADMIN in principal.roles or scope == principal.tenant:
        return
    if scope == BASE_SCOPE and principal.tenant == OPERATOR_TENANT:
        return
    raise ApiError(
        403,
        f"a key of tenant {principal.tenant!r} cannot act on the {scope!r} policy",
        "insufficient_role",
        type="permission_error",
    )


def _store(services: ServicesDep) -> RedisPolicyStore:
    store = services.policies
    if not isinstance(store, RedisPolicyStore):
        raise ApiError(
            409,
            "this gateway serves a fixed policy file (GENGUARD_POLICY_STORE=file); "
            "versioned policies need the Redis store",
            "policy_store_fixed",
        )
    return store


def _versions(services: ServicesDep, principal: Principal, scope: str) -> PolicyVersions:
    _authorize(principal, scope)
    return _store(services).versions


def _invalid(exc: PolicyValidationError) -> JSONResponse:
    body = {
        "error": {
            "message": str(exc),
            "type": "invalid_request_error",
            "code": "invalid_policy",
            "param": "yaml",
            "issues": [issue.to_json() for issue in exc.issues],
        }
    }
    return JSONResponse(body, status_code=422)


def _api_error(exc: PolicyError) -> ApiError:
    if isinstance(exc, VersionNotFound):
        return ApiError(404, str(exc), "policy_version_not_found")
    if isinstance(exc, ApprovalRefused):
        return ApiError(403, str(exc), "approval_refused", type="permission_error")
    if isinstance(exc, InvalidTransition):
        return ApiError(409, str(exc), "invalid_policy_transition")
    if isinstance(exc, PolicyUnavailable):
        return ApiError(503, str(exc), "policy_store_unavailable", type="server_error")
    return ApiError(400, str(exc), "policy_error")


def _version_json(version: PolicyVersion, active: int | None, shadow: int | None) -> dict[str, Any]:
    data = version.to_json(text=False)
    data["active"] = version.number == active
    data["shadow"] = version.number == shadow
    return data


# -- reading ------------------------------------------------------------------------------------


@router.get("/admin/policies/schema", name="admin.policies.schema")
async def schema(principal: PolicyReader) -> dict[str, Any]:
    return json_schema()


@router.get("/admin/policies", name="admin.policies.list")
async def list_scopes(services: ServicesDep, principal: PolicyReader) -> dict[str, Any]:
    store = _store(services)
    scopes = []
    try:
        for scope in await store.versions.scopes():
            if Role.ADMIN in principal.roles or scope in {principal.tenant, BASE_SCOPE}:
                scopes.append(
                    {
                        "scope": scope,
                        "active": await store.versions.pointer(scope, "active"),
                        "shadow": await store.versions.pointer(scope, "shadow"),
                    }
                )
    except PolicyError as exc:
        raise _api_error(exc) from None
    own = principal.tenant if principal.tenant != OPERATOR_TENANT else BASE_SCOPE
    return {"scopes": scopes, "default_scope": own}


@router.get("/admin/policies/{scope}/history", name="admin.policies.history")
async def history(scope: str, services: ServicesDep, principal: PolicyReader) -> dict[str, Any]:
    versions = _versions(services, principal, scope)
    try:
        active = await versions.pointer(scope, "active")
        shadow = await versions.pointer(scope, "shadow")
        listed = [_version_json(v, active, shadow) for v in await versions.versions(scope)]
        events = await versions.events(scope)
    except PolicyError as exc:
        raise _api_error(exc) from None
    return {
        "scope": scope,
        "active": active,
        "shadow": shadow,
        "versions": listed,
        "events": events,
    }


@router.get("/admin/policies/{scope}/versions/{number}", name="admin.policies.version")
async def get_version(
    scope: str, number: int, services: ServicesDep, principal: PolicyReader
) -> dict[str, Any]:
    versions = _versions(services, principal, scope)
    try:
        return (await versions.get(scope, number)).to_json()
    except PolicyError as exc:
        raise _api_error(exc) from None


# -- validation and diff ------------------------------------------------------------------------


@router.post("/admin/policies/validate", name="admin.policies.validate")
async def validate(
    body: ValidateBody, services: ServicesDep, principal: PolicyStaff
) -> dict[str, Any]:
    versions = _versions(services, principal, body.scope)
    try:
        bundle = await versions.resolve_text(body.scope, body.yaml, source="policy.yaml")
    except PolicyValidationError as exc:
        return {"valid": False, "issues": [issue.to_json() for issue in exc.issues]}
    except PolicyError as exc:
        raise _api_error(exc) from None
    return {"valid": True, "issues": [], "policy_id": bundle.id, "revision": bundle.revision}


@router.post("/admin/policies/{scope}/diff", name="admin.policies.diff", response_model=None)
async def diff(
    scope: str, body: DiffBody, services: ServicesDep, principal: PolicyReader
) -> dict[str, Any] | JSONResponse:
    versions = _versions(services, principal, scope)
    try:
        from_number = body.from_version or await versions.pointer(scope, "active")
        if from_number is None:
            raise VersionNotFound(f"{scope!r} has no active version to compare with")
        before = await _bundle(versions, scope, from_number)
        if body.yaml is not None:
            after = await versions.resolve_text(scope, body.yaml, source="policy.yaml")
            to_label = "edited text"
        elif body.to_version is not None:
            after = await _bundle(versions, scope, body.to_version)
            to_label = f"v{body.to_version}"
        else:
            raise ApiError(400, "give to_version or yaml", "missing_parameter", param="to_version")
    except PolicyValidationError as exc:
        return _invalid(exc)
    except PolicyError as exc:
        raise _api_error(exc) from None
    changes = diff_policies(before.policy, after.policy)
    return {
        "scope": scope,
        "from": f"v{from_number}",
        "to": to_label,
        "changes": [change.to_json() for change in changes],
    }


async def _bundle(versions: PolicyVersions, scope: str, number: int) -> PolicyBundle:
    version = await versions.get(scope, number)
    return await versions.resolve_text(scope, version.text, source=f"{scope} v{number}")


# -- the workflow -------------------------------------------------------------------------------


@router.post(
    "/admin/policies/{scope}/propose",
    name="admin.policies.propose",
    status_code=201,
    response_model=None,
)
async def propose(
    scope: str, body: ProposeBody, services: ServicesDep, principal: PolicyEditor
) -> dict[str, Any] | JSONResponse:
    versions = _versions(services, principal, scope)
    try:
        version = await versions.propose(
            scope, body.yaml, author=actor_of(principal), reason=body.reason
        )
    except PolicyValidationError as exc:
        return _invalid(exc)
    except PolicyError as exc:
        raise _api_error(exc) from None
    return version.to_json(text=False)


@router.post("/admin/policies/{scope}/versions/{number}/approve", name="admin.policies.approve")
async def approve(
    scope: str, number: int, services: ServicesDep, principal: PolicyApprover
) -> dict[str, Any]:
    versions = _versions(services, principal, scope)
    try:
        version = await versions.approve(scope, number, approver=actor_of(principal))
    except PolicyError as exc:
        raise _api_error(exc) from None
    return version.to_json(text=False)


@router.post("/admin/policies/{scope}/versions/{number}/activate", name="admin.policies.activate")
async def activate(
    scope: str, number: int, body: StepBody, services: ServicesDep, principal: PolicyStaff
) -> dict[str, Any]:
    versions = _versions(services, principal, scope)
    try:
        version = await versions.activate(
            scope, number, actor=actor_of(principal), reason=body.reason
        )
        await _store(services).reload()  # this process enforces it before answering
    except PolicyValidationError as exc:
        raise ApiError(409, str(exc), "invalid_policy_transition") from None
    except PolicyError as exc:
        raise _api_error(exc) from None
    return version.to_json(text=False)


@router.post("/admin/policies/{scope}/rollback", name="admin.policies.rollback")
async def rollback(
    scope: str, body: RollbackBody, services: ServicesDep, principal: PolicyStaff
) -> dict[str, Any]:
    versions = _versions(services, principal, scope)
    try:
        version = await versions.rollback(
            scope, body.version, actor=actor_of(principal), reason=body.reason
        )
        await _store(services).reload()
    except PolicyError as exc:
        raise _api_error(exc) from None
    return version.to_json(text=False)


# -- dry-run and shadow -------------------------------------------------------------------------


@router.post("/admin/policies/{scope}/dry-run", name="admin.policies.dry_run", response_model=None)
async def dry_run_route(
    scope: str, body: DryRunBody, services: ServicesDep, principal: PolicyStaff
) -> dict[str, Any] | JSONResponse:
    versions = _versions(services, principal, scope)
    try:
        if body.yaml is not None:
            text = body.yaml
        elif body.version is not None:
            text = (await versions.get(scope, body.version)).text
        else:
            raise ApiError(400, "give version or yaml", "missing_parameter", param="version")
        report = await dry_run(versions, scope, text, limit=body.limit)
    except PolicyValidationError as exc:
        return _invalid(exc)
    except PolicyError as exc:
        raise _api_error(exc) from None
    return report.to_json()


@router.post("/admin/policies/{scope}/shadow", name="admin.policies.shadow_start")
async def shadow_start(
    scope: str, body: ShadowBody, services: ServicesDep, principal: PolicyStaff
) -> dict[str, Any]:
    versions = _versions(services, principal, scope)
    try:
        await versions.set_shadow(scope, body.version, actor=actor_of(principal))
        await _store(services).reload()
    except PolicyError as exc:
        raise _api_error(exc) from None
    return {"scope": scope, "shadow": body.version}


@router.delete("/admin/policies/{scope}/shadow", name="admin.policies.shadow_stop")
async def shadow_stop(scope: str, services: ServicesDep, principal: PolicyStaff) -> dict[str, Any]:
    versions = _versions(services, principal, scope)
    try:
        await versions.set_shadow(scope, None, actor=actor_of(principal))
        await _store(services).reload()
    except PolicyError as exc:
        raise _api_error(exc) from None
    return {"scope": scope, "shadow": None}


@router.get("/admin/policies/{scope}/shadow/report", name="admin.policies.shadow_report")
async def shadow_report_route(
    scope: str,
    services: ServicesDep,
    principal: PolicyReader,
    version: int | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    versions = _versions(services, principal, scope)
    try:
        report = await shadow_summary(versions, scope, number=version, limit=limit)
    except PolicyError as exc:
        raise _api_error(exc) from None
    return report.to_json()


# -- the console page ---------------------------------------------------------------------------


@router.get("/console/policies", include_in_schema=False)
async def console_page() -> FileResponse:
    return FileResponse(CONSOLE / "policies.html", media_type="text/html", headers=_HEADERS)


@router.get("/console/policies/{name}", include_in_schema=False)
async def console_asset(name: str) -> FileResponse:
    if name not in _CONSOLE_FILES:
        raise ApiError(404, f"no console asset {name!r}", "not_found")
    filename, media_type = _CONSOLE_FILES[name]
    return FileResponse(CONSOLE / filename, media_type=media_type, headers=_HEADERS)
