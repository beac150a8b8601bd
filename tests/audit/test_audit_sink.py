"""RedisStreamAuditSink against a real redis-server: one entry per record, a valid chain under
concurrency (tasks of one sink, and two replicas on separate connections), unique decision ids."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from audit import (
    GENESIS_HASH,
    AuditKeys,
    AuditRecord,
    AuditSink,
    DuplicateDecision,
    RedisStreamAuditSink,
    count,
    verify_chain,
)

RecordFactory = Callable[..., AuditRecord]


async def stored_records(client: Redis, prefix: str, tenant: str) -> list[AuditRecord]:
    entries = await client.xrange(AuditKeys(prefix).stream(tenant))
    return [AuditRecord.model_validate_json(fields[b"record"]) for _, fields in entries]


async def test_one_entry_per_append_with_index_and_tenant_set(
    sink: RedisStreamAuditSink,
    redis_client: Redis,
    prefix: str,
    make_record: RecordFactory,
) -> None:
    records = [make_record("acme") for _ in range(3)]
    entry_ids = [await sink.append(record) for record in records]

    keys = AuditKeys(prefix)
    entries = await redis_client.xrange(keys.stream("acme"))
    assert [entry_id.decode() for entry_id, _ in entries] == entry_ids
    assert all(list(fields) == [b"record"] for _, fields in entries)
    for record, entry_id in zip(records, entry_ids, strict=True):
        location = await redis_client.hget(keys.ids, record.decision_id)
        assert location == f"acme {entry_id}".encode()
    assert await redis_client.smembers(keys.tenants) == {b"acme"}


async def test_records_are_linked_in_append_order(
    sink: RedisStreamAuditSink,
    redis_client: Redis,
    prefix: str,
    make_record: RecordFactory,
) -> None:
    originals = [make_record("acme") for _ in range(4)]
    for record in originals:
        await sink.append(record)

    stored = await stored_records(redis_client, prefix, "acme")
    assert [r.decision_id for r in stored] == [r.decision_id for r in originals]
    assert stored[0].prev_hash == GENESIS_HASH
    for previous, current in itertools.pairwise(stored):
        assert current.prev_hash == previous.hash
    assert await redis_client.get(AuditKeys(prefix).head("acme")) == stored[-1].hash.encode()
    # the stored record is the appended one plus its chain fields
    assert stored[1].model_copy(update={"prev_hash": "", "hash": ""}) == originals[1]


async def test_chain_verifies_over_many_records_and_tenants(
    sink: RedisStreamAuditSink,
    redis_client: Redis,
    prefix: str,
    make_record: RecordFactory,
) -> None:
    tenants = ["acme", "globex", "initech"]
    for _ in range(60):
        for tenant in tenants:
            await sink.append(make_record(tenant))

    for tenant in tenants:
        report = await verify_chain(redis_client, tenant, prefix=prefix, batch_size=7)
        assert report.ok, report.problems
        assert report.records_checked == 60
        assert await count(redis_client, tenant, prefix=prefix) == 60


async def test_twenty_concurrent_tasks_keep_one_valid_chain(
    sink: RedisStreamAuditSink,
    redis_client: Redis,
    prefix: str,
    make_record: RecordFactory,
) -> None:
    records = [make_record("acme") for _ in range(200)]

    async def worker(batch: list[AuditRecord]) -> list[str]:
        return [await sink.append(record) for record in batch]

    results = await asyncio.gather(*(worker(records[i::20]) for i in range(20)))

    entry_ids = [entry_id for batch in results for entry_id in batch]
    assert len(set(entry_ids)) == 200
    stored = await stored_records(redis_client, prefix, "acme")
    assert sorted(r.decision_id for r in stored) == sorted(r.decision_id for r in records)
    report = await verify_chain(redis_client, "acme", prefix=prefix)
    assert report.ok, report.problems
    assert report.records_checked == 200


async def test_two_replicas_on_separate_connections_keep_one_valid_chain(
    redis_client: Redis,
    clean_redis: str,
    prefix: str,
    make_record: RecordFactory,
) -> None:
    """Replica B runs in its own thread, event loop and connection pool, like another process."""
    per_replica, tasks = 150, 5
    records_a = [make_record("acme") for _ in range(per_replica)]
    records_b = [make_record("acme") for _ in range(per_replica)]

    async def run_replica(client: Redis, records: list[AuditRecord]) -> int:
        replica = RedisStreamAuditSink(client, prefix=prefix)

        async def worker(batch: list[AuditRecord]) -> None:
            for record in batch:
                await replica.append(record)

        await asyncio.gather(*(worker(records[i::tasks]) for i in range(tasks)))
        return replica.conflicts

    async def replica_b() -> int:
        client = Redis.from_url(clean_redis)
        try:
            return await run_replica(client, records_b)
        finally:
            await client.aclose()

    conflicts_a, conflicts_b = await asyncio.gather(
        run_replica(redis_client, records_a),
        asyncio.to_thread(asyncio.run, replica_b()),
    )

    assert conflicts_a + conflicts_b > 0, "the replicas never raced; the test proves nothing"
    stored = await stored_records(redis_client, prefix, "acme")
    assert sorted(r.decision_id for r in stored) == sorted(
        r.decision_id for r in records_a + records_b
    )
    report = await verify_chain(redis_client, "acme", prefix=prefix)
    assert report.ok, report.problems
    assert report.records_checked == 2 * per_replica


async def test_a_decision_id_is_audited_once(
    sink: RedisStreamAuditSink,
    redis_client: Redis,
    prefix: str,
    make_record: RecordFactory,
) -> None:
    record = make_record("acme", decision_id="dec-fixed")
    entry_id = await sink.append(record)
    with pytest.raises(DuplicateDecision, match=entry_id):
        await sink.append(record)
    with pytest.raises(DuplicateDecision):  # ids are unique across tenants too
        await sink.append(make_record("globex", decision_id="dec-fixed"))
    assert await count(redis_client, "acme", prefix=prefix) == 1
    assert await count(redis_client, "globex", prefix=prefix) == 0


async def test_sink_works_with_decoding_clients_and_a_restarted_replica(
    clean_redis: str, prefix: str, make_record: RecordFactory
) -> None:
    client = Redis.from_url(clean_redis, decode_responses=True)
    try:
        first: AuditSink = RedisStreamAuditSink(client, prefix=prefix)
        await first.append(make_record("acme"))
        # a new sink knows no head yet: it must pick up the chain from Redis, not restart it
        second: AuditSink = RedisStreamAuditSink(client, prefix=prefix)
        entry_id = await second.append(make_record("acme"))
        assert isinstance(entry_id, str)
        raw = await client.xrange(AuditKeys(prefix).stream("acme"), min=entry_id, max=entry_id)
        assert json.loads(raw[0][1]["record"])["prev_hash"] != GENESIS_HASH
        report = await verify_chain(client, "acme", prefix=prefix)
        assert report.ok, report.problems
        assert report.records_checked == 2
    finally:
        await client.aclose()
