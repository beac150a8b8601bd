"""``/admin/hashbanks/*``: PDQ hash banks (role ``policy_editor`` or ``admin``).

A bank holds the PDQ hashes of known images under one category (``hash-match`` by default) and a
Hamming threshold (31 by default). Hashes are added as an uploaded image (multipart field
``file``: hashed in the worker pool, the image itself is not stored) or as JSON
``{"hashes": ["<64 hex digits>", ...]}``. Every gateway picks a change up at its next image
stage that runs ``pdq_bank``. Every change is audited (``admin.hashbanks.create`` / ``.add`` /
``.remove_hash`` / ``.delete``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from classifiers.image.hash_banks import HashBankError, HashBankExists, RedisHashBanks
from classifiers.image.pdq_bank import DEFAULT_THRESHOLD, MIN_QUALITY
from classifiers.taxonomy import Category
from gateway.deps import PolicyEditor, ServicesDep
from gateway.errors import ApiError
from gateway.recording import admin_record

__all__ = ["router"]

router = APIRouter(prefix="/admin/hashbanks", tags=["hashbanks"])


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=80)]
    category: Category = Category.HASH_MATCH
    threshold: Annotated[int, Field(ge=0, le=127)] = DEFAULT_THRESHOLD


class HashesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hashes: Annotated[list[str], Field(min_length=1, max_length=10_000)]


def _not_found(name: str) -> ApiError:
    return ApiError(404, f"no hash bank named {name!r}", "not_found", param="name")


@router.get("", name="admin.hashbanks.list")
async def list_banks(principal: PolicyEditor, services: ServicesDep) -> JSONResponse:
    banks = await RedisHashBanks(services.redis).list()
    return JSONResponse({"data": [b.to_json() for b in banks]})


@router.post("", name="admin.hashbanks.create", status_code=201)
async def create_bank(
    body: CreateBody, principal: PolicyEditor, services: ServicesDep
) -> JSONResponse:
    actor = principal.key_id or "-"
    try:
        bank = await RedisHashBanks(services.redis).create(
            body.name, category=body.category, threshold=body.threshold, actor=actor
        )
    except HashBankError as exc:
        status = 409 if isinstance(exc, HashBankExists) else 400
        raise ApiError(status, str(exc), "invalid_value", param="name") from None
    await services.audit_sink.append(
        admin_record("admin.hashbanks.create", principal.tenant, actor, bank.to_json())
    )
    return JSONResponse(bank.to_json(), status_code=201)


@router.get("/{name}/hashes", name="admin.hashbanks.hashes")
async def list_hashes(name: str, principal: PolicyEditor, services: ServicesDep) -> JSONResponse:
    try:
        hashes = await RedisHashBanks(services.redis).hashes(name)
    except KeyError:
        raise _not_found(name) from None
    return JSONResponse({"data": [{"hash": h, **meta} for h, meta in hashes.items()]})


@router.post("/{name}/hashes", name="admin.hashbanks.add", status_code=201)
async def add_hashes(
    name: str, request: Request, principal: PolicyEditor, services: ServicesDep
) -> JSONResponse:
    """Multipart ``file`` (an image) or JSON ``{"hashes": [...]}``."""
    content_type = request.headers.get("content-type", "")
    hashes: dict[str, dict[str, object]]
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "send the image as the multipart field 'file'", "invalid_value")
        data = await upload.read()
        limit = services.settings.limits.max_body_bytes
        if len(data) > limit:
            raise ApiError(413, f"file of {len(data)} bytes exceeds {limit}", "request_too_large")
        pdq = await services.pipeline.hash_image(data)
        if pdq.quality < MIN_QUALITY:
            raise ApiError(
                400,
                f"the image is too flat to hash reliably (PDQ quality {pdq.quality} < "
                f"{MIN_QUALITY})",
                "invalid_image",
                param="file",
            )
        hashes = {pdq.hex: {"quality": pdq.quality, "source": upload.filename or "upload"}}
    else:
        try:
            body = HashesBody.model_validate_json(await request.body())
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise ApiError(400, f"{where}: {first['msg']}", "invalid_value", param=where) from None
        hashes = {h: {"source": "import"} for h in body.hashes}
    actor = principal.key_id or "-"
    try:
        added = await RedisHashBanks(services.redis).add(name, hashes, actor=actor)
    except KeyError:
        raise _not_found(name) from None
    except HashBankError as exc:
        raise ApiError(400, str(exc), "invalid_value", param="hashes") from None
    await services.audit_sink.append(
        admin_record(
            "admin.hashbanks.add", principal.tenant, actor, {"bank": name, "hashes": added}
        )
    )
    return JSONResponse({"bank": name, "added": added}, status_code=201)


@router.delete("/{name}/hashes/{value}", name="admin.hashbanks.remove_hash")
async def remove_hash(
    name: str, value: str, principal: PolicyEditor, services: ServicesDep
) -> JSONResponse:
    try:
        removed = await RedisHashBanks(services.redis).remove_hash(name, value)
    except KeyError:
        raise _not_found(name) from None
    except HashBankError as exc:
        raise ApiError(400, str(exc), "invalid_value", param="hash") from None
    if not removed:
        raise ApiError(404, f"bank {name!r} holds no hash {value}", "not_found", param="hash")
    actor = principal.key_id or "-"
    await services.audit_sink.append(
        admin_record(
            "admin.hashbanks.remove_hash",
            principal.tenant,
            actor,
            {"bank": name, "hash": value.lower()},
        )
    )
    return JSONResponse({"bank": name, "hash": value.lower(), "removed": True})


@router.delete("/{name}", name="admin.hashbanks.delete")
async def delete_bank(name: str, principal: PolicyEditor, services: ServicesDep) -> JSONResponse:
    if not await RedisHashBanks(services.redis).delete(name):
        raise _not_found(name)
    actor = principal.key_id or "-"
    await services.audit_sink.append(
        admin_record("admin.hashbanks.delete", principal.tenant, actor, {"bank": name})
    )
    return JSONResponse({"name": name, "deleted": True})
