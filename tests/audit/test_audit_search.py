"""Indexed investigations: facets, intersections, cursor pages, output hashes, stats, export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import timedelta

from redis.asyncio import Redis

from audit import AuditRecord, RedisStreamAuditSink, verify_chain
from audit.export import CSV_COLUMNS, csv_lines, jsonl_lines
from audit.record import OutputRecord, ReasonRecord, sha256_hex
from audit.search import AuditQuery, export_records, search, stats
from tests.audit.conftest import BASE_TIME

RecordFactory = Callable[..., AuditRecord]


def flagged(record: AuditRecord, action: str, *categories: str) -> AuditRecord:
    reasons = [
        ReasonRecord(stage="prompt", category=c, score=0.9, threshold=0.5, rule=f"{c}-terms")
        for c in categories
    ]
    return record.model_copy(
        update={
            "decision": record.decision.model_copy(update={"action": action, "reasons": reasons})
        }
    )


async def seed(sink: RedisStreamAuditSink, make_record: RecordFactory) -> list[AuditRecord]:
    """48 records of acme over two days (one per hour) + a few of globex."""
    records = []
    for hour in range(48):
        record = make_record("acme", seconds=hour * 3600)
        if hour % 4 == 0:
            record = flagged(record, "block", "sexual")
        elif hour % 4 == 1:
            record = flagged(record, "block", "violence")
        elif hour % 4 == 2:
            record = flagged(record, "flag", "sexual")
        records.append(record)
    for hour in range(3):
        records.append(flagged(make_record("globex", seconds=hour * 3600), "block", "sexual"))
    for record in records:
        await sink.append(record)
    return records


async def test_facet_intersection_by_day_returns_newest_first(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    records = await seed(sink, make_record)
    query = AuditQuery(
        tenant="acme",
        decision="block",
        category="sexual",
        since=BASE_TIME + timedelta(days=1),
        until=BASE_TIME + timedelta(days=2),
    )
    page = await search(redis_client, query, prefix=prefix)
    expected = [
        r.decision_id
        for r in reversed(records[:48])
        if r.decision.action == "block"
        and r.decision.reasons[0].category == "sexual"
        and r.timestamp >= BASE_TIME + timedelta(days=1)
    ]
    assert [r.decision_id for r in page.records] == expected
    assert len(expected) == 6
    assert all(r.tenant == "acme" for r in page.records)
    assert page.next_cursor is None


async def test_cursor_pages_cover_every_match_once_in_order(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    records = await seed(sink, make_record)
    for filters in ({}, {"category": "sexual"}, {"decision": "block", "category": "sexual"}):
        seen: list[str] = []
        query = AuditQuery(tenant="acme", limit=5, **filters)  # type: ignore[arg-type]
        while True:
            page = await search(redis_client, query, prefix=prefix)
            seen.extend(r.decision_id for r in page.records)
            if page.next_cursor is None:
                break
            query = query.model_copy(update={"cursor": page.next_cursor})
        wanted = [
            r for r in reversed(records[:48]) if AuditQuery(tenant="acme", **filters).matches(r)
        ]  # type: ignore[arg-type]
        assert seen == [r.decision_id for r in wanted], filters
        assert len(seen) == len(set(seen))


async def test_records_with_the_same_millisecond_are_paged_without_loss(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    same = [make_record("acme", seconds=5) for _ in range(7)]
    for record in same:
        await sink.append(record)
    query = AuditQuery(tenant="acme", limit=3)
    seen: list[str] = []
    while True:
        page = await search(redis_client, query, prefix=prefix)
        seen.extend(r.decision_id for r in page.records)
        if not page.next_cursor:
            break
        query = query.model_copy(update={"cursor": page.next_cursor})
    assert sorted(seen) == sorted(r.decision_id for r in same)


async def test_find_the_request_that_produced_an_output_and_by_decision_id(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    digest = sha256_hex(b"image bytes")
    produced = make_record("acme").model_copy(
        update={
            "outputs": [
                OutputRecord(
                    sha256=digest, mime_type="image/png", pdq="ab" * 32, watermark_id="wm-42"
                )
            ]
        }
    )
    other = make_record("acme")
    for record in (produced, other, make_record("globex")):
        await sink.append(record)
    for query in (
        AuditQuery(tenant="acme", output_sha256=digest),
        AuditQuery(tenant="acme", output_pdq="ab" * 32),
        AuditQuery(tenant="acme", output_watermark="wm-42"),
        AuditQuery(tenant="acme", decision_id=produced.decision_id),
    ):
        page = await search(redis_client, query, prefix=prefix)
        assert [r.decision_id for r in page.records] == [produced.decision_id], query
    other_tenant = await search(
        redis_client, AuditQuery(tenant="globex", output_sha256=digest), prefix=prefix
    )
    assert other_tenant.records == []
    by_id_elsewhere = await search(
        redis_client, AuditQuery(tenant="globex", decision_id=produced.decision_id), prefix=prefix
    )
    assert by_id_elsewhere.records == []


async def test_stats_count_decisions_and_categories_per_hour_and_day(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    await seed(sink, make_record)
    days = await stats(
        redis_client,
        "acme",
        since=BASE_TIME,
        until=BASE_TIME + timedelta(days=2) - timedelta(seconds=1),
        bucket="day",
        prefix=prefix,
    )
    assert [b.start for b in days] == [BASE_TIME, BASE_TIME + timedelta(days=1)]
    for bucket in days:
        assert bucket.decisions == {"block": 12, "flag": 6, "allow": 6}
        assert bucket.categories == {"sexual": 12, "violence": 6}
    hours = await stats(
        redis_client,
        "acme",
        since=BASE_TIME + timedelta(hours=2),
        until=BASE_TIME + timedelta(hours=3, minutes=30),
        prefix=prefix,
    )
    assert [(b.start.hour, b.decisions, b.categories) for b in hours] == [
        (2, {"flag": 1}, {"sexual": 1}),
        (3, {"allow": 1}, {}),
    ]


async def test_export_jsonl_reverifies_and_csv_has_one_row_per_record(
    sink: RedisStreamAuditSink, redis_client: Redis, prefix: str, make_record: RecordFactory
) -> None:
    records = await seed(sink, make_record)
    query = AuditQuery(tenant="acme", category="violence", limit=4)
    lines = [line async for line in jsonl_lines(export_records(redis_client, query, prefix=prefix))]
    exported = [json.loads(line) for line in lines]
    assert len(exported) == 12
    assert {r["decision_id"] for r in exported} == {
        r.decision_id
        for r in records[:48]
        if r.decision.reasons and r.decision.reasons[0].category == "violence"
    }
    assert all(AuditRecord.model_validate(r).hash == r["hash"] for r in exported)
    text = "".join(
        [line async for line in csv_lines(export_records(redis_client, query, prefix=prefix))]
    )
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 13
    assert {row[CSV_COLUMNS.index("categories")] for row in rows[1:]} == {"violence"}
    assert (await verify_chain(redis_client, "acme", prefix=prefix)).ok
