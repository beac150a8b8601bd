"""``GET /v1/files/{tenant}/{name}``: outputs delivered with ``response_format=url``.

The link itself is the credential (``expires`` and ``signature`` in the query, see
``gateway.storage``); a caller that also sends an API key must belong to the file's tenant.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from gateway.deps import ServicesDep, principal_from_request
from gateway.errors import ApiError

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
    caller = None
    if request.headers.get("authorization"):
        caller = (await principal_from_request(request, services.keys)).tenant
    stored = await files.fetch(f"{tenant}/{name}", expires, signature, caller)
    remaining = max(0, int(expires or 0) - int(time.time()))
    headers = {
        "cache-control": f"private, max-age={remaining}",
        "x-content-type-options": "nosniff",
        "content-disposition": f'inline; filename="{name}"',
    }
    return Response(stored.data, media_type=stored.mime_type, headers=headers)
