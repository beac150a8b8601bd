"""Where jobs live in Redis, and the steps that make each job's outcome happen once.

Keys (one hash slot per job: the id is a hash tag)::

    genguard:jobs:{<id>}          hash   the job (``JobRecord.to_hash``): status, attempts, …
    genguard:jobs:{<id>}:result   string the outcome: HTTP status, body, and the audit record

The outcome is committed with ``SET NX`` before its audit record is appended, and the record is
stored inside it. So whichever worker commits first decides the one result; a worker that finds
a committed result (after a crash between commit and append, or racing a re-delivered copy of
the job) appends *that* record, and the audit sink refuses a second record with the same
decision id (``DuplicateDecision``). The job turns final only after its record is appended.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
import redis.asyncio as aioredis
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from gateway.jobs.model import JobKind, JobRecord, JobStatus
from gateway.settings import JobSettings

__all__ = ["JOB_FUNCTION", "JobQueue", "JobStore", "job_key", "result_key"]

PREFIX = "genguard:jobs"
JOB_FUNCTION = "gateway.jobs.worker.run_job"
"""What an RQ worker imports to run a job: ``run_job(job_id)`` (``gateway.jobs.worker``)."""


def job_key(job_id: str) -> str:
    return f"{PREFIX}:{{{job_id}}}"


def result_key(job_id: str) -> str:
    return f"{job_key(job_id)}:result"


class JobQueue:
    """The submit side (gateway replicas): store the job and enqueue it, in one transaction."""

    def __init__(self, connection: redis.Redis, settings: JobSettings) -> None:
        self._redis = connection
        self._settings = settings
        self._queues = {
            JobKind.IMAGE: Queue(
                settings.image_queue, connection=connection, serializer=JSONSerializer
            ),
            JobKind.SPEECH: Queue(
                settings.speech_queue, connection=connection, serializer=JSONSerializer
            ),
        }

    def submit(self, record: JobRecord) -> None:
        """Blocking (RQ is synchronous): call it from a thread."""
        s = self._settings
        with self._redis.pipeline(transaction=True) as pipe:
            self._queues[record.kind].enqueue_call(
                JOB_FUNCTION,
                args=(record.id,),
                job_id=record.id,
                timeout=s.timeout_s,
                result_ttl=0,  # the outcome is ours (``JobStore``), not RQ's
                failure_ttl=s.result_ttl_s,
                retry=Retry(max=s.max_attempts) if s.max_attempts > 1 else None,
                description=f"{record.kind.value} job of tenant {record.tenant}",
                pipeline=pipe,  # RQ opens the transaction (MULTI) on it
            )
            pipe.hset(job_key(record.id), mapping=record.to_hash())  # type: ignore[arg-type]
            pipe.expire(job_key(record.id), s.result_ttl_s)
            pipe.execute()

    def close(self) -> None:
        self._redis.close()


class JobStore:
    """The read and completion side (routes, workers), on the asyncio client."""

    def __init__(self, connection: aioredis.Redis, *, result_ttl_s: int) -> None:
        self._redis = connection
        self._ttl = result_ttl_s

    async def load(self, job_id: str) -> JobRecord | None:
        raw: dict[Any, Any] = await self._redis.hgetall(job_key(job_id))
        return JobRecord.from_hash(raw) if raw else None

    async def result(self, job_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(result_key(job_id))
        if raw is None:
            return None
        document: dict[str, Any] = json.loads(raw)
        return document

    async def start_attempt(self, job_id: str, worker: str) -> int:
        """Mark the job running on ``worker``; return the number of this attempt (1, 2, …)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(job_key(job_id), "attempts", 1)
            pipe.hset(
                job_key(job_id),
                mapping={
                    "status": JobStatus.RUNNING.value,
                    "worker": worker,
                    "started_at": repr(time.time()),
                },
            )
            attempts, _ = await pipe.execute()
        return int(attempts)

    async def commit(self, job_id: str, outcome: dict[str, Any]) -> bool:
        """Store the outcome unless one is stored already; True if this one won."""
        stored = await self._redis.set(
            result_key(job_id), json.dumps(outcome, separators=(",", ":")), nx=True, ex=self._ttl
        )
        return bool(stored)

    async def finish(self, job_id: str, status: JobStatus) -> None:
        """The job turns final (after its audit record is appended)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(job_key(job_id), "status", status.value)
            pipe.hsetnx(job_key(job_id), "finished_at", repr(time.time()))
            await pipe.execute()

    async def webhook_outcome(
        self, job_id: str, *, status: str, attempts: int, error: str | None
    ) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(job_key(job_id), "webhook_status", status)
            pipe.hset(job_key(job_id), "webhook_attempts", str(attempts))
            if error is None:
                pipe.hdel(job_key(job_id), "webhook_error")
            else:
                pipe.hset(job_key(job_id), "webhook_error", error[:500])
            await pipe.execute()
