"""Audit fixtures: an async client on the session's real Redis, a private key prefix per test,
and a builder for valid records (prompt omitted unless a test asks for it)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from audit import (
    AuditRecord,
    DecisionRecord,
    InputRecord,
    MetricsRecord,
    PolicyRef,
    RedisStreamAuditSink,
    StageRecord,
)

RecordFactory = Callable[..., AuditRecord]

BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
async def redis_client(clean_redis: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(clean_redis)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    """Keys of each test live under their own prefix, so tests in a module never collide."""
    return f"test-audit:{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sink(redis_client: Redis, prefix: str) -> RedisStreamAuditSink:
    return RedisStreamAuditSink(redis_client, prefix=prefix)


@pytest.fixture
def make_record() -> RecordFactory:
    """``make_record(tenant)`` → a valid record; each call one second later than the last."""
    sequence = itertools.count()

    def make(
        tenant: str = "acme",
        *,
        action: str = "allow",
        decision_id: str | None = None,
        seconds: float | None = None,
    ) -> AuditRecord:
        n = next(sequence)
        offset = n if seconds is None else seconds
        return AuditRecord(
            decision_id=decision_id or f"dec-{uuid.uuid4().hex}",
            trace_id=f"trace-{n}",
            timestamp=BASE_TIME + timedelta(seconds=offset),
            tenant=tenant,
            key_id="key-1",
            route="/v1/images/generations",
            policy=PolicyRef(id="default", revision="rev-1"),
            input=InputRecord.from_prompt(
                f"prompt {n}", mode="omitted", params={"size": "512x512", "n": 1}
            ),
            stages=[
                StageRecord(
                    stage="prompt",
                    classifier="terms",
                    scores={"violence": 0.125},
                    evidence=[{"term": "knife", "span": [3, 8]}],
                    latency_ms=1.5,
                    verdict=action,
                )
            ],
            decision=DecisionRecord(action=action),
            metrics=MetricsRecord(total_ms=12.5, overhead_ms=2.5, upstream_ms=10.0),
        )

    return make
