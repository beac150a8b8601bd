"""API-key verification cache: verified keys skip Redis for ``cache_s``; revocation is immediate
in the revoking process and reaches other processes when their cache entry expires."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.keys import ApiKeyStore, InvalidKey, Role


@pytest.fixture
async def redis_client(clean_redis: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(clean_redis)
    yield client
    await client.aclose()


async def test_cached_key_needs_no_round_trip(redis_client: Redis) -> None:
    store = ApiKeyStore(redis_client, prefix="test:keycache:a", cache_s=300)
    key, info = await store.create(tenant="acme", roles=frozenset({Role.CLIENT}))
    first = await store.authenticate(key)
    await redis_client.delete(f"test:keycache:a:{info.key_id}")  # Redis forgets the key …
    assert await store.authenticate(key) == first  # … the cache still vouches for it
    with pytest.raises(InvalidKey):  # a wrong secret for the same id is never cached
        await store.authenticate(key[:-4] + "AAAA")


async def test_revocation_is_immediate_here_and_bounded_elsewhere(redis_client: Redis) -> None:
    prefix = "test:keycache:b"
    here = ApiKeyStore(redis_client, prefix=prefix, cache_s=300)
    other_replica = ApiKeyStore(redis_client, prefix=prefix, cache_s=300)
    uncached = ApiKeyStore(redis_client, prefix=prefix, cache_s=0)
    key, info = await here.create(tenant="acme", roles=frozenset({Role.CLIENT}))
    for store in (here, other_replica, uncached):
        await store.authenticate(key)
    await here.revoke(info.key_id)
    with pytest.raises(InvalidKey, match="revoked"):
        await here.authenticate(key)
    with pytest.raises(InvalidKey, match="revoked"):
        await uncached.authenticate(key)
    # another process keeps its verified entry until cache_s runs out (documented trade-off)
    assert (await other_replica.authenticate(key)).key_id == info.key_id
