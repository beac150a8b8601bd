"""Retention: remove a tenant's oldest records and leave a signed checkpoint in their place.

``trim(before=T)`` removes every entry of the tenant's stream older than T (by entry id) and
their index entries, after appending — through the sink, so it is itself chained — a checkpoint
record (route ``audit.checkpoint``) whose parameters say what went:

    first_kept_prev_hash  hash of the newest removed record = ``prev_hash`` of the first kept one
    removed_count, removed_through (entry id), removed_before (T)
    signature             HMAC-SHA256 over the fields above and the tenant, with the
                          operator's checkpoint key

``verify_chain`` then accepts a stream whose first entry does not start at genesis only if a
checkpoint in the chain carries a valid signature for exactly that ``prev_hash``. Without the
key, nobody can forge a checkpoint to hide a deletion; with a signature over the removed
range's last hash, the remaining chain stays verifiable end to end. Per-day stats counters are
aggregates without personal data and are kept.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, JsonValue

from audit.checkpoint import CHECKPOINT_ROUTE, checkpoint_signature
from audit.index import day_of, index_entries, parse_day, score_of
from audit.record import (
    AuditRecord,
    DecisionRecord,
    InputRecord,
    MetricsRecord,
    PolicyRef,
)
from audit.sink import RedisStreamAuditSink
from audit.stream import AuditKeys, as_text, decode_entry, map_redis_errors

__all__ = ["TrimResult", "trim"]

_BATCH = 500


class TrimResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    tenant: str
    removed: int
    checkpoint_decision_id: str | None


def _next_id(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq) + 1}"


async def trim(
    redis: aioredis.Redis,
    sink: RedisStreamAuditSink,
    tenant: str,
    *,
    before: datetime,
    key: bytes,
) -> TrimResult:
    """Remove ``tenant``'s entries older than ``before``; chain a signed checkpoint first."""
    keys = sink.keys
    stream = keys.stream(tenant)
    cutoff = f"({score_of(before)}-0"
    removed: list[tuple[str, AuditRecord]] = []
    with map_redis_errors(f"trim the audit records of {tenant!r}"):
        start = "-"
        while batch := await redis.xrange(stream, min=start, max=cutoff, count=_BATCH):
            for entry_id, fields in batch:
                name = as_text(entry_id or b"")
                removed.append((name, decode_entry(tenant, name, fields)))
            start = "(" + as_text(batch[-1][0] or b"")
    if not removed:
        return TrimResult(tenant=tenant, removed=0, checkpoint_decision_id=None)
    through, newest_removed = removed[-1]
    params: dict[str, JsonValue] = {
        "first_kept_prev_hash": newest_removed.hash,
        "removed_count": len(removed),
        "removed_through": through,
        "removed_before": before.astimezone(UTC).isoformat(),
    }
    signature = checkpoint_signature(
        key,
        tenant=tenant,
        first_kept_prev_hash=newest_removed.hash,
        removed_count=len(removed),
        removed_through=through,
        removed_before=str(params["removed_before"]),
    )
    checkpoint = AuditRecord(
        decision_id=f"chk_{uuid.uuid4().hex}",
        trace_id=uuid.uuid4().hex,
        timestamp=datetime.now(UTC),
        tenant=tenant,
        route=CHECKPOINT_ROUTE,
        policy=PolicyRef(id="-", revision="-"),
        input=InputRecord.from_prompt(
            "", mode="omitted", params={**params, "signature": signature}
        ),
        decision=DecisionRecord(action="allow"),
        metrics=MetricsRecord(total_ms=0.0, overhead_ms=0.0, upstream_ms=0.0),
    )
    await sink.append(checkpoint)
    with map_redis_errors(f"trim the audit records of {tenant!r}"):
        await redis.set(keys.checkpoint(tenant), json.dumps({**params, "signature": signature}))
        await redis.xtrim(stream, minid=_next_id(through), approximate=False)
        await _unindex(redis, keys, removed)
        kept_from = parse_day(day_of(before))
        await redis.zremrangebyscore(keys.days(tenant), "-inf", f"({score_of(kept_from)}")
    return TrimResult(
        tenant=tenant, removed=len(removed), checkpoint_decision_id=checkpoint.decision_id
    )


async def _unindex(
    redis: aioredis.Redis, keys: AuditKeys, removed: list[tuple[str, AuditRecord]]
) -> None:
    for offset in range(0, len(removed), _BATCH):
        async with redis.pipeline(transaction=False) as pipe:
            for entry_id, record in removed[offset : offset + _BATCH]:
                for sorted_set in index_entries(keys, record).sorted_sets:
                    pipe.zrem(sorted_set, entry_id)
                pipe.hdel(keys.ids, record.decision_id)
            await pipe.execute()
