"""Runs one job through the same ``Pipeline`` as the synchronous routes, exactly once.

The pipeline writes its audit record through the recorder; in a worker that recorder's sink is a
``CapturingAuditSink``, which holds the record instead of appending it. The runner then:

1. commits the outcome *with the record inside it* (``JobStore.commit``, ``SET NX``);
2. appends the committed record to the audit chain (a ``DuplicateDecision`` means an earlier
   attempt already did: fine);
3. marks the job final, then delivers the webhook.

A worker killed anywhere in between leaves a state the next attempt completes: before 1, the job
runs again (nothing was committed or audited); after 1, the next attempt skips the pipeline and
repeats 2 and 3 with the committed record. So a job has one result and one audit record however
often it is attempted; only an attempt that died before 1 did work that is thrown away.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any, Literal
from urllib.parse import urlsplit

from audit.errors import DuplicateDecision
from audit.record import AuditRecord
from audit.sink import AuditSink, RedisStreamAuditSink
from gateway.context import RequestContext
from gateway.deps import Services
from gateway.errors import ApiError
from gateway.jobs.model import JobKind, JobRecord, JobStatus
from gateway.jobs.store import JobStore
from gateway.jobs.webhook import WebhookSender
from gateway.pipeline import GenerationResult
from gateway.schemas import parse_size
from generators.base import GenerationRequest, Modality

__all__ = ["CapturingAuditSink", "JobRunner", "generation_for"]

logger = logging.getLogger(__name__)

ROUTES = {JobKind.IMAGE: "images.generations", JobKind.SPEECH: "audio.speech"}
"""The audit route of a job: the synchronous route it stands for (so shadow replay applies)."""


class CapturingAuditSink:
    """Holds each request record by decision id instead of appending it (``open_services``)."""

    def __init__(self, sink: RedisStreamAuditSink) -> None:
        self._sink = sink
        self._held: dict[str, AuditRecord] = {}

    @property
    def degraded(self) -> bool:
        return self._sink.degraded

    async def append(self, record: AuditRecord) -> str:
        self._held[record.decision_id] = record
        return f"held:{record.decision_id}"

    def take(self, decision_id: str) -> AuditRecord:
        return self._held.pop(decision_id)


def generation_for(
    kind: JobKind, body: dict[str, Any], services: Services
) -> tuple[GenerationRequest, dict[str, object], Literal["b64_json", "url"]]:
    """The generation request and audited params, as the synchronous route builds them."""
    extras = {k: v for k, v in body.items() if k not in _KNOWN[kind]}
    if kind is JobKind.IMAGE:
        generator, model = services.generators.resolve(Modality.IMAGE, body.get("model"))
        request = GenerationRequest(
            modality=Modality.IMAGE,
            prompt=body["prompt"],
            model=model,
            n=body.get("n", 1),
            size=parse_size(body.get("size")),
            negative_prompt=body.get("negative_prompt"),
            seed=body.get("seed"),
        )
        delivery: Literal["b64_json", "url"] = body.get("response_format") or "b64_json"
        size = f"{request.size[0]}x{request.size[1]}" if request.size else None
        params: dict[str, object] = {
            "model": model,
            "generator": generator.name,
            "n": request.n,
            "size": size,
            "response_format": delivery,
            "seed": body.get("seed"),
            **extras,
        }
        return request, params, delivery
    generator, model = services.generators.resolve(Modality.AUDIO, body["model"])
    request = GenerationRequest(
        modality=Modality.AUDIO,
        prompt=body["input"],
        model=model,
        voice=body.get("voice", "alloy"),
        audio_format=body.get("response_format", "wav"),
        speed=float(body.get("speed", 1.0)),
    )
    params = {
        "model": model,
        "generator": generator.name,
        "voice": request.voice,
        "response_format": request.audio_format,
        "speed": request.speed,
        **extras,
    }
    return request, params, "b64_json"


_KNOWN = {
    JobKind.IMAGE: frozenset(
        {"prompt", "model", "n", "size", "response_format", "seed", "negative_prompt"}
    ),
    JobKind.SPEECH: frozenset({"model", "input", "voice", "response_format", "speed"}),
}


class JobRunner:
    def __init__(
        self,
        services: Services,
        capture: CapturingAuditSink,
        audit: AuditSink,
        webhooks: WebhookSender | None,
        *,
        worker: str,
        max_attempts: int,
        result_ttl_s: int,
    ) -> None:
        self._services = services
        self._capture = capture
        self._audit = audit
        self._webhooks = webhooks
        self._worker = worker
        self._max_attempts = max_attempts
        self.store = JobStore(services.redis, result_ttl_s=result_ttl_s)

    async def execute(self, job_id: str) -> JobStatus | None:
        """Run (or complete) the job; its final status, or None if it no longer exists."""
        job = await self.store.load(job_id)
        if job is None:
            logger.warning("job %s: gone (expired?), nothing to do", job_id)
            return None
        outcome = await self.store.result(job_id)
        if outcome is None:
            outcome = await self.attempt(job)
            if outcome is None:  # expired meanwhile: nothing left to complete
                return None
        return await self.complete(job, outcome)

    async def attempt(self, job: JobRecord) -> dict[str, Any] | None:
        """Steps 0-1: run the pipeline, commit its outcome; the committed outcome (this one,
        or that of an attempt that committed first)."""
        attempt = await self.store.start_attempt(job.id, self._worker)
        fresh = await self._run(job, attempt)
        if not await self.store.commit(job.id, fresh):
            logger.warning("job %s: another attempt committed first; keeping its result", job.id)
        return await self.store.result(job.id)

    async def complete(self, job: JobRecord, outcome: dict[str, Any]) -> JobStatus:
        """Steps 2-3 (idempotent): append the committed record, turn final, notify."""
        status = JobStatus(outcome["status"])
        try:
            await self._audit.append(AuditRecord.model_validate(outcome["record"]))
        except DuplicateDecision:
            logger.info("job %s: audit record already appended by an earlier attempt", job.id)
        await self.store.finish(job.id, status)
        if job.webhook_url is not None and job.webhook_status not in ("delivered", "failed"):
            await self._notify(job.id, job.webhook_url, job.tenant, outcome)
        return status

    async def _run(self, job: JobRecord, attempt: int) -> dict[str, Any]:
        services = self._services
        ctx = RequestContext(decision_id=job.id, route=ROUTES[job.kind], principal=job.principal)
        if attempt > self._max_attempts:
            error = ApiError(
                500,
                f"the job was started {attempt - 1} times and its worker was lost each time",
                "job_attempts_exhausted",
                type="server_error",
            )
            await services.recorder.record_failure(ctx, error, params=_job_params(job))
            return _outcome(job, self._capture.take(job.id), error.status, error.body(job.id))
        try:
            request, params, delivery = generation_for(job.kind, job.body, services)
        except ApiError as error:  # e.g. the model was removed since submit
            await services.recorder.record_failure(ctx, error, params=_job_params(job))
            return _outcome(job, self._capture.take(job.id), error.status, error.body(job.id))
        params = {**params, **_job_params(job)}
        result = await services.pipeline.generate(ctx, request, params, delivery=delivery)
        record = self._capture.take(job.id)
        status, body = self._response(job, result)
        return _outcome(job, record, status, body)

    def _response(self, job: JobRecord, result: GenerationResult) -> tuple[int, dict[str, Any]]:
        """The status and body the synchronous route would have answered with."""
        if result.error is not None:
            return result.error.status, result.error.body(result.decision_id)
        if result.action == "review":
            categories = sorted(
                {r.category for r in result.decision.reasons if r.action == "review"}
            )
            location = f"/v1/reviews/{result.decision_id}"
            return 202, {
                "id": result.decision_id,
                "status": "pending",
                "message": "The output is held for human review "
                f"({', '.join(categories) or 'policy'}).",
                "location": location,
            }
        if result.decision.blocked:
            categories = sorted(
                {r.category for r in result.decision.reasons if r.action == "block"}
            )
            error = ApiError(
                400,
                "Your request was rejected by the safety system "
                f"({', '.join(categories) or 'policy'}).",
                "content_policy_violation",
            )
            return 400, error.body(result.decision_id)
        if job.kind is JobKind.SPEECH:
            asset = result.assets[0]
            return 200, {
                "content_type": asset.mime_type,
                "b64": base64.b64encode(asset.data).decode("ascii"),
            }
        data: list[dict[str, object]] = []
        settings = self._services.settings
        for asset, revised in zip(result.assets, result.revised_prompts, strict=False):
            item: dict[str, object] = {}
            files = self._services.files
            if asset.location is not None and asset.location_expires is not None and files:
                base = settings.public_base_url or f"http://{settings.host}:{settings.port}"
                item["url"] = files.url(base, asset.location, asset.location_expires)
            else:
                item["b64_json"] = base64.b64encode(asset.data).decode("ascii")
            if revised:
                item["revised_prompt"] = revised
            data.append(item)
        return 200, {"created": int(time.time()), "data": data}

    async def _notify(self, job_id: str, url: str, tenant: str, outcome: dict[str, Any]) -> None:
        job = await self.store.load(job_id)
        if job is None:
            return

        async def attempted(attempt: int, error: str | None) -> None:
            await self.store.webhook_outcome(
                job_id, status="pending", attempts=attempt, error=error
            )

        if self._webhooks is None:  # production without a webhook secret
            error = "webhooks are not configured on this worker (GENGUARD_JOBS__WEBHOOK_SECRET)"
            await self.store.webhook_outcome(job_id, status="failed", attempts=0, error=error)
            return
        delivery = await self._webhooks.deliver(
            url, job_id=job_id, tenant=tenant, payload=job.view(outcome), on_attempt=attempted
        )
        await self.store.webhook_outcome(
            job_id,
            status="delivered" if delivery.delivered else "failed",
            attempts=delivery.attempts,
            error=delivery.error,
        )
        if not delivery.delivered:
            logger.warning("job %s: webhook failed after %d attempts", job_id, delivery.attempts)


def _job_params(job: JobRecord) -> dict[str, object]:
    params: dict[str, object] = {"job_id": job.id, "job_kind": job.kind.value}
    if job.webhook_url is not None:  # the host only: a URL may carry a token
        params["webhook_host"] = urlsplit(job.webhook_url).hostname
    return params


def _outcome(
    job: JobRecord, record: AuditRecord, http_status: int, body: dict[str, Any]
) -> dict[str, Any]:
    action = record.decision.action
    if action == "error":
        status = JobStatus.FAILED
    elif action == "block":
        status = JobStatus.BLOCKED
    else:
        status = JobStatus.SUCCEEDED
    return {
        "status": status.value,
        "http_status": http_status,
        "body": body,
        "record": record.model_dump(mode="json"),
    }
