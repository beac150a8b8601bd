"""``/admin/audit/*``: investigations for trust-and-safety staff (roles ``auditor`` or ``admin``).

An auditor reads only their own tenant's records: naming another tenant answers 403, and a
decision id of another tenant is 404 (never confirming that it exists). An ``admin`` may name
any tenant. Every read is itself audited, in the chain of the tenant that was read (route
``admin.audit.<action>``, the reader's key id and the filters in ``input.params``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from audit.errors import AuditError
from audit.export import csv_lines, jsonl_lines
from audit.query import get_by_decision_id
from audit.search import AuditQuery, InvalidCursor, export_records, search, stats
from audit.verify import verify_chain
from gateway.deps import Auditor, ServicesDep
from gateway.errors import ApiError, error_response
from gateway.keys import Principal, Role
from gateway.recording import admin_record

__all__ = ["router"]

router = APIRouter(prefix="/admin/audit", tags=["audit"])


def _tenant(principal: Principal, tenant: str | None) -> str:
    if tenant is None or tenant == principal.tenant:
        return principal.tenant
    if Role.ADMIN in principal.roles:
        return tenant
    raise ApiError(
        403,
        f"an auditor of tenant {principal.tenant!r} cannot read tenant {tenant!r}",
        "tenant_forbidden",
        type="permission_error",
        param="tenant",
    )


def _target_tenant(principal: Auditor, tenant: str | None = None) -> str:
    return _tenant(principal, tenant)


# refusals are raised while dependencies resolve; route bodies answer errors as values
TargetTenant = Annotated[str, Depends(_target_tenant)]


class _Filters:
    """The query-string filters shared by query and export."""

    def __init__(
        self,
        tenant: TargetTenant,
        since: datetime | None = None,
        until: datetime | None = None,
        decision: str | None = None,
        category: str | None = None,
        stage: str | None = None,
        classifier: str | None = None,
        key_id: str | None = None,
        route: str | None = None,
        policy_revision: str | None = None,
        error_code: str | None = None,
        decision_id: str | None = None,
        output_sha256: str | None = None,
        output_pdq: str | None = None,
        output_watermark: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: str | None = None,
    ) -> None:
        self.tenant = tenant
        self.values = {
            "since": since,
            "until": until,
            "decision": decision,
            "category": category,
            "stage": stage,
            "classifier": classifier,
            "key_id": key_id,
            "route": route,
            "policy_revision": policy_revision,
            "error_code": error_code,
            "decision_id": decision_id,
            "output_sha256": output_sha256,
            "output_pdq": output_pdq,
            "output_watermark": output_watermark,
            "limit": limit,
            "cursor": cursor,
        }
        given = {k: v for k, v in self.values.items() if v is not None}
        try:
            self.query = AuditQuery(tenant=tenant, **given)
        except ValidationError as exc:
            first = exc.errors(include_input=False)[0]
            raise ApiError(
                400,
                f"{first['loc'][0]}: {first['msg']}",
                "invalid_filter",
                param=str(first["loc"][0]),
            ) from None

    def logged(self) -> dict[str, object]:
        return {k: str(v) for k, v in self.values.items() if v is not None}


Filters = Annotated[_Filters, Depends()]


async def _audit_read(
    services: ServicesDep, principal: Principal, action: str, tenant: str, params: dict[str, object]
) -> None:
    record = admin_record(
        f"admin.audit.{action}",
        tenant,
        f"key:{principal.key_id}",
        {"reader_tenant": principal.tenant, **params},
    )
    await services.audit_sink.append(record.model_copy(update={"key_id": principal.key_id}))


@router.get("/query")
async def query_records(services: ServicesDep, principal: Auditor, filters: Filters) -> Response:
    query = filters.query
    try:
        page = await search(services.redis, query)
    except InvalidCursor as exc:
        return error_response(ApiError(400, str(exc), "invalid_cursor", param="cursor"), None)
    await _audit_read(services, principal, "query", query.tenant, filters.logged())
    return JSONResponse(
        {
            "tenant": query.tenant,
            "records": [json.loads(r.to_stored_json()) for r in page.records],
            "next_cursor": page.next_cursor,
        }
    )


@router.get("/records/{decision_id}")
async def get_record(
    decision_id: str, services: ServicesDep, principal: Auditor, target: TargetTenant
) -> Response:
    record = await get_by_decision_id(services.redis, decision_id, tenant=target)
    await _audit_read(services, principal, "record", target, {"decision_id": decision_id})
    if record is None:
        error = ApiError(404, f"no audit record {decision_id!r} in tenant {target!r}", "not_found")
        return error_response(error, None)
    return Response(record.to_stored_json(), media_type="application/json")


@router.get("/stats")
async def audit_stats(
    services: ServicesDep,
    principal: Auditor,
    target: TargetTenant,
    since: datetime | None = None,
    until: datetime | None = None,
    bucket: Literal["hour", "day"] = "hour",
) -> Response:
    until = _aware(until) or datetime.now(UTC)
    since = _aware(since) or until - timedelta(days=1)
    try:
        buckets = await stats(services.redis, target, since=since, until=until, bucket=bucket)
    except ValueError as exc:
        return error_response(ApiError(400, str(exc), "invalid_filter", param="since"), None)
    await _audit_read(
        services, principal, "stats", target, {"since": since, "until": until, "bucket": bucket}
    )
    return JSONResponse(
        {
            "tenant": target,
            "bucket": bucket,
            "buckets": [b.model_dump(mode="json") for b in buckets],
        }
    )


@router.get("/export")
async def export(
    services: ServicesDep,
    principal: Auditor,
    filters: Filters,
    format: Literal["jsonl", "csv"] = "jsonl",
) -> StreamingResponse:
    query = filters.query.model_copy(update={"limit": 500})
    await _audit_read(
        services, principal, "export", query.tenant, {**filters.logged(), "format": format}
    )
    records = export_records(services.redis, query)
    lines = csv_lines(records) if format == "csv" else jsonl_lines(records)
    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    filename = f"audit-{query.tenant}.{format}"
    return StreamingResponse(
        _guarded(lines),
        media_type=media,
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


async def _guarded(lines: AsyncIterator[str]) -> AsyncIterator[bytes]:
    try:
        async for line in lines:
            yield line.encode("utf-8")
    except AuditError as exc:  # headers are gone: end the body with a visible marker
        yield f"\n# export interrupted: {exc}\n".encode()


@router.get("/verify-chain")
async def verify(services: ServicesDep, principal: Auditor, target: TargetTenant) -> Response:
    await _audit_read(services, principal, "verify-chain", target, {})
    report = await verify_chain(services.redis, target, checkpoint_key=services.checkpoint_key)
    return Response(report.model_dump_json(), media_type="application/json")


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
