"""``POST /v1/jobs``, ``GET /v1/jobs/{id}``: asynchronous generations (``gateway.jobs``).

Submit checks what needs no model (API key and role, the body field by field, the model name, the
policy's prompt length) and answers ``202`` with the job; everything else — the prompt stage
included — runs in a worker, so a job has exactly one audit record, written when it finishes
(or at submit, by the app's error handlers, when submit refuses it). The job id is the decision
id of both.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from gateway.deps import Caller, Context, ServicesDep
from gateway.errors import ApiError
from gateway.jobs.model import JobKind, JobRecord, parse_job_body
from gateway.jobs.store import JobQueue, JobStore
from gateway.jobs.webhook import WebhooksUnconfigured, tenant_secret, webhook_master_key
from gateway.settings import Settings
from generators.base import Modality

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/jobs", name="jobs.submit")
async def submit_job(
    request: Request,
    payload: Annotated[Any, Body()],
    ctx: Context,
    services: ServicesDep,
) -> Response:
    body = parse_job_body(payload)
    kind = JobKind(body.kind)
    modality = Modality.IMAGE if kind is JobKind.IMAGE else Modality.AUDIO
    services.generators.resolve(modality, body.model)  # 404 model_not_found, now
    prompt = body.prompt if kind is JobKind.IMAGE else body.input  # type: ignore[union-attr]
    limit = (await services.pipeline.policy_for(ctx.tenant)).policy.prompt.max_chars
    if len(prompt) > limit:
        raise ApiError(
            400,
            f"prompt is {len(prompt)} characters; this policy allows at most {limit}",
            "string_above_max_length",
            param="prompt" if kind is JobKind.IMAGE else "input",
        )
    if body.webhook_url is not None and not _webhooks_configured(services.settings):
        raise ApiError(
            400,
            "webhooks are not configured on this gateway (GENGUARD_JOBS__WEBHOOK_SECRET); "
            "submit without webhook_url and poll GET /v1/jobs/{id}",
            "unsupported_value",
            param="webhook_url",
        )
    queue: JobQueue | None = getattr(request.app.state, "job_queue", None)
    if queue is None:
        raise ApiError(503, "asynchronous jobs are not available here", "jobs_unavailable")
    assert ctx.principal is not None  # Context requires a caller
    record = JobRecord.submitted(ctx.decision_id, ctx.principal, body, time.time())
    try:
        await run_in_threadpool(queue.submit, record)
    except RedisError as exc:
        raise ApiError(
            503,
            f"the job queue is unavailable ({exc}); retry shortly",
            "jobs_unavailable",
            type="server_error",
        ) from exc
    location = f"/v1/jobs/{record.id}"
    headers = {"location": location, "x-genguard-decision-id": record.id}
    return JSONResponse(record.view(None), status_code=202, headers=headers)


@router.get("/v1/jobs/webhook-secret", name="jobs.webhook_secret")
async def webhook_secret(principal: Caller, services: ServicesDep) -> dict[str, str]:
    """The key that signs this tenant's webhooks (``gateway.jobs.webhook``)."""
    try:
        master = await run_in_threadpool(webhook_master_key, services.settings)
    except WebhooksUnconfigured as exc:
        raise ApiError(503, str(exc), "webhooks_unavailable", type="server_error") from None
    return {"tenant": principal.tenant, "secret": tenant_secret(master, principal.tenant)}


@router.get("/v1/jobs/{job_id}", name="jobs.get")
async def get_job(job_id: str, principal: Caller, services: ServicesDep) -> dict[str, Any]:
    store = JobStore(services.redis, result_ttl_s=services.settings.jobs.result_ttl_s)
    job = await store.load(job_id) if _plausible(job_id) else None
    if job is None or job.tenant != principal.tenant:  # another tenant's job does not exist
        raise ApiError(404, f"no job {job_id!r}", "job_not_found", param="job_id")
    result = await store.result(job_id) if job.status.final else None
    return job.view(result)


def _webhooks_configured(settings: Settings) -> bool:
    return settings.development or settings.jobs.webhook_secret is not None


def _plausible(job_id: str) -> bool:
    return job_id.startswith("dec_") and len(job_id) <= 64 and job_id[4:].isalnum()
