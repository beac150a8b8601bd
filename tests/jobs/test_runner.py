"""The completion steps of ``JobRunner`` against real Redis and the real pipeline, in-process.

These cover the windows a SIGKILL can hit that ``test_jobs`` cannot aim at deterministically:
a worker that dies after committing a job's outcome but before appending its audit record, a
job delivered twice, two attempts racing to commit, and a job whose workers keep dying.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from gateway.jobs.model import JobRecord, JobStatus, parse_job_body
from gateway.jobs.runner import CapturingAuditSink, JobRunner
from gateway.jobs.store import JobQueue
from gateway.jobs.webhook import WebhookSender
from gateway.keys import Principal, Role
from gateway.lifespan import open_services
from gateway.settings import JobSettings, Settings
from tests.jobs.test_jobs import POLICY

TENANT = "runner-tenant"
PRINCIPAL = Principal(tenant=TENANT, key_id="key_runner", roles=frozenset({Role.CLIENT}))


@pytest.fixture(scope="module")
def settings(clean_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir: Path = tmp_path_factory.mktemp("runner")
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    return Settings(
        redis_url=clean_redis,
        data_dir=data_dir,
        policy_file=policy,
        workers=2,
        jobs=JobSettings(max_attempts=2),
    )


@pytest.fixture(scope="module")
async def runner(settings: Settings) -> AsyncIterator[JobRunner]:
    held: list[CapturingAuditSink] = []

    def capture(sink: Any) -> CapturingAuditSink:
        held.append(CapturingAuditSink(sink))
        return held[0]

    async with open_services(settings, request_sink=capture) as services:
        webhooks = WebhookSender(b"k" * 32, attempts=1, backoff_s=0.1, timeout_s=1.0)
        yield JobRunner(
            services,
            held[0],
            services.audit_sink,
            webhooks,
            worker="in-process",
            max_attempts=settings.jobs.max_attempts,
            result_ttl_s=settings.jobs.result_ttl_s,
        )
        await webhooks.aclose()


def _submit(settings: Settings, body: dict[str, Any]) -> JobRecord:
    assert settings.redis_url is not None
    connection = redis.Redis.from_url(settings.redis_url.get_secret_value())
    record = JobRecord.submitted(
        f"dec_{uuid.uuid4().hex}", PRINCIPAL, parse_job_body(body), time.time()
    )
    try:
        JobQueue(connection, settings.jobs).submit(record)
    finally:
        connection.close()
    return record


async def _records(settings: Settings, decision_id: str) -> list[dict[str, Any]]:
    assert settings.redis_url is not None
    client = Redis.from_url(settings.redis_url.get_secret_value())
    try:
        entries = await client.xrange(f"genguard:audit:stream:{TENANT}")
    finally:
        await client.aclose()
    records = [json.loads(fields[b"record"]) for _, fields in entries]
    return [r for r in records if r["decision_id"] == decision_id]


async def test_a_crash_between_commit_and_audit_is_completed_once(
    settings: Settings, runner: JobRunner
) -> None:
    job = _submit(settings, {"kind": "image", "prompt": "a kite", "size": "64x64"})
    committed = await runner.attempt(job)  # ... and the worker dies here
    assert committed is not None and committed["status"] == "succeeded"
    assert await _records(settings, job.id) == []  # committed, not yet audited
    stored = await runner.store.load(job.id)
    assert stored is not None and stored.status is JobStatus.RUNNING

    # the job comes back (RQ re-queues it): completed from the committed outcome, not re-run
    assert await runner.execute(job.id) is JobStatus.SUCCEEDED
    assert await runner.execute(job.id) is JobStatus.SUCCEEDED  # delivered twice: harmless
    records = await _records(settings, job.id)
    assert len(records) == 1
    assert records[0]["outputs"][0]["sha256"] == committed["record"]["outputs"][0]["sha256"]
    final = await runner.store.load(job.id)
    assert final is not None and final.status is JobStatus.SUCCEEDED and final.attempts == 1
    assert await runner.store.result(job.id) == committed


async def test_the_first_commit_wins_a_race(settings: Settings, runner: JobRunner) -> None:
    job = _submit(settings, {"kind": "image", "prompt": "a boat", "size": "64x64"})
    first = await runner.attempt(job)
    assert first is not None
    # a second copy of the job (a lease that ran out while the first still worked) commits late
    late = await runner.attempt(job)
    assert late == first
    assert await runner.execute(job.id) is JobStatus.SUCCEEDED
    assert len(await _records(settings, job.id)) == 1


async def test_a_job_whose_workers_keep_dying_fails_audited(
    settings: Settings, runner: JobRunner
) -> None:
    job = _submit(settings, {"kind": "image", "prompt": "a bridge", "size": "64x64"})
    for _ in range(settings.jobs.max_attempts):  # each attempt started, its worker lost
        await runner.store.start_attempt(job.id, "lost")
    assert await runner.execute(job.id) is JobStatus.FAILED
    result = await runner.store.result(job.id)
    assert result is not None and result["http_status"] == 500
    assert result["body"]["error"]["code"] == "job_attempts_exhausted"
    records = await _records(settings, job.id)
    assert len(records) == 1 and records[0]["error"]["code"] == "job_attempts_exhausted"


async def test_a_failing_webhook_is_recorded_and_the_result_kept(
    settings: Settings, runner: JobRunner
) -> None:
    body = {"kind": "image", "prompt": "a tree", "size": "64x64"}
    job = _submit(settings, {**body, "webhook_url": "http://127.0.0.1:9/unreachable"})
    assert await runner.execute(job.id) is JobStatus.SUCCEEDED
    stored = await runner.store.load(job.id)
    assert stored is not None
    view = stored.view(await runner.store.result(job.id))
    assert view["webhook"]["status"] == "failed" and view["webhook"]["attempts"] == 1
    assert view["webhook"]["last_error"]
    assert view["result"]["http_status"] == 200 and len(view["result"]["body"]["data"]) == 1
    assert len(await _records(settings, job.id)) == 1
