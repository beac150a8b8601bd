"""``POST /v1/audio/speech`` (OpenAI Audio API): synthesized speech, signed with C2PA."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from gateway.deps import Context, ServicesDep
from gateway.routes.responses import decision_headers, mark_audited, refused
from gateway.schemas import SpeechBody
from generators.base import GenerationRequest, Modality

router = APIRouter()


@router.post("/v1/audio/speech", name="audio.speech")
async def create_speech(
    request: Request, body: SpeechBody, ctx: Context, services: ServicesDep
) -> Response:
    generator, model = services.generators.resolve(Modality.AUDIO, body.model)
    generation = GenerationRequest(
        modality=Modality.AUDIO,
        prompt=body.input,
        model=model,
        voice=body.voice,
        audio_format=body.response_format,
        speed=float(body.speed),
    )
    params: dict[str, object] = {
        "model": model,
        "generator": generator.name,
        "voice": body.voice,
        "response_format": body.response_format,
        "speed": body.speed,
        **body.extras(),
    }
    result = await services.pipeline.generate(ctx, generation, params)
    refusal = refused(request, result)
    if refusal is not None:
        return refusal
    asset = result.assets[0]
    mark_audited(request)
    headers = decision_headers(ctx.decision_id, result.action, result.overhead_ms)
    return Response(asset.data, media_type=asset.mime_type, headers=headers)
