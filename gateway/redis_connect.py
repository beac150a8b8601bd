"""The one place GenGuard makes Redis clients: one node, Sentinel, or Cluster, by settings.

- ``GENGUARD_REDIS_URL=redis://…`` (or ``rediss://`` for TLS): one Redis server.
- ``GENGUARD_REDIS_SENTINELS=host:port,…`` with ``GENGUARD_REDIS_SENTINEL_MASTER=name``: the
  master that the sentinels name, found again after a failover (redis-py's
  ``SentinelConnectionPool`` asks the sentinels on every new connection, and a connection that
  finds its server demoted to replica is dropped). ``GENGUARD_REDIS_PASSWORD`` authenticates to
  the master and ``GENGUARD_REDIS_SENTINEL_PASSWORD`` to the sentinels.
- ``GENGUARD_REDIS_CLUSTER=true`` with ``GENGUARD_REDIS_URL`` naming any node: a Redis Cluster
  (redis-py's ``RedisCluster``, which learns the slot map from that node). Stores hash-tag their
  key prefixes on a cluster client so each store's scripts and transactions stay in one slot
  (``genguard_keyspace``).

The clients are typed as ``redis.asyncio.Redis`` for the stores: ``RedisCluster`` offers the
same commands, scripts, pipelines (transactions within one slot) and pub/sub that they use, and
the cluster tests in ``tests/redis_ha`` run the gateway on one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ClusterDownError

from gateway.settings import Settings, sentinel_addresses
from genguard_keyspace import is_cluster

__all__ = ["check_redis", "connect_redis", "describe_redis"]


@asynccontextmanager
async def connect_redis(
    settings: Settings, *, url: str | None = None, socket_timeout: float | None = 10.0
) -> AsyncIterator[Redis]:
    """A client for the configured Redis, or for ``url`` (one node, e.g. the embedded Redis).

    Nothing is sent on entry (a Redis that is down is noticed by the first command); the client
    and, with Sentinel, the sentinel connections are closed on exit.
    """
    options: dict[str, Any] = {"socket_timeout": socket_timeout}
    if url is not None:
        client = Redis.from_url(url, **options)
        try:
            yield client
        finally:
            await client.aclose()
        return
    if settings.redis_sentinels is not None:
        assert settings.redis_sentinel_master is not None  # settings validation
        sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            sentinel_addresses(settings.redis_sentinels),
            sentinel_kwargs={**options, "password": _secret(settings.redis_sentinel_password)},
            password=_secret(settings.redis_password),
            **options,
        )
        client = sentinel.master_for(settings.redis_sentinel_master)
        try:
            yield client
        finally:
            await client.aclose()
            await sentinel.aclose()
        return
    if settings.redis_url is None:
        raise ValueError("no Redis configured: set GENGUARD_REDIS_URL or GENGUARD_REDIS_SENTINELS")
    target = settings.redis_url.get_secret_value()
    if settings.redis_cluster:
        cluster = RedisCluster.from_url(target, **options)
        try:
            # the stores take ``Redis``; RedisCluster answers every command they send
            yield cast(Redis, cluster)
        finally:
            await cluster.aclose()
        return
    client = Redis.from_url(target, **options)
    try:
        yield client
    finally:
        await client.aclose()


async def check_redis(redis: Redis) -> None:
    """Raise unless ``redis`` can serve the gateway now (for /readyz).

    One node or Sentinel: a ``PING``. A cluster: ``PING`` answers even while the cluster refuses
    every key command (a master failed and no replica took over yet), so the node's own view of
    the cluster must say ``cluster_state:ok`` too.
    """
    await redis.ping()
    if is_cluster(redis):
        info = await cast(RedisCluster, redis).cluster_info()
        state = info.get("cluster_state") if isinstance(info, dict) else None
        if state not in ("ok", b"ok"):
            raise ClusterDownError(f"cluster_state is {state!r}")


def describe_redis(settings: Settings) -> str:
    """Where the configured Redis is, for logs: never a password."""
    if settings.redis_sentinels is not None:
        return (
            f"Redis master {settings.redis_sentinel_master!r} via Sentinel "
            f"{settings.redis_sentinels}"
        )
    if settings.redis_url is None:
        return "embedded Redis"
    kind = "Redis Cluster (seed node)" if settings.redis_cluster else "Redis"
    return f"{kind} {_without_password(settings.redis_url.get_secret_value())}"


def _secret(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user + ':' if user else ''}***@{host}"
