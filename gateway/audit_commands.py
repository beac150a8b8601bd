"""``genguard audit query|stats|export|trim``: the CLI side of the ``/admin/audit`` API.

Same filters, same output forms (JSON lines of stored records; CSV) as the HTTP routes; reads are
audited like the routes' (actor ``cli:<user>``), under the tenant that was read.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError
from redis.asyncio import Redis

from audit.export import csv_lines, jsonl_lines
from audit.retention import trim
from audit.search import AuditQuery, InvalidCursor, export_records, search, stats
from audit.sink import RedisStreamAuditSink
from audit.stream import AuditKeys, as_text
from gateway.lifespan import audit_checkpoint_key
from gateway.recording import admin_record
from gateway.settings import Settings

__all__ = ["run_audit_command"]

_FILTERS = (
    "since", "until", "decision", "category", "stage", "classifier", "key_id", "route",
    "policy_revision", "error_code", "decision_id", "output_sha256", "output_pdq",
    "output_watermark",
)  # fmt: skip


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def run_audit_command(
    redis: Redis, settings: Settings, args: argparse.Namespace, actor: str
) -> int:
    sink = RedisStreamAuditSink(redis)
    if args.audit_command == "trim":
        return await _trim(redis, sink, settings, args)
    given = {name: getattr(args, name, None) for name in _FILTERS}
    try:
        given["since"], given["until"] = _when(given["since"]), _when(given["until"])
        if args.audit_command == "stats":
            return await _stats(redis, sink, args, actor, given)
        extra = (
            {"limit": args.limit, "cursor": args.cursor} if args.audit_command == "query" else {}
        )
        query = AuditQuery(
            tenant=args.tenant, **{k: v for k, v in given.items() if v is not None}, **extra
        )
    except (ValueError, ValidationError) as exc:
        print(f"genguard: {exc}", file=sys.stderr)
        return 2
    logged: dict[str, object] = {k: str(v) for k, v in given.items() if v is not None}
    await sink.append(admin_record(f"admin.audit.{args.audit_command}", args.tenant, actor, logged))
    if args.audit_command == "query":
        try:
            page = await search(redis, query)
        except InvalidCursor as exc:
            print(f"genguard: {exc}", file=sys.stderr)
            return 2
        for record in page.records:
            print(record.to_stored_json())
        if page.next_cursor:
            print(f"next page: --cursor {page.next_cursor}", file=sys.stderr)
        return 0
    records = export_records(redis, query.model_copy(update={"limit": 500}))
    lines = csv_lines(records) if args.format == "csv" else jsonl_lines(records)
    async for line in lines:
        sys.stdout.write(line)
    return 0


async def _stats(
    redis: Redis,
    sink: RedisStreamAuditSink,
    args: argparse.Namespace,
    actor: str,
    given: dict[str, object],
) -> int:
    until = given["until"] if isinstance(given["until"], datetime) else datetime.now(UTC)
    since = given["since"] if isinstance(given["since"], datetime) else until - timedelta(days=1)
    buckets = await stats(redis, args.tenant, since=since, until=until, bucket=args.bucket)
    await sink.append(
        admin_record(
            "admin.audit.stats", args.tenant, actor, {"since": str(since), "until": str(until)}
        )
    )
    for bucket in buckets:
        print(json.dumps(bucket.model_dump(mode="json"), sort_keys=True))
    return 0


async def _trim(
    redis: Redis, sink: RedisStreamAuditSink, settings: Settings, args: argparse.Namespace
) -> int:
    key = audit_checkpoint_key(settings)
    before = datetime.now(UTC) - timedelta(days=args.older_than_days)
    tenants = (
        [args.tenant]
        if args.tenant
        else sorted(as_text(t) for t in await redis.smembers(AuditKeys.for_client(redis).tenants))
    )
    for tenant in tenants:
        result = await trim(redis, sink, tenant, before=before, key=key)
        print(f"{tenant}: removed {result.removed} records before {before:%Y-%m-%dT%H:%M:%SZ}")
    return 0
