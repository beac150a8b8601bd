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
"""

from __future__ import annotations

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

__all__ = ["is_cluster", "slot_prefix"]


def is_cluster(redis: object) -> bool:
    """True for redis-py's cluster clients (async or sync)."""
    return isinstance(redis, AsyncRedisCluster | RedisCluster)


def slot_prefix(redis: object, prefix: str) -> str:
    """``prefix`` as the store's key prefix on ``redis``: hash-tagged on a cluster client."""
    if is_cluster(redis) and "{" not in prefix:
        return "{" + prefix + "}"
    return prefix
