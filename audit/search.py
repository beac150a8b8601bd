"""Investigations: filtered queries with cursor pagination, stats, export (JSONL / CSV).

Every query names one tenant (the routes and the CLI decide which a caller may name) and reads
only that tenant's indexes (``audit.index``), never a stream scan:

- a decision id: one HGET + one XRANGE;
- an output identifier (sha256 / PDQ / watermark id): its own sorted set, then the other
  filters are checked on the few records it holds;
- no facet filter: the tenant's time index, ``ZREVRANGEBYSCORE … LIMIT``;
- facet filters: day by day, newest first, one facet set or the intersection of several of that
  day (``ZINTERSTORE`` into a temporary key inside a script, so it stays atomic and is removed).

Results are newest first by record time; the cursor is ``<score>:<entry id>`` of the last
record returned, exclusive. Ties on the same millisecond are ordered by entry id.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, field_validator

from audit.errors import AuditError
from audit.index import (
    OUTPUT_KINDS,
    day_of,
    facets_of,
    outputs_of,
    parse_day,
    score_of,
)
from audit.query import get_by_decision_id
from audit.record import AuditRecord
from audit.stream import DEFAULT_PREFIX, AuditKeys, as_text, decode_entry, map_redis_errors

__all__ = [
    "AuditPage",
    "AuditQuery",
    "InvalidCursor",
    "StatsBucket",
    "export_records",
    "search",
    "stats",
]

# KEYS: temporary key, facet sets… ARGV: max, min, offset, count
_RANGE = """
local source = KEYS[2]
if #KEYS > 2 then
  local args = {KEYS[1], #KEYS - 1}
  for i = 2, #KEYS do args[#args + 1] = KEYS[i] end
  args[#args + 1] = 'AGGREGATE'
  args[#args + 1] = 'MAX'
  redis.call('ZINTERSTORE', unpack(args))
  source = KEYS[1]
end
local found = redis.call('ZREVRANGEBYSCORE', source, ARGV[1], ARGV[2], 'WITHSCORES',
                         'LIMIT', ARGV[3], ARGV[4])
if #KEYS > 2 then redis.call('DEL', KEYS[1]) end
return found
"""

FacetValue = Annotated[str, Field(min_length=1, max_length=200)]


class InvalidCursor(AuditError):
    """A pagination cursor that this API did not hand out."""


class AuditQuery(BaseModel):
    """Filters of one investigation (all given filters must hold)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant: str
    since: datetime | None = None
    until: datetime | None = None
    decision: FacetValue | None = None
    category: FacetValue | None = None
    stage: FacetValue | None = None
    classifier: FacetValue | None = None
    key_id: FacetValue | None = None
    route: FacetValue | None = None
    policy_revision: FacetValue | None = None
    error_code: FacetValue | None = None
    decision_id: FacetValue | None = None
    output_sha256: FacetValue | None = None
    output_pdq: FacetValue | None = None
    output_watermark: FacetValue | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 50
    cursor: str | None = None

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def facet_filters(self) -> dict[str, str]:
        pairs = {
            "decision": self.decision,
            "category": self.category,
            "stage": self.stage,
            "classifier": self.classifier,
            "key": self.key_id,
            "route": self.route,
            "policy": self.policy_revision,
            "error": self.error_code,
        }
        return {name: value for name, value in pairs.items() if value is not None}

    def output_filter(self) -> tuple[str, str] | None:
        for kind, value in zip(
            OUTPUT_KINDS,
            (self.output_sha256, self.output_pdq, self.output_watermark),
            strict=True,
        ):
            if value is not None:
                return kind, value
        return None

    def matches(self, record: AuditRecord) -> bool:
        """The filters checked on a loaded record (used where no index answers them all)."""
        if self.since is not None and record.timestamp < self.since:
            return False
        if self.until is not None and record.timestamp > self.until:
            return False
        facets = facets_of(record)
        if any(value not in facets.get(name, ()) for name, value in self.facet_filters().items()):
            return False
        outputs = outputs_of(record)
        return all(
            (kind, value) in outputs
            for kind, value in zip(
                OUTPUT_KINDS,
                (self.output_sha256, self.output_pdq, self.output_watermark),
                strict=True,
            )
            if value is not None
        )


class AuditPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    records: list[AuditRecord]
    next_cursor: str | None


class StatsBucket(BaseModel):
    model_config = ConfigDict(frozen=True)

    start: datetime
    decisions: dict[str, int]
    categories: dict[str, int]


def _cursor(score: int, entry_id: str) -> str:
    return f"{score}:{entry_id}"


def _parse_cursor(cursor: str) -> tuple[int, str]:
    score, _, entry_id = cursor.partition(":")
    if not score.isdigit() or not entry_id:
        raise InvalidCursor(f"invalid cursor {cursor!r}: pass back the next_cursor of a page")
    return int(score), entry_id


async def search(
    redis: aioredis.Redis, query: AuditQuery, *, prefix: str = DEFAULT_PREFIX
) -> AuditPage:
    """One page of ``query``'s records, newest first, and the cursor of the next page."""
    keys = AuditKeys.for_client(redis, prefix)
    if query.decision_id is not None:
        record = await get_by_decision_id(
            redis, query.decision_id, tenant=query.tenant, prefix=prefix
        )
        found = [record] if record is not None and query.matches(record) else []
        return AuditPage(records=found, next_cursor=None)
    newest = score_of(query.until) if query.until else None
    oldest = score_of(query.since) if query.since else 0
    after: tuple[int, str] | None = None
    if query.cursor is not None:
        after = _parse_cursor(query.cursor)
        newest = after[0] if newest is None else min(newest, after[0])
    ranger = _Ranger(redis, keys, query.tenant)
    hits: list[tuple[int, str, AuditRecord]] = []
    with map_redis_errors(f"query the audit records of {query.tenant!r}"):
        output = query.output_filter()
        facets = query.facet_filters()
        if output is not None:
            sources = [[keys.output(query.tenant, *output)]]
        elif not facets:
            sources = [[keys.time_index(query.tenant)]]
        else:
            days = await ranger.days(oldest, newest)
            sources = [
                [keys.facet(query.tenant, day, name, value) for name, value in facets.items()]
                for day in days
            ]
        for source in sources:
            need = query.limit + 1 - len(hits)
            async for score, entry_id, record in ranger.scan(source, oldest, newest, after):
                if output is not None and not query.matches(record):
                    continue
                hits.append((score, entry_id, record))
                need -= 1
                if need == 0:
                    break
            if len(hits) > query.limit:
                break
    page = hits[: query.limit]
    more = len(hits) > query.limit
    next_cursor = _cursor(page[-1][0], page[-1][1]) if more and page else None
    return AuditPage(records=[r for _, _, r in page], next_cursor=next_cursor)


class _Ranger:
    """Reads scored entry ids from one set (or an intersection) and loads their records."""

    batch: int = 200

    def __init__(self, redis: aioredis.Redis, keys: AuditKeys, tenant: str) -> None:
        self._redis = redis
        self._keys = keys
        self._tenant = tenant
        self._range = redis.register_script(_RANGE)

    async def days(self, oldest: int, newest: int | None) -> list[str]:
        newest_day = "+inf" if newest is None else score_of(parse_day(day_of_ms(newest)))
        oldest_day = score_of(parse_day(day_of_ms(oldest)))
        days = await self._redis.zrevrangebyscore(
            self._keys.days(self._tenant), newest_day, oldest_day
        )
        return [as_text(d) for d in days if isinstance(d, bytes | str)]

    async def scan(
        self, source: list[str], oldest: int, newest: int | None, after: tuple[int, str] | None
    ) -> AsyncIterator[tuple[int, str, AuditRecord]]:
        offset = 0
        top = "+inf" if newest is None else str(newest)
        while True:
            temporary = f"{self._keys.prefix}:tmp:{uuid.uuid4().hex}"
            flat = await self._range(
                keys=[temporary, *source], args=[top, oldest, offset, self.batch]
            )
            offset += len(flat) // 2
            pairs = [(as_text(flat[i]), int(float(flat[i + 1]))) for i in range(0, len(flat), 2)]
            if after is not None:  # same millisecond as the cursor: keep only those after it
                pairs = [
                    (m, s) for m, s in pairs if s < after[0] or (s == after[0] and m < after[1])
                ]
            records = await self._load([m for m, _ in pairs])
            for (entry_id, score), record in zip(pairs, records, strict=True):
                if record is not None:
                    yield score, entry_id, record
            if len(flat) // 2 < self.batch:
                return

    async def _load(self, entry_ids: list[str]) -> list[AuditRecord | None]:
        if not entry_ids:
            return []
        stream = self._keys.stream(self._tenant)
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in entry_ids:
                pipe.xrange(stream, min=entry_id, max=entry_id, count=1)
            replies = await pipe.execute()
        return [
            decode_entry(self._tenant, entry_id, entries[0][1]) if entries else None
            for entry_id, entries in zip(entry_ids, replies, strict=True)
        ]


def day_of_ms(score: int) -> str:
    return day_of(datetime.fromtimestamp(score / 1000, tz=UTC))


async def stats(
    redis: aioredis.Redis,
    tenant: str,
    *,
    since: datetime,
    until: datetime,
    bucket: Literal["hour", "day"] = "hour",
    prefix: str = DEFAULT_PREFIX,
) -> list[StatsBucket]:
    """Counts per decision and category in each hour (or day) from ``since`` to ``until``.

    Hour granularity: an hour is counted whole if it overlaps the range. Administrative records
    are not counted.
    """
    if until < since:
        raise ValueError("until must not be before since")
    if until - since > timedelta(days=400):
        raise ValueError("stats cover at most 400 days per call")
    keys = AuditKeys.for_client(redis, prefix)
    days: list[datetime] = []
    day = parse_day(day_of(since))
    while day <= until:
        days.append(day)
        day += timedelta(days=1)
    with map_redis_errors(f"read the audit stats of {tenant!r}"):
        async with redis.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hgetall(keys.stats(tenant, day.strftime("%Y%m%d")))
            replies = await pipe.execute()
    buckets: dict[datetime, StatsBucket] = {}
    first_hour = since.replace(minute=0, second=0, microsecond=0)
    for day, counters in zip(days, replies, strict=True):
        for raw_field, raw_count in (counters or {}).items():
            hour_text, kind, value = as_text(raw_field).split("|", 2)
            hour = day + timedelta(hours=int(hour_text))
            if not first_hour <= hour <= until:
                continue
            start = hour if bucket == "hour" else day
            entry = buckets.setdefault(start, StatsBucket(start=start, decisions={}, categories={}))
            counts = entry.decisions if kind == "decision" else entry.categories
            counts[value] = counts.get(value, 0) + int(as_text(raw_count))
    return [buckets[start] for start in sorted(buckets)]


async def export_records(
    redis: aioredis.Redis, query: AuditQuery, *, prefix: str = DEFAULT_PREFIX
) -> AsyncIterator[AuditRecord]:
    """Every record that matches ``query`` (its ``limit`` is the page size), newest first."""
    page_query = query
    while True:
        page = await search(redis, page_query, prefix=prefix)
        for record in page.records:
            yield record
        if page.next_cursor is None:
            return
        page_query = page_query.model_copy(update={"cursor": page.next_cursor})
