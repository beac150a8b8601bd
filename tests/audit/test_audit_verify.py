"""verify_chain finds every kind of tampering, on streams rewritten with real Redis commands."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from redis.asyncio import Redis

from audit import (
    AuditKeys,
    AuditRecord,
    RedisStreamAuditSink,
    canonical_json,
    compute_hash,
    verify_chain,
)

RecordFactory = Callable[..., AuditRecord]
Rewrite = Callable[[int, dict[bytes, bytes]], dict[bytes, bytes] | None]


async def fill(sink: RedisStreamAuditSink, make_record: RecordFactory, n: int) -> list[str]:
    return [await sink.append(make_record("acme")) for _ in range(n)]


async def rewrite_stream(client: Redis, stream: str, rewrite: Rewrite) -> None:
    """Streams are append-only, so "editing" means rebuilding: same entry ids, new fields."""
    entries = await client.xrange(stream)
    await client.delete(stream)
    for index, (entry_id, fields) in enumerate(entries):
        new_fields = rewrite(index, fields)
        if new_fields is not None:
            await client.xadd(stream, new_fields, id=entry_id)


def edit_record(fields: dict[bytes, bytes], edit: Callable[[dict[str, object]], None]) -> dict:
    payload = json.loads(fields[b"record"])
    edit(payload)
    return {b"record": json.dumps(payload).encode()}


async def test_untouched_chain_is_ok_and_empty_tenant_is_ok(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    await fill(sink, make_record, 10)
    report = await verify_chain(redis_client, "acme", prefix=prefix, batch_size=3)
    assert report.ok and report.problems == []
    assert report.records_checked == 10
    empty = await verify_chain(redis_client, "nobody", prefix=prefix)
    assert empty.ok and empty.records_checked == 0


async def test_edited_record_is_detected(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    entry_ids = await fill(sink, make_record, 8)

    def turn_allow_into_block(payload: dict[str, object]) -> None:
        payload["decision"] = {"action": "block", "reasons": []}

    await rewrite_stream(
        redis_client,
        AuditKeys(prefix).stream("acme"),
        lambda i, f: edit_record(f, turn_allow_into_block) if i == 4 else f,
    )

    report = await verify_chain(redis_client, "acme", prefix=prefix, batch_size=3)
    assert not report.ok
    assert [(p.entry_id, p.kind) for p in report.problems] == [(entry_ids[4], "edited")]
    assert report.records_checked == 8


async def test_edit_with_a_recomputed_hash_breaks_the_next_link(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    entry_ids = await fill(sink, make_record, 6)

    def forge(fields: dict[bytes, bytes]) -> dict[bytes, bytes]:
        record = AuditRecord.model_validate_json(fields[b"record"])
        forged = record.model_copy(update={"route": "/v1/moderations"})
        digest = compute_hash(forged.prev_hash, canonical_json(forged))
        return {b"record": forged.model_copy(update={"hash": digest}).to_stored_json().encode()}

    await rewrite_stream(
        redis_client, AuditKeys(prefix).stream("acme"), lambda i, f: forge(f) if i == 2 else f
    )

    report = await verify_chain(redis_client, "acme", prefix=prefix)
    assert [(p.entry_id, p.kind) for p in report.problems] == [
        (entry_ids[3], "deleted_or_reordered")
    ]


async def test_deleted_middle_and_first_records_are_detected(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    entry_ids = await fill(sink, make_record, 10)
    stream = AuditKeys(prefix).stream("acme")
    assert await redis_client.xdel(stream, entry_ids[5]) == 1
    assert await redis_client.xdel(stream, entry_ids[0]) == 1

    report = await verify_chain(redis_client, "acme", prefix=prefix, batch_size=4)
    assert [(p.entry_id, p.kind) for p in report.problems] == [
        (entry_ids[1], "deleted_or_reordered"),
        (entry_ids[6], "deleted_or_reordered"),
    ]
    assert report.records_checked == 8


async def test_reordered_records_are_detected(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    await fill(sink, make_record, 5)
    stream = AuditKeys(prefix).stream("acme")
    original = await redis_client.xrange(stream)
    swapped = {2: original[3][1], 3: original[2][1]}
    await rewrite_stream(redis_client, stream, lambda i, f: swapped.get(i, f))

    report = await verify_chain(redis_client, "acme", prefix=prefix)
    assert not report.ok
    assert {p.kind for p in report.problems} == {"deleted_or_reordered"}
    assert len(report.problems) == 3  # entries 2, 3 and 4 no longer follow their predecessor


async def test_deleting_the_newest_records_is_detected(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    entry_ids = await fill(sink, make_record, 6)
    await redis_client.xdel(AuditKeys(prefix).stream("acme"), entry_ids[4], entry_ids[5])

    report = await verify_chain(redis_client, "acme", prefix=prefix)
    assert [(p.entry_id, p.kind) for p in report.problems] == [(entry_ids[3], "truncated")]
    assert report.records_checked == 4


async def test_deleting_the_head_or_the_whole_stream_is_detected(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    keys = AuditKeys(prefix)
    await sink.append(make_record("acme"))
    await sink.append(make_record("globex"))
    await redis_client.delete(keys.head("acme"))
    await redis_client.delete(keys.stream("globex"))

    acme = await verify_chain(redis_client, "acme", prefix=prefix)
    globex = await verify_chain(redis_client, "globex", prefix=prefix)
    assert [(p.kind, p.detail) for p in acme.problems] == [("truncated", "the head key is missing")]
    assert [p.kind for p in globex.problems] == ["truncated"]
    assert globex.records_checked == 0


async def test_garbage_entries_are_reported_without_breaking_the_chain(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    stream = AuditKeys(prefix).stream("acme")
    await fill(sink, make_record, 2)
    garbage = [
        await redis_client.xadd(stream, {"record": "{not json"}),
        await redis_client.xadd(stream, {"something": "else"}),
        await redis_client.xadd(stream, {"record": "[1, 2]"}),
        await redis_client.xadd(stream, {"record": '{"decision_id": "x"}'}),
    ]
    await fill(sink, make_record, 2)
    garbage.append(await redis_client.xadd(stream, {"record": "NaN"}))

    report = await verify_chain(redis_client, "acme", prefix=prefix, batch_size=2)
    assert [(p.entry_id, p.kind) for p in report.problems] == [
        (entry_id.decode(), "unparseable") for entry_id in garbage
    ]
    assert report.records_checked == 9


async def test_appends_during_verification_raise_no_false_alarm(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    await fill(sink, make_record, 50)

    async def verify_repeatedly() -> list[tuple[bool, int]]:
        results = []
        for _ in range(10):
            report = await verify_chain(redis_client, "acme", prefix=prefix, batch_size=5)
            results.append((report.ok, report.records_checked))
            await asyncio.sleep(0)
        return results

    verdicts, _ = await asyncio.gather(verify_repeatedly(), fill(sink, make_record, 100))
    assert all(ok for ok, _ in verdicts), verdicts
    assert len({checked for _, checked in verdicts}) > 1, "verification never overlapped appends"
    final = await verify_chain(redis_client, "acme", prefix=prefix)
    assert final.ok and final.records_checked == 150


async def test_an_inserted_record_is_detected_where_it_was_inserted(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    await fill(sink, make_record, 8)
    stream = AuditKeys(prefix).stream("acme")
    entries = await redis_client.xrange(stream)
    previous = json.loads(entries[4][1][b"record"])
    forged = make_record("acme").linked(previous["hash"])  # a well-formed link after entry 4
    await redis_client.delete(stream)
    new_ids = []
    for index, (_, fields) in enumerate(entries):
        new_ids.append(await redis_client.xadd(stream, fields, id=f"1-{2 * index + 1}"))
        if index == 4:
            inserted = await redis_client.xadd(
                stream, {"record": forged.to_stored_json()}, id=f"1-{2 * index + 2}"
            )
    report = await verify_chain(redis_client, "acme", prefix=prefix)
    assert inserted is not None
    # the forged entry links correctly to its predecessor; the genuine record after it does not
    assert [(p.entry_id, p.kind) for p in report.problems] == [
        (new_ids[5].decode(), "deleted_or_reordered")
    ]
