"""What a record is indexed under, so that investigations never scan a stream.

A record of tenant T on UTC day D is added (by the append script, atomically with the entry) to

- T's time index (every record, scored by its timestamp in ms);
- one sorted set per facet value of that day: ``decision``, ``category`` (of the decision's
  reasons), ``stage`` (stages that gave a reason or failed), ``classifier`` (that ran), ``key``,
  ``route``, ``policy`` (revision) and ``error`` (code);
- one sorted set per output identifier (``sha256``, ``pdq``, ``watermark``), across days;
- T's per-day stats hash: ``HH|decision|<action>`` and ``HH|category|<category>`` counters.

"decision=block + category=sexual on 2025-01-02" is then the intersection of two sets of that
day only, however many records the tenant has in total. Administrative records (routes starting
with ``admin.``, retention checkpoints) are indexed but not counted in the stats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from audit.record import AuditRecord
from audit.stream import AuditKeys

__all__ = [
    "FACETS",
    "OUTPUT_KINDS",
    "IndexEntries",
    "day_of",
    "days_between",
    "facets_of",
    "index_entries",
    "is_administrative",
    "outputs_of",
    "parse_day",
    "score_of",
]

FACETS = ("decision", "category", "stage", "classifier", "key", "route", "policy", "error")
OUTPUT_KINDS = ("sha256", "pdq", "watermark")


def score_of(when: datetime) -> int:
    """Sorted-set score of a timestamp: milliseconds since the epoch."""
    return int(when.timestamp() * 1000)


def day_of(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%d")


def parse_day(day: str) -> datetime:
    return datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC)


def days_between(since: datetime, until: datetime) -> list[str]:
    """UTC days from ``until`` back to ``since``, newest first."""
    day = parse_day(day_of(until))
    first = parse_day(day_of(since))
    days = []
    while day >= first:
        days.append(day.strftime("%Y%m%d"))
        day -= timedelta(days=1)
    return days


def is_administrative(record: AuditRecord) -> bool:
    return record.route.startswith(("admin.", "audit."))


def facets_of(record: AuditRecord) -> dict[str, set[str]]:
    """Facet name -> the values ``record`` is indexed under (empty sets are left out)."""
    reasons = record.decision.reasons
    facets: dict[str, set[str]] = {
        "decision": {record.decision.action},
        "category": {r.category for r in reasons},
        "stage": {r.stage for r in reasons} | {s.stage for s in record.stages if s.error},
        "classifier": {s.classifier for s in record.stages if s.classifier},
        "key": {record.key_id} if record.key_id else set(),
        "route": {record.route},
        "policy": {record.policy.revision},
        "error": {record.error.code} if record.error else set(),
    }
    return {name: values for name, values in facets.items() if values}


def outputs_of(record: AuditRecord) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for output in record.outputs:
        found.add(("sha256", output.sha256))
        if output.pdq:
            found.add(("pdq", output.pdq))
        if output.watermark_id:
            found.add(("watermark", output.watermark_id))
    return found


@dataclass(frozen=True, slots=True)
class IndexEntries:
    """Keys and arguments the append script needs to index one record."""

    sorted_sets: list[str]  # the time index first; entry id added to each with ``score``
    days_key: str
    day: str
    day_score: int
    stats_key: str
    stats_fields: list[str]
    score: int


def index_entries(keys: AuditKeys, record: AuditRecord) -> IndexEntries:
    tenant, day = record.tenant, day_of(record.timestamp)
    sets = [keys.time_index(tenant)]
    for facet, values in sorted(facets_of(record).items()):
        sets.extend(keys.facet(tenant, day, facet, value) for value in sorted(values))
    sets.extend(keys.output(tenant, kind, value) for kind, value in sorted(outputs_of(record)))
    stats: list[str] = []
    if not is_administrative(record):
        hour = record.timestamp.strftime("%H")
        stats.append(f"{hour}|decision|{record.decision.action}")
        stats.extend(f"{hour}|category|{c}" for c in sorted(facets_of(record).get("category", ())))
    return IndexEntries(
        sorted_sets=sets,
        days_key=keys.days(tenant),
        day=day,
        day_score=score_of(parse_day(day)),
        stats_key=keys.stats(tenant, day),
        stats_fields=stats,
        score=score_of(record.timestamp),
    )
