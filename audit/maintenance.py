"""The gateway's background audit task: replay the spool while the gateway runs, trim old records.

Every ``interval_s`` it replays the spool if records wait there (Redis came back), and, when a
retention period is set, trims each tenant once an hour. Failures are logged and retried at the
next tick; the task never ends on its own, the lifespan cancels it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from audit.errors import AuditError
from audit.retention import trim
from audit.sink import RedisStreamAuditSink
from audit.stream import as_text

__all__ = ["run_audit_maintenance"]

logger = logging.getLogger(__name__)

_TRIM_EVERY_S = 3600.0


async def run_audit_maintenance(
    redis: aioredis.Redis,
    sink: RedisStreamAuditSink,
    *,
    interval_s: float,
    retention_days: int | None,
    checkpoint_key: bytes,
) -> None:
    last_trim = 0.0
    while True:
        await asyncio.sleep(interval_s)
        if sink.degraded:
            try:
                await sink.replay_spool()
            except AuditError as exc:
                logger.info("audit spool not replayed yet: %s", exc)
                continue
        if retention_days is None or time.monotonic() - last_trim < _TRIM_EVERY_S:
            continue
        last_trim = time.monotonic()
        before = datetime.now(UTC) - timedelta(days=retention_days)
        try:
            for tenant in sorted(as_text(t) for t in await redis.smembers(sink.keys.tenants)):
                result = await trim(redis, sink, tenant, before=before, key=checkpoint_key)
                if result.removed:
                    logger.warning("audit retention: %s", result)
        except Exception:  # retried next hour; never kill the gateway's maintenance task
            logger.exception("audit retention trim failed")
