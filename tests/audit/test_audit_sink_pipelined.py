"""The sink's pipelined group commit sends bare EVALSHAs (no ``SCRIPT EXISTS`` per batch) and
recovers when Redis has forgotten the link script (a restart or ``SCRIPT FLUSH``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from redis.asyncio import Redis

from audit import AuditRecord, RedisStreamAuditSink, verify_chain

RecordFactory = Callable[..., AuditRecord]


async def test_concurrent_batches_survive_a_flushed_script_cache(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    await asyncio.gather(*(sink.append(make_record("acme")) for _ in range(20)))
    await redis_client.script_flush()
    ids = await asyncio.gather(*(sink.append(make_record("acme")) for _ in range(20)))
    assert len(set(ids)) == 20
    report = await verify_chain(redis_client, "acme", prefix=prefix)
    assert report.ok, report
    assert report.records_checked == 40
