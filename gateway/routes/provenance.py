"""``POST /v1/provenance/verify``: Content Credentials, watermark and recovered manifest of a file.

Any authenticated key may call it. The upload is the multipart field ``file``; the optional field
``trust_anchors`` (PEM) replaces the gateway's own anchors for this call.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse

from gateway.deps import ServicesDep, principal_from_request
from gateway.errors import ApiError
from provenance.errors import CredentialsError, ManifestReadError, UnsupportedMedia

router = APIRouter()


@router.post("/v1/provenance/verify", name="provenance.verify")
async def verify(
    request: Request,
    services: ServicesDep,
    file: Annotated[UploadFile, File(description="the image or audio file to verify")],
    trust_anchors: Annotated[str | None, Form()] = None,
) -> JSONResponse:
    await principal_from_request(request, services.keys)
    data = await file.read()
    limit = services.settings.limits.max_body_bytes
    if len(data) > limit:
        raise ApiError(413, f"file of {len(data)} bytes exceeds {limit}", "request_too_large")
    anchors = trust_anchors.encode() if trust_anchors else None
    try:
        report = await services.pipeline.verify(data, anchors)
    except UnsupportedMedia as exc:
        raise ApiError(415, str(exc), "unsupported_media_type", param="file") from exc
    except ManifestReadError as exc:
        raise ApiError(422, str(exc), "unreadable_media", param="file") from exc
    except CredentialsError as exc:
        raise ApiError(400, str(exc), "invalid_trust_anchors", param="trust_anchors") from exc
    headers = {"x-genguard-decision-id": request.state.decision_id}
    return JSONResponse(report, headers=headers)
