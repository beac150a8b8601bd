"""Redis down or slow: records spool, later records queue behind them, replay keeps the order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from audit import SPOOLED_PREFIX, AuditRecord, RedisStreamAuditSink, tail, verify_chain
from gateway.embedded_redis import EmbeddedRedis

RecordFactory = Callable[..., AuditRecord]


@pytest.fixture
async def silent_redis() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never answers: a hung Redis."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    server.close()


async def test_a_hung_redis_spools_within_the_write_timeout(
    silent_redis: str, tmp_path: Path, make_record: RecordFactory
) -> None:
    client = Redis.from_url(silent_redis, socket_timeout=30)
    sink = RedisStreamAuditSink(client, spool_path=tmp_path / "spool", write_timeout_s=0.2)
    record = make_record("acme")
    started = asyncio.get_running_loop().time()
    assert await sink.append(record) == SPOOLED_PREFIX + record.decision_id
    assert asyncio.get_running_loop().time() - started < 5
    assert sink.degraded
    await client.aclose(close_connection_pool=True)


async def test_outage_then_recovery_keeps_request_order_and_one_record_each(
    tmp_path: Path, make_record: RecordFactory
) -> None:
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True).start()
    client = Redis.from_url(server.url, socket_connect_timeout=0.5, socket_timeout=0.5)
    sink = RedisStreamAuditSink(client, spool_path=tmp_path / "spool", write_timeout_s=0.5)
    records = [make_record("acme") for _ in range(7)]
    try:
        await sink.append(records[0])
        server.stop()
        for record in records[1:4]:
            assert (await sink.append(record)).startswith(SPOOLED_PREFIX)
        server.start()
        # Redis is back, but earlier records are still spooled: this one queues behind them
        assert (await sink.append(records[4])).startswith(SPOOLED_PREFIX)
        assert await sink.replay_spool() == 4
        assert await sink.replay_spool() == 0  # idempotent: nothing left, nothing duplicated
        assert not sink.degraded
        for record in records[5:]:
            assert not (await sink.append(record)).startswith(SPOOLED_PREFIX)
        stored = await tail(client, tenant="acme", count=100)
        assert [r.decision_id for r in reversed(stored)] == [r.decision_id for r in records]
        assert (await verify_chain(client, "acme")).ok
    finally:
        await client.aclose()
        server.stop()


async def test_concurrent_appends_are_batched_into_one_valid_chain(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    records = [make_record("acme") for _ in range(300)]
    entry_ids = await asyncio.gather(*(sink.append(r) for r in records))
    assert len(set(entry_ids)) == 300
    report = await verify_chain(redis_client, "acme", prefix=prefix)
    assert report.ok and report.records_checked == 300
    stored = await tail(redis_client, tenant="acme", count=300, prefix=prefix)
    assert [r.decision_id for r in reversed(stored)] == [r.decision_id for r in records]
