"""Export formats: JSON lines (the stored, verifiable form) and CSV (one flat row per record)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

from audit.record import AuditRecord

__all__ = ["CSV_COLUMNS", "csv_lines", "jsonl_lines"]

CSV_COLUMNS = (
    "timestamp",
    "decision_id",
    "tenant",
    "key_id",
    "route",
    "policy_id",
    "policy_revision",
    "action",
    "shadow_action",
    "categories",
    "reasons",
    "output_sha256",
    "watermark_ids",
    "prompt_mode",
    "prompt_sha256",
    "prompt",
    "error_code",
    "total_ms",
    "hash",
)


def _row(record: AuditRecord) -> list[str]:
    reasons = record.decision.reasons
    return [
        record.model_dump(mode="json")["timestamp"],
        record.decision_id,
        record.tenant,
        record.key_id or "",
        record.route,
        record.policy.id,
        record.policy.revision,
        record.decision.action,
        record.shadow.action if record.shadow else "",
        " ".join(sorted({r.category for r in reasons})),
        "; ".join(f"{r.stage}:{r.rule}:{r.category}={r.score:g}>={r.threshold:g}" for r in reasons),
        " ".join(o.sha256 for o in record.outputs),
        " ".join(o.watermark_id for o in record.outputs if o.watermark_id),
        record.input.prompt_mode,
        record.input.prompt_sha256,
        record.input.prompt or "",
        record.error.code if record.error else "",
        f"{record.metrics.total_ms:g}",
        record.hash,
    ]


async def csv_lines(records: AsyncIterator[AuditRecord]) -> AsyncIterator[str]:
    """A header, then one CSV line per record (RFC 4180 quoting)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    async for record in records:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(_row(record))
        yield buffer.getvalue()


async def jsonl_lines(records: AsyncIterator[AuditRecord]) -> AsyncIterator[str]:
    """The stored JSON of each record, one per line: ``verify`` can recheck each hash."""
    async for record in records:
        yield record.to_stored_json() + "\n"
