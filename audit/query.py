"""Read audit records: newest first, by decision id, counts.

Tenant isolation: whenever ``tenant`` is given, only that tenant's stream is read, and a
decision id that belongs to another tenant is reported as not found (never as "forbidden", which
would confirm that it exists). ``tenant=None`` is for operators who may see every tenant.

Every query is bounded (COUNT on ranges, one entry by id), so none of them can stall a request.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from audit.errors import AuditRecordCorrupt
from audit.record import AuditRecord
from audit.stream import DEFAULT_PREFIX, AuditKeys, as_text, decode_entry, map_redis_errors

__all__ = ["count", "get_by_decision_id", "tail"]


async def tail(
    redis: aioredis.Redis,
    *,
    tenant: str | None,
    count: int = 20,
    prefix: str = DEFAULT_PREFIX,
) -> list[AuditRecord]:
    """The ``count`` newest records of ``tenant`` (stream order), or of all tenants by timestamp."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    keys = AuditKeys.for_client(redis, prefix)
    with map_redis_errors("read the newest audit records"):
        if tenant is not None:
            tenants = [tenant]
        else:
            tenants = sorted(as_text(t) for t in await redis.smembers(keys.tenants))
        async with redis.pipeline(transaction=False) as pipe:
            for name in tenants:
                pipe.xrevrange(keys.stream(name), count=count)
            replies = await pipe.execute()
    records = [
        decode_entry(name, as_text(entry_id), fields)
        for name, entries in zip(tenants, replies, strict=True)
        for entry_id, fields in entries or []
    ]
    if tenant is None:
        records.sort(key=lambda record: record.timestamp, reverse=True)  # stable: ties keep order
    return records[:count]


async def get_by_decision_id(
    redis: aioredis.Redis,
    decision_id: str,
    *,
    tenant: str | None,
    prefix: str = DEFAULT_PREFIX,
) -> AuditRecord | None:
    """The record of ``decision_id``; None if unknown, deleted, or owned by another tenant."""
    keys = AuditKeys.for_client(redis, prefix)
    with map_redis_errors(f"look up audit record {decision_id!r}"):
        location = await redis.hget(keys.ids, decision_id)
        if location is None:
            return None
        owner, _, entry_id = as_text(location).rpartition(" ")
        if tenant is not None and owner != tenant:
            return None
        entries = await redis.xrange(keys.stream(owner), min=entry_id, max=entry_id, count=1)
    if not entries:
        return None  # indexed but gone from the stream: verify_chain reports the deletion
    record = decode_entry(owner, entry_id, entries[0][1])
    if record.decision_id != decision_id or record.tenant != owner:
        raise AuditRecordCorrupt(
            f"index entry for {decision_id!r} points at {owner!r} {entry_id}, which holds "
            f"decision {record.decision_id!r} of tenant {record.tenant!r}"
        )
    return record


async def count(redis: aioredis.Redis, tenant: str, *, prefix: str = DEFAULT_PREFIX) -> int:
    """How many entries ``tenant``'s stream holds."""
    with map_redis_errors(f"count the audit records of {tenant!r}"):
        return int(await redis.xlen(AuditKeys.for_client(redis, prefix).stream(tenant)))
