"""``GET /v1/files/{tenant}/{name}``: outputs delivered with ``response_format=url``.

The link itself is the credential (``expires`` and ``signature`` in the query, see
``gateway.storage``); a caller that also sends an API key must belong to the file's tenant.
Every delivered download is audited in the file's tenant (``files.get``: the file, its size,
and the caller's key id or ``signed-link``); refused ones are not, since an unsigned request
names a tenant it cannot prove.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from gateway.deps import ServicesDep, principal_from_request
from gateway.errors import ApiError
from gateway.recording import admin_record

__all__ = ["router"]

router = APIRouter()


@router.get("/v1/files/{tenant}/{name}", name="files")
async def get_file(
    tenant: str,
    name: str,
    request: Request,
    services: ServicesDep,
    expires: str | None = None,
    signature: str | None = None,
) -> Response:
    files = services.files
    if files is None:
        raise ApiError(404, "this gateway delivers no files", "not_found")
    caller, actor = None, "signed-link"
    if request.headers.get("authorization"):
        principal = await principal_from_request(request, services.keys)
        caller, actor = principal.tenant, principal.key_id or "-"
    stored = await files.fetch(f"{tenant}/{name}", expires, signature, caller)
    await services.audit_sink.append(
        admin_record("files.get", tenant, actor, {"file": name, "bytes": len(stored.data)})
    )
    remaining = max(0, int(expires or 0) - int(time.time()))
    headers = {
        "cache-control": f"private, max-age={remaining}",
        "x-content-type-options": "nosniff",
        "content-disposition": f'inline; filename="{name}"',
    }
    return Response(stored.data, media_type=stored.mime_type, headers=headers)
