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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from audit.errors import AuditError, AuditUnavailable, DuplicateDecision
from audit.index import index_entries
from audit.record import GENESIS_HASH, AuditRecord, chain_link
from audit.spool import AuditSpool
from audit.stream import DEFAULT_PREFIX, AuditKeys, as_text, map_redis_errors
from genguard_keyspace import is_cluster

__all__ = ["SPOOLED_PREFIX", "AuditSink", "RedisStreamAuditSink"]

logger = logging.getLogger(__name__)

SPOOLED_PREFIX = "spooled:"

# KEYS: head, stream, ids, tenants, days, stats, time index, facet/output sets…
# ARGV: expected prev hash, new hash, stored JSON, decision id, tenant, genesis hash,
#       score (ms), day, day score, number of stats fields, stats fields…
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
redis.call('ZADD', KEYS[5], ARGV[9], ARGV[8])
for i = 11, 10 + tonumber(ARGV[10]) do redis.call('HINCRBY', KEYS[6], ARGV[i], 1) end
for i = 7, #KEYS do redis.call('ZADD', KEYS[i], ARGV[7], id) end
return {1, id}
"""

_LINKED, _CONFLICT, _DUPLICATE = 1, 0, 2
_HASH = re.compile(r"[0-9a-f]{64}")
_MAX_BATCH = 256


@dataclass(slots=True)
class _Pending:
    record: AuditRecord
    done: asyncio.Future[str]


class AuditSink(Protocol):
    async def append(self, record: AuditRecord) -> str:
        """Persist ``record`` durably before the response is sent; return where it went.

        Exactly one call per request (allowed, blocked or failed). The sink sets ``prev_hash``
        and ``hash``; the caller leaves them empty. Raises ``DuplicateDecision`` if the decision
        id was already appended and ``AuditUnavailable`` if the record could not be kept.
        """
        ...


class RedisStreamAuditSink:
    """Per-tenant Redis streams, hash-chained and indexed, with an optional local spool."""

    name: ClassVar[str] = "redis-stream"
    max_attempts: ClassVar[int] = 100

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        spool_path: Path | None = None,
        write_timeout_s: float | None = None,
    ) -> None:
        self.keys = AuditKeys.for_client(redis, prefix)
        self.spool = AuditSpool(spool_path) if spool_path is not None else None
        self.write_timeout_s = write_timeout_s
        self.conflicts = 0  # re-links after another replica moved the head first
        self._redis = redis
        self._link = redis.register_script(_LINK)
        self._heads: dict[str, str] = {}  # last head seen per tenant: a guess the script checks
        self._queues: dict[str, list[_Pending]] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}
        self._spool_gate = asyncio.Lock()
        self._degraded = self.spool is not None and self.spool.pending()

    @property
    def degraded(self) -> bool:
        """True while records wait in the spool (new records queue behind them, in order)."""
        return self._degraded

    async def append(self, record: AuditRecord) -> str:
        """Link and append ``record``; return its stream entry id (or ``spooled:<id>``)."""
        if self._degraded:
            async with self._spool_gate:
                if self._degraded:
                    return await self._spool_record(record, "earlier records are still spooled")
        try:
            return await self._append_linked(record)
        except AuditUnavailable as exc:
            if self.spool is None:
                raise
            async with self._spool_gate:
                return await self._spool_record(record, str(exc))

    async def _spool_record(self, record: AuditRecord, why: str) -> str:
        assert self.spool is not None
        try:
            await self.spool.write(record)
        except OSError as spool_exc:
            raise AuditUnavailable(f"{why}; spooling failed too: {spool_exc}") from spool_exc
        if not self._degraded:
            logger.warning("audit degraded, spooling to %s: %s", self.spool.path, why)
        self._degraded = True
        return SPOOLED_PREFIX + record.decision_id

    async def replay_spool(self) -> int:
        """Append spooled records in order; return how many. Safe at start-up and periodically.

        New records wait while the replay runs, so the stream keeps request order. Raises
        ``AuditUnavailable`` (spool untouched, still degraded) if Redis is still unavailable.
        """
        if self.spool is None:
            return 0
        async with self._spool_gate:
            replayed = await self.spool.replay(self._append_unless_known)
            self._degraded = False
            if replayed:
                logger.warning("audit recovered: replayed %d spooled records", replayed)
            return replayed

    async def _append_unless_known(self, record: AuditRecord) -> bool:
        try:
            await self._append_linked(record)
        except DuplicateDecision:
            return False
        return True

    async def _append_linked(self, record: AuditRecord) -> str:
        """Queue ``record`` behind its tenant's pending ones; one task per tenant links them.

        Under concurrency the flusher sends up to ``_MAX_BATCH`` records per round trip (a
        pipeline of compare-and-set scripts, each linked to the one before): group commit.
        """
        tenant = record.tenant
        pending = _Pending(record, asyncio.get_running_loop().create_future())
        self._queues.setdefault(tenant, []).append(pending)
        if tenant not in self._flushers:
            self._flushers[tenant] = asyncio.create_task(self._flush(tenant))
        try:
            return await asyncio.wait_for(asyncio.shield(pending.done), self.write_timeout_s)
        except TimeoutError:
            pending.done.cancel()  # not sent yet: the flusher skips it; sent: replay dedups it
            raise AuditUnavailable(
                f"append audit record {record.decision_id}: Redis did not answer within "
                f"{self.write_timeout_s} s"
            ) from None

    async def _flush(self, tenant: str) -> None:
        queue = self._queues[tenant]
        try:
            while queue:
                batch = [p for p in queue[:_MAX_BATCH] if not p.done.done()]
                del queue[:_MAX_BATCH]
                if not batch:
                    continue
                try:
                    results = await self._link_batch(tenant, [p.record for p in batch])
                except AuditError as exc:
                    for p in batch:
                        if not p.done.done():
                            p.done.set_exception(exc)
                    continue
                for p, result in zip(batch, results, strict=True):
                    if p.done.done():
                        continue
                    if isinstance(result, AuditError):
                        p.done.set_exception(result)
                    else:
                        p.done.set_result(result)
        finally:
            del self._flushers[tenant]

    async def _link_batch(self, tenant: str, records: list[AuditRecord]) -> list[str | AuditError]:
        results: list[str | AuditError | None] = [None] * len(records)
        prev_hash = self._heads.get(tenant, GENESIS_HASH)
        todo = list(range(len(records)))
        for attempt in range(self.max_attempts):
            calls: list[tuple[int, str, str, bytes]] = []
            link_to = prev_hash
            for index in todo:
                digest, stored = chain_link(records[index], link_to)
                calls.append((index, link_to, digest, stored))
                link_to = digest
            replies = await self._try_link(records, calls)
            retry: list[int] = []
            for (index, _, digest, _), (status, value) in zip(calls, replies, strict=True):
                if status == _LINKED:
                    results[index] = value
                    prev_hash = digest
                    self._heads[tenant] = digest
                elif status == _DUPLICATE:
                    results[index] = DuplicateDecision(
                        f"decision {records[index].decision_id!r} is already audited (at {value})"
                    )
                else:
                    if not _HASH.fullmatch(value):
                        raise AuditError(f"tenant {tenant!r}: chain head {value!r} is not a sha256")
                    prev_hash = value
                    retry.append(index)
            if not retry:
                return [r for r in results if r is not None]
            todo = retry
            self.conflicts += 1
            if attempt >= 2:  # replicas keep colliding: spread them out a little
                await asyncio.sleep(random.uniform(0.0, 0.001 * attempt))
        raise AuditUnavailable(
            f"tenant {tenant!r}: chain head kept moving for {self.max_attempts} attempts"
        )

    async def _try_link(
        self, records: list[AuditRecord], calls: list[tuple[int, str, str, bytes]]
    ) -> list[tuple[int, str]]:
        """Run the link script once per call in one pipeline; ``(status, value)`` each."""
        keys = self.keys
        first = records[calls[0][0]].decision_id
        with map_redis_errors(f"append audit record {first} (+{len(calls) - 1})"):
            scripts: list[tuple[list[str], list[bytes | str | int | float]]] = []
            for index, prev_hash, digest, stored in calls:
                record = records[index]
                tenant = record.tenant
                ix = index_entries(keys, record)
                scripts.append(
                    (
                        [
                            keys.head(tenant),
                            keys.stream(tenant),
                            keys.ids,
                            keys.tenants,
                            ix.days_key,
                            ix.stats_key,
                            *ix.sorted_sets,
                        ],
                        [
                            prev_hash,
                            digest,
                            stored,
                            record.decision_id,
                            tenant,
                            GENESIS_HASH,
                            ix.score,
                            ix.day,
                            ix.day_score,
                            len(ix.stats_fields),
                            *ix.stats_fields,
                        ],
                    )
                )
            if is_cluster(self._redis):  # cluster pipelines refuse scripts: one call each
                replies = [await self._link(keys=k, args=a) for k, a in scripts]
            elif len(scripts) == 1:  # uncontended: one EVALSHA, one round trip
                replies = [await self._link(keys=scripts[0][0], args=scripts[0][1])]
            else:
                replies = await self._pipelined(scripts)
        return self._statuses(replies)

    async def _pipelined(
        self, scripts: list[tuple[list[str], list[bytes | str | int | float]]]
    ) -> list[Any]:
        """EVALSHA the link script once per call in one pipeline, one round trip.

        redis-py's ``Script`` in a pipeline sends ``SCRIPT EXISTS`` before every execute (a
        second round trip per batch); here a ``NOSCRIPT`` reply (Redis restarted or flushed its
        script cache) loads the script and re-sends only the calls that got it, in order. A
        call after a ``NOSCRIPT`` one was linked to a head that never moved, so it answered
        "conflict" and the normal re-link retries it.
        """
        sha = self._link.sha

        async def run(calls: list[tuple[list[str], list[bytes | str | int | float]]]) -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for keys, args in calls:
                    pipe.evalsha(sha, len(keys), *keys, *args)
                return list(await pipe.execute(raise_on_error=False))

        replies = await run(scripts)
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:
            await self._redis.script_load(_LINK)
            for i, reply in zip(missing, await run([scripts[i] for i in missing]), strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    @staticmethod
    def _statuses(replies: list[Any]) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        for reply in replies:
            try:
                status, value = int(reply[0]), as_text(reply[1])
            except (TypeError, ValueError, IndexError, AttributeError) as exc:
                raise AuditError(f"unexpected reply from the link script: {reply!r}") from exc
            if status not in (_LINKED, _CONFLICT, _DUPLICATE):
                raise AuditError(f"unexpected status from the link script: {reply!r}")
            out.append((status, value))
        return out
