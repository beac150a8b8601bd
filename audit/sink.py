"""Audit sinks: the ``AuditSink`` protocol and its Redis Streams backend with a hash chain.

Linking a record to the previous one of its tenant must be atomic across gateway replicas.
Redis 6.2's Lua has no sha256, so the hash is computed here and Redis only does a
compare-and-set: the ``_LINK`` script appends the record iff the tenant's head still equals the
``prev_hash`` the record was linked to, and in the same atomic step moves the head, indexes the
decision id and registers the tenant. On a conflict (another replica appended first) it returns
the current head and the record is re-linked to it and retried — optimistic concurrency with one
round trip per attempt. Within one process, appends of one tenant queue on an ``asyncio.Lock``,
so only replicas ever conflict, and the last head is remembered, so an uncontended append costs
one round trip.

When Redis is unavailable the record goes to the local spool (if configured) and ``append``
returns ``"spooled:<decision_id>"``; ``replay_spool`` links spooled records later.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from pathlib import Path
from typing import ClassVar, Protocol

import redis.asyncio as aioredis

from audit.errors import AuditError, AuditUnavailable, DuplicateDecision
from audit.record import GENESIS_HASH, AuditRecord, chain_link
from audit.spool import AuditSpool
from audit.stream import DEFAULT_PREFIX, AuditKeys, as_text, map_redis_errors

__all__ = ["SPOOLED_PREFIX", "AuditSink", "RedisStreamAuditSink"]

logger = logging.getLogger(__name__)

SPOOLED_PREFIX = "spooled:"

# KEYS: head, stream, ids, tenants
# ARGV: expected prev hash, new hash, stored JSON, decision id, tenant, genesis hash
# Returns {1, entry id} | {0, current head} (conflict) | {2, "tenant entry-id"} (duplicate id)
_LINK = """
local known = redis.call('HGET', KEYS[3], ARGV[4])
if known then return {2, known} end
local head = redis.call('GET', KEYS[1]) or ARGV[6]
if head ~= ARGV[1] then return {0, head} end
local id = redis.call('XADD', KEYS[2], '*', 'record', ARGV[3])
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5] .. ' ' .. id)
redis.call('SADD', KEYS[4], ARGV[5])
return {1, id}
"""

_LINKED, _CONFLICT, _DUPLICATE = 1, 0, 2
_HASH = re.compile(r"[0-9a-f]{64}")


class AuditSink(Protocol):
    async def append(self, record: AuditRecord) -> str:
        """Persist ``record`` durably before the response is sent; return where it went.

        Exactly one call per request (allowed, blocked or failed). The sink sets ``prev_hash``
        and ``hash``; the caller leaves them empty. Raises ``DuplicateDecision`` if the decision
        id was already appended and ``AuditUnavailable`` if the record could not be kept.
        """
        ...


class RedisStreamAuditSink:
    """Per-tenant Redis streams, hash-chained, with an optional local spool."""

    name: ClassVar[str] = "redis-stream"
    max_attempts: ClassVar[int] = 100

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        spool_path: Path | None = None,
    ) -> None:
        self.keys = AuditKeys(prefix)
        self.spool = AuditSpool(spool_path) if spool_path is not None else None
        self.conflicts = 0  # re-links after another replica moved the head first
        self._redis = redis
        self._link = redis.register_script(_LINK)
        self._heads: dict[str, str] = {}  # last head seen per tenant: a guess the script checks
        self._tenant_locks: dict[str, asyncio.Lock] = {}

    async def append(self, record: AuditRecord) -> str:
        """Link and append ``record``; return its stream entry id (or ``spooled:<id>``)."""
        try:
            return await self._append_linked(record)
        except AuditUnavailable as exc:
            if self.spool is None:
                raise
            try:
                await self.spool.write(record)
            except OSError as spool_exc:
                raise AuditUnavailable(f"{exc}; spooling failed too: {spool_exc}") from spool_exc
            logger.warning(
                "audit record %s spooled to %s: %s", record.decision_id, self.spool.path, exc
            )
            return SPOOLED_PREFIX + record.decision_id

    async def replay_spool(self) -> int:
        """Append spooled records in order; return how many. Safe at start-up and periodically.

        Raises ``AuditUnavailable`` (spool untouched) if Redis is still unavailable.
        """
        if self.spool is None:
            return 0
        return await self.spool.replay(self._append_unless_known)

    async def _append_unless_known(self, record: AuditRecord) -> bool:
        try:
            await self._append_linked(record)
        except DuplicateDecision:
            return False
        return True

    async def _append_linked(self, record: AuditRecord) -> str:
        tenant = record.tenant
        lock = self._tenant_locks.setdefault(tenant, asyncio.Lock())
        async with lock:
            prev_hash = self._heads.get(tenant, GENESIS_HASH)
            for attempt in range(self.max_attempts):
                digest, stored = chain_link(record, prev_hash)
                status, value = await self._try_link(record, prev_hash, digest, stored)
                if status == _LINKED:
                    self._heads[tenant] = digest
                    return value
                if status == _DUPLICATE:
                    raise DuplicateDecision(
                        f"decision {record.decision_id!r} is already audited (at {value})"
                    )
                if not _HASH.fullmatch(value):
                    raise AuditError(f"tenant {tenant!r}: chain head {value!r} is not a sha256")
                prev_hash = value
                self.conflicts += 1
                if attempt >= 2:  # replicas keep colliding: spread them out a little
                    await asyncio.sleep(random.uniform(0.0, 0.001 * attempt))
        raise AuditUnavailable(
            f"tenant {tenant!r}: chain head kept moving for {self.max_attempts} attempts"
        )

    async def _try_link(
        self, record: AuditRecord, prev_hash: str, digest: str, stored: bytes
    ) -> tuple[int, str]:
        keys, tenant = self.keys, record.tenant
        with map_redis_errors(f"append audit record {record.decision_id}"):
            reply = await self._link(
                keys=[keys.head(tenant), keys.stream(tenant), keys.ids, keys.tenants],
                args=[prev_hash, digest, stored, record.decision_id, tenant, GENESIS_HASH],
            )
        try:
            status, value = int(reply[0]), as_text(reply[1])
        except (TypeError, ValueError, IndexError, AttributeError) as exc:
            raise AuditError(f"unexpected reply from the link script: {reply!r}") from exc
        if status not in (_LINKED, _CONFLICT, _DUPLICATE):
            raise AuditError(f"unexpected status from the link script: {reply!r}")
        return status, value
