"""``/admin/voices/*``: the protected-voice bank (role ``policy_editor`` or ``admin``).

Enrolling takes a WAV clip of the speaker (16-bit PCM, at least a few seconds of speech),
embeds it with the ``protected_voice`` classifier's encoder in the worker pool and stores the
embedding (never the audio) in Redis; every gateway picks the change up at its next audio
output stage. Every enrolment and removal is audited (``admin.voices.enrol`` / ``.remove``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from classifiers.audio.voice_bank import InvalidVoiceName, RedisVoiceBank, check_name
from gateway.deps import PolicyEditor, ServicesDep
from gateway.errors import ApiError
from gateway.recording import admin_record

__all__ = ["router"]

router = APIRouter(prefix="/admin/voices", tags=["voices"])


class EnrolBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=80)]
    audio_b64: Annotated[str, Field(min_length=1, description="a 16-bit PCM WAV, base64")]


@router.get("", name="admin.voices.list")
async def list_voices(principal: PolicyEditor, services: ServicesDep) -> JSONResponse:
    voices = await RedisVoiceBank(services.redis).list()
    return JSONResponse({"data": [v.to_json() for v in voices]})


@router.post("", name="admin.voices.enrol", status_code=201)
async def enrol_voice(
    body: EnrolBody, principal: PolicyEditor, services: ServicesDep
) -> JSONResponse:
    try:
        check_name(body.name)
    except InvalidVoiceName as exc:
        raise ApiError(400, str(exc), "invalid_value", param="name") from None
    try:
        audio = base64.b64decode(body.audio_b64, validate=True)
    except (binascii.Error, ValueError):
        message = "audio_b64 is not valid base64"
        raise ApiError(400, message, "invalid_value", param="audio_b64") from None
    embedding, speech_s = await services.pipeline.embed_voice(audio)
    actor = principal.key_id or "-"
    record = await RedisVoiceBank(services.redis).enrol(
        body.name, embedding, actor=actor, speech_s=speech_s
    )
    await services.audit_sink.append(
        admin_record(
            "admin.voices.enrol",
            principal.tenant,
            actor,
            {"voice": body.name, "speech_s": speech_s},
        )
    )
    return JSONResponse(record.to_json(), status_code=201)


@router.delete("/{name}", name="admin.voices.remove")
async def remove_voice(name: str, principal: PolicyEditor, services: ServicesDep) -> JSONResponse:
    if not await RedisVoiceBank(services.redis).remove(name):
        raise ApiError(404, f"no protected voice named {name!r}", "not_found", param="name")
    actor = principal.key_id or "-"
    await services.audit_sink.append(
        admin_record("admin.voices.remove", principal.tenant, actor, {"voice": name})
    )
    return JSONResponse({"name": name, "removed": True})
