"""Policy store fixtures: a real Redis client and a fresh key prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from policies.versions import PolicyEvent, PolicyVersions


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"test-policy-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def events() -> list[PolicyEvent]:
    return []


@pytest.fixture
def versions(aredis: aioredis.Redis, prefix: str, events: list[PolicyEvent]) -> PolicyVersions:
    async def keep(event: PolicyEvent) -> None:
        events.append(event)

    return PolicyVersions(aredis, prefix=prefix, on_event=keep)
