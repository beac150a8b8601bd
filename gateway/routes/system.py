"""``GET /v1/models``, ``/healthz`` (process up) and ``/readyz`` (Redis reachable).

``/readyz`` also says where the enforced policy came from: ``local copy`` while the gateway
serves the last good policy persisted on disk because Redis was unreachable at start-up.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from gateway.deps import ServicesDep, authenticate
from generators.base import SteerableGenerator
from policies.redis_store import RedisPolicyStore
from policies.versions import BASE_SCOPE

router = APIRouter()

STARTED = int(time.time())


@router.get("/v1/models", name="models", dependencies=[Depends(authenticate)])
async def list_models(services: ServicesDep) -> dict[str, object]:
    data: list[dict[str, object]] = []
    for model, generator in services.generators.models():
        entry: dict[str, object] = {
            "id": model,
            "object": "model",
            "created": STARTED,
            "owned_by": f"genguard:{generator.name}",
            "modalities": sorted(m.value for m in generator.modalities),
        }
        parent, _, variant = model.partition(":")
        if variant and isinstance(generator, SteerableGenerator) and variant in generator.variants:
            # a concept-erased variant: what was erased, how, from which base (docs/erasure.md)
            entry["parent"] = parent
            entry["variant"] = dict(generator.variant_info(variant))
        data.append(entry)
    return {"object": "list", "data": data}


@router.get("/healthz", name="healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", name="readyz")
async def readyz(services: ServicesDep) -> Response:
    checks: dict[str, str] = {}
    try:
        await services.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
    checks["signing"] = "development CA (untrusted)" if services.signer_development else "ok"
    if isinstance(services.policies, RedisPolicyStore):
        snapshot = services.policies.snapshot
        origin = "local copy (Redis unreachable at start-up)" if snapshot.from_cache else "Redis"
        checks["policy"] = f"base v{snapshot.versions.get(BASE_SCOPE)} from {origin}"
    ready = checks["redis"] == "ok"
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)
