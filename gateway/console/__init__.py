"""The compliance console: static pages under ``/console`` that call the ``/admin/*`` API.

No server-side sessions: the browser keeps the API key in ``sessionStorage`` and sends it as a
bearer token; every read it makes is authorised (and audited) by the API like any other client.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from gateway.errors import ApiError

__all__ = ["router"]

STATIC = Path(__file__).parent / "static"
ASSETS = {"console.js": "text/javascript", "console.css": "text/css"}
_HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


@router.get("/console")
async def console_index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=_HEADERS)


@router.get("/console/")
async def console_slash() -> RedirectResponse:
    return RedirectResponse("/console")


@router.get("/console/static/{name}")
async def console_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise ApiError(404, f"no console asset {name!r}", "not_found")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=_HEADERS)
