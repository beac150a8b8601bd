"""``GET /v1/models``, ``/healthz`` (process up), ``/readyz`` (Redis reachable) and
``/metrics`` (Prometheus; a key with the ``metrics`` role unless
``GENGUARD_OBSERVABILITY__METRICS_PUBLIC=true``, see ``gateway.metrics``).

``/readyz`` also says where the enforced policy came from: ``local copy`` while the gateway
serves the last good policy persisted on disk because Redis was unreachable at start-up.
"""

from __future__ import annotations

import os
import time

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from gateway.deps import ServicesDep, authenticate, require_any_role
from gateway.keys import Role
from gateway.metrics import CONTENT_TYPE_LATEST
from gateway.redis_connect import check_redis
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
async def healthz() -> Response:
    # which worker process answered (``genguard serve --workers N``)
    return JSONResponse({"status": "ok"}, headers={"x-genguard-worker-pid": str(os.getpid())})


@router.get("/readyz", name="readyz")
async def readyz(services: ServicesDep) -> Response:
    checks: dict[str, str] = {}
    try:
        await check_redis(services.redis)  # on a cluster: cluster_state ok too
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


_metrics_reader = require_any_role(Role.METRICS)


@router.get("/metrics", name="metrics")
async def metrics(request: Request, services: ServicesDep) -> Response:
    if not services.settings.observability.metrics_public:
        await _metrics_reader(request, services)  # 401 / 403 like every other route
    versions: dict[str, int] = {}
    if isinstance(services.policies, RedisPolicyStore):
        versions = dict(services.policies.snapshot.versions)
    spool = services.audit_sink.spool
    live = await services.telemetry.metrics.live_values(
        spool_path=spool.path if spool is not None else None,
        audit_degraded=services.audit_sink.degraded,
        policy_versions=versions,
    )
    body = await services.telemetry.metrics.exposition(live)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
