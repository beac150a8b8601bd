"""Retention: old records removed, a signed checkpoint keeps the rest of the chain verifiable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from redis.asyncio import Redis

from audit import AuditKeys, AuditRecord, RedisStreamAuditSink, count, verify_chain
from audit.retention import trim
from audit.search import AuditQuery, search

RecordFactory = Callable[..., AuditRecord]
KEY = bytes(range(32))


async def redis_now(client: Redis) -> datetime:
    seconds, micros = await client.time()
    return datetime.fromtimestamp(seconds + micros / 1e6, tz=UTC)


async def append_then_cut(
    sink: RedisStreamAuditSink, client: Redis, make_record: RecordFactory, old: int, new: int
) -> tuple[list[AuditRecord], datetime]:
    records = [make_record("acme") for _ in range(old + new)]
    for record in records[:old]:
        await sink.append(record)
    await asyncio.sleep(0.01)
    cutoff = await redis_now(client)
    await asyncio.sleep(0.01)
    for record in records[old:]:
        await sink.append(record)
    return records, cutoff


async def test_trimmed_chain_verifies_with_the_key_and_the_gap_is_signed(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    records, cutoff = await append_then_cut(sink, redis_client, make_record, 6, 4)
    result = await trim(redis_client, sink, "acme", before=cutoff, key=KEY)
    assert result.removed == 6
    assert await count(redis_client, "acme", prefix=prefix) == 5  # 4 kept + the checkpoint
    report = await verify_chain(redis_client, "acme", prefix=prefix, checkpoint_key=KEY)
    assert report.ok, report.problems
    remaining = await search(redis_client, AuditQuery(tenant="acme", limit=100), prefix=prefix)
    kept_ids = {r.decision_id for r in remaining.records}
    assert {r.decision_id for r in records[6:]} <= kept_ids
    assert not kept_ids & {r.decision_id for r in records[:6]}
    assert await redis_client.hget(AuditKeys(prefix).ids, records[0].decision_id) is None
    # a second retention run leaves a second checkpoint; the chain still verifies
    await asyncio.sleep(0.01)
    second_cut = await redis_now(redis_client)
    await sink.append(make_record("acme"))
    assert (await trim(redis_client, sink, "acme", before=second_cut, key=KEY)).removed == 5
    assert (await verify_chain(redis_client, "acme", prefix=prefix, checkpoint_key=KEY)).ok


async def test_a_checkpoint_does_not_verify_without_or_with_the_wrong_key(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    _, cutoff = await append_then_cut(sink, redis_client, make_record, 3, 2)
    await trim(redis_client, sink, "acme", before=cutoff, key=KEY)
    for key in (None, b"another key"):
        report = await verify_chain(redis_client, "acme", prefix=prefix, checkpoint_key=key)
        assert [p.kind for p in report.problems] == ["deleted_or_reordered", "bad_checkpoint"]


async def test_deleting_old_records_without_a_checkpoint_is_still_detected(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    _, cutoff = await append_then_cut(sink, redis_client, make_record, 3, 2)
    stream = AuditKeys(prefix).stream("acme")
    minid = f"{int(cutoff.timestamp() * 1000)}-0"
    assert await redis_client.xtrim(stream, minid=minid, approximate=False) == 3
    report = await verify_chain(redis_client, "acme", prefix=prefix, checkpoint_key=KEY)
    assert [p.kind for p in report.problems] == ["deleted_or_reordered"]
