"""Queries: newest first, merged across tenants, and tenants never see each other's records."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from audit import (
    AuditKeys,
    AuditRecord,
    AuditRecordCorrupt,
    RedisStreamAuditSink,
    count,
    get_by_decision_id,
    tail,
)

RecordFactory = Callable[..., AuditRecord]


async def append_all(sink: RedisStreamAuditSink, records: list[AuditRecord]) -> None:
    for record in records:
        await sink.append(record)


async def test_tail_of_one_tenant_is_newest_first_and_only_its_own(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    acme = [make_record("acme") for _ in range(5)]
    globex = [make_record("globex") for _ in range(3)]
    await append_all(sink, acme + globex)

    newest = await tail(redis_client, tenant="acme", count=3, prefix=prefix)
    assert [r.decision_id for r in newest] == [r.decision_id for r in acme[:1:-1]]
    assert {r.tenant for r in newest} == {"acme"}
    everything = await tail(redis_client, tenant="globex", count=100, prefix=prefix)
    assert [r.decision_id for r in everything] == [r.decision_id for r in reversed(globex)]
    assert await tail(redis_client, tenant="nobody", prefix=prefix) == []


async def test_tail_across_tenants_is_merged_by_timestamp(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    # appended tenant by tenant, but their timestamps interleave
    acme = [make_record("acme", seconds=s) for s in (1, 4, 5, 8)]
    globex = [make_record("globex", seconds=s) for s in (2, 3, 7)]
    initech = [make_record("initech", seconds=6)]
    await append_all(sink, acme + globex + initech)

    newest = await tail(redis_client, tenant=None, count=5, prefix=prefix)
    assert [r.timestamp.second for r in newest] == [8, 7, 6, 5, 4]
    assert [r.tenant for r in newest] == ["acme", "globex", "initech", "acme", "acme"]
    with pytest.raises(ValueError, match="count must be at least 1"):
        await tail(redis_client, tenant=None, count=0, prefix=prefix)


async def test_get_by_decision_id_honours_tenant_isolation(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    mine = make_record("acme", decision_id="dec-acme")
    theirs = make_record("globex", decision_id="dec-globex")
    await append_all(sink, [mine, theirs])

    own = await get_by_decision_id(redis_client, "dec-acme", tenant="acme", prefix=prefix)
    assert own is not None
    assert own.decision_id == "dec-acme" and own.tenant == "acme" and own.hash
    hidden = await get_by_decision_id(redis_client, "dec-globex", tenant="acme", prefix=prefix)
    assert hidden is None
    operator = await get_by_decision_id(redis_client, "dec-globex", tenant=None, prefix=prefix)
    assert operator is not None and operator.tenant == "globex"
    assert await get_by_decision_id(redis_client, "dec-unknown", tenant=None, prefix=prefix) is None


async def test_a_deleted_record_is_not_found_and_count_follows_the_stream(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    records = [make_record("acme") for _ in range(3)]
    await append_all(sink, records)
    assert await count(redis_client, "acme", prefix=prefix) == 3
    assert await count(redis_client, "nobody", prefix=prefix) == 0

    location = await redis_client.hget(AuditKeys(prefix).ids, records[1].decision_id)
    await redis_client.xdel(AuditKeys(prefix).stream("acme"), location.split()[-1])

    found = await get_by_decision_id(
        redis_client, records[1].decision_id, tenant="acme", prefix=prefix
    )
    assert found is None
    assert await count(redis_client, "acme", prefix=prefix) == 2


async def test_garbage_in_a_stream_is_reported_not_skipped(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    await sink.append(make_record("acme"))
    garbage_id = await redis_client.xadd(AuditKeys(prefix).stream("acme"), {"record": "{}"})

    with pytest.raises(AuditRecordCorrupt, match=garbage_id.decode()):
        await tail(redis_client, tenant="acme", prefix=prefix)


async def test_queries_work_with_a_decoding_client(
    clean_redis: str, prefix: str, make_record: RecordFactory
) -> None:
    client = Redis.from_url(clean_redis, decode_responses=True)
    try:
        record = make_record("acme")
        await RedisStreamAuditSink(client, prefix=prefix).append(record)
        newest = await tail(client, tenant=None, prefix=prefix)
        found = await get_by_decision_id(client, record.decision_id, tenant="acme", prefix=prefix)
        assert [r.decision_id for r in newest] == [record.decision_id]
        assert found is not None and found.decision_id == record.decision_id
    finally:
        await client.aclose()
