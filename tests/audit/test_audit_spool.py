"""Redis down: records go to the local spool (nothing lost) and replay into the real Redis."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from audit import (
    SPOOLED_PREFIX,
    AuditError,
    AuditRecord,
    AuditUnavailable,
    RedisStreamAuditSink,
    count,
    get_by_decision_id,
    tail,
    verify_chain,
)
from gateway.embedded_redis import free_port

RecordFactory = Callable[..., AuditRecord]


@pytest.fixture
async def dead_redis() -> AsyncIterator[Redis]:
    """A client for a loopback port nobody listens on."""
    client = Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5, socket_timeout=0.5
    )
    yield client
    await client.aclose()


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.spool"


def read(path: Path) -> bytes:
    return path.read_bytes()


def write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


async def spool_records(dead_redis: Redis, spool_path: Path, records: list[AuditRecord]) -> None:
    sink = RedisStreamAuditSink(dead_redis, spool_path=spool_path)
    for record in records:
        assert await sink.append(record) == SPOOLED_PREFIX + record.decision_id


async def test_unreachable_redis_spools_every_record(
    dead_redis: Redis, spool_path: Path, make_record: RecordFactory
) -> None:
    records = [make_record("acme"), make_record("globex"), make_record("acme")]
    await spool_records(dead_redis, spool_path, records)

    lines = read(spool_path).decode().splitlines()
    assert [json.loads(line)["decision_id"] for line in lines] == [r.decision_id for r in records]
    assert all("hash" not in json.loads(line) for line in lines)
    assert all("prev_hash" not in json.loads(line) for line in lines)
    assert AuditRecord.model_validate_json(lines[1]) == records[1]


async def test_unreachable_redis_without_spool_raises(
    dead_redis: Redis, make_record: RecordFactory
) -> None:
    sink = RedisStreamAuditSink(dead_redis)
    with pytest.raises(AuditUnavailable, match="Redis unavailable") as caught:
        await sink.append(make_record("acme"))
    assert isinstance(caught.value, AuditError)
    assert await sink.replay_spool() == 0


async def test_replay_links_spooled_records_into_the_real_redis(
    dead_redis: Redis,
    redis_client: Redis,
    prefix: str,
    spool_path: Path,
    make_record: RecordFactory,
) -> None:
    live = RedisStreamAuditSink(redis_client, prefix=prefix, spool_path=spool_path)
    await live.append(make_record("acme"))  # the chain already has a record before the outage
    spooled = [make_record("acme") for _ in range(4)] + [make_record("globex")]
    await spool_records(dead_redis, spool_path, spooled)

    assert await live.replay_spool() == 5

    assert read(spool_path) == b""
    assert await count(redis_client, "acme", prefix=prefix) == 5
    assert await count(redis_client, "globex", prefix=prefix) == 1
    for tenant in ("acme", "globex"):
        report = await verify_chain(redis_client, tenant, prefix=prefix)
        assert report.ok, report.problems
    newest_first = await tail(redis_client, tenant="acme", count=4, prefix=prefix)
    assert [r.decision_id for r in newest_first] == [r.decision_id for r in spooled[3::-1]]
    found = await get_by_decision_id(
        redis_client, spooled[4].decision_id, tenant="globex", prefix=prefix
    )
    assert found is not None
    assert found.model_copy(update={"prev_hash": "", "hash": ""}) == spooled[4]
    assert await live.replay_spool() == 0  # nothing left; safe to call periodically


async def test_replay_while_redis_is_still_down_keeps_the_spool(
    dead_redis: Redis, spool_path: Path, make_record: RecordFactory
) -> None:
    await spool_records(dead_redis, spool_path, [make_record("acme"), make_record("acme")])
    before = read(spool_path)

    sink = RedisStreamAuditSink(dead_redis, spool_path=spool_path)
    with pytest.raises(AuditUnavailable):
        await sink.replay_spool()
    assert read(spool_path) == before


async def test_interrupted_replay_does_not_duplicate_records(
    dead_redis: Redis,
    redis_client: Redis,
    prefix: str,
    spool_path: Path,
    make_record: RecordFactory,
) -> None:
    records = [make_record("acme") for _ in range(4)]
    await spool_records(dead_redis, spool_path, records)
    spooled_lines = read(spool_path)
    live = RedisStreamAuditSink(redis_client, prefix=prefix, spool_path=spool_path)
    assert await live.replay_spool() == 4
    # as if the replay had died before truncating, and one more record was spooled since
    late = make_record("acme")
    write(spool_path, spooled_lines)
    await spool_records(dead_redis, spool_path, [late])

    assert await live.replay_spool() == 1

    assert await count(redis_client, "acme", prefix=prefix) == 5
    report = await verify_chain(redis_client, "acme", prefix=prefix)
    assert report.ok, report.problems


async def test_a_torn_line_is_set_aside_not_lost_and_not_blocking(
    dead_redis: Redis,
    redis_client: Redis,
    prefix: str,
    spool_path: Path,
    make_record: RecordFactory,
) -> None:
    first, second = make_record("acme"), make_record("acme")
    await spool_records(dead_redis, spool_path, [first])
    write(spool_path, read(spool_path) + b'{"decision_id": "torn-by-a-cra\n')
    await spool_records(dead_redis, spool_path, [second])

    live = RedisStreamAuditSink(redis_client, prefix=prefix, spool_path=spool_path)
    assert await live.replay_spool() == 2

    rejected = spool_path.with_name(spool_path.name + ".rejected")
    assert read(rejected) == b'{"decision_id": "torn-by-a-cra\n'
    assert read(spool_path) == b""
    assert await count(redis_client, "acme", prefix=prefix) == 2


async def test_a_spool_that_cannot_be_written_is_reported(
    dead_redis: Redis, tmp_path: Path, make_record: RecordFactory
) -> None:
    sink = RedisStreamAuditSink(dead_redis, spool_path=tmp_path / "missing-dir" / "audit.spool")
    with pytest.raises(AuditUnavailable, match="spooling failed too"):
        await sink.append(make_record("acme"))
