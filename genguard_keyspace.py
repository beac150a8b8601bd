"""Redis key names that stay correct on Redis Cluster: one hash slot per store.

Lua scripts, MULTI/EXEC transactions and the audit chain touch several keys at once, and Redis
Cluster runs those only when all of the keys hash to one slot. Every store builds its key names
from one prefix (``genguard:audit``, ``genguard:policy``, ``genguard:review``, …);
``slot_prefix`` wraps that prefix in a hash tag (``{genguard:audit}``) when, and only when, the
client is a cluster client. So:

- on a single Redis or behind Sentinel the names are exactly what they always were: an existing
  deployment keeps its data without a migration;
- on a cluster every key of a store lands in one slot, so each store's atomic steps work
  unchanged; different stores land on different slots and so spread over the masters.

The cost is that one store (the audit log of all tenants, say) lives on one master of the
cluster; docs/operations.md ("Redis Sentinel and Cluster") says so.

``REDIS_UNAVAILABLE`` is the one list of exceptions that mean "Redis cannot serve this now"
(as opposed to a bad command): every store that falls back when Redis is down (audit sink →
spool, policy store → last good copy, key store → outage grace, readiness) catches exactly these.
Besides connection errors and timeouts it holds what a cluster raises while a master fails over
(``CLUSTERDOWN``, ``MASTERDOWN``, ``TRYAGAIN``, a ``MOVED``/``ASK`` storm that exhausts the
redirect budget, an uncovered slot, no reachable node) and ``READONLY`` (a demoted master).
"""

from __future__ import annotations

from redis import exceptions as redis_exceptions
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

__all__ = ["REDIS_CLIENT_UNAVAILABLE", "REDIS_UNAVAILABLE", "is_cluster", "slot_prefix"]

# what redis-py itself raises when Redis cannot serve (HTTP: 503 ``redis_unavailable``)
REDIS_CLIENT_UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis_exceptions.ConnectionError,  # includes BusyLoadingError (a node still loading)
    redis_exceptions.TimeoutError,
    redis_exceptions.ReadOnlyError,  # a master demoted to replica (Sentinel or cluster failover)
    redis_exceptions.ClusterError,  # CLUSTERDOWN, MASTERDOWN, "TTL exhausted" redirect budget
    redis_exceptions.TryAgainError,  # a slot mid-migration or mid-failover
    redis_exceptions.AskError,  # MOVED / ASK that outlived the client's redirect handling
    redis_exceptions.RedisClusterException,  # no node reachable, a slot not covered
)
# ... and socket errors that redis-py did not wrap (builtin ConnectionError, TimeoutError)
REDIS_UNAVAILABLE: tuple[type[BaseException], ...] = (*REDIS_CLIENT_UNAVAILABLE, OSError)


def is_cluster(redis: object) -> bool:
    """True for redis-py's cluster clients (async or sync)."""
    return isinstance(redis, AsyncRedisCluster | RedisCluster)


def slot_prefix(redis: object, prefix: str) -> str:
    """``prefix`` as the store's key prefix on ``redis``: hash-tagged on a cluster client."""
    if is_cluster(redis) and "{" not in prefix:
        return "{" + prefix + "}"
    return prefix
