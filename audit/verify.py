"""Verify a tenant's hash chain: detect edited, deleted, reordered, truncated or garbage entries.

The stored JSON of each entry is re-canonicalised as stored (not re-validated into a model), its
hash recomputed from the previous entry's hash, and compared:

- ``edited``: the stored ``hash`` is not the hash of the stored content;
- ``deleted_or_reordered``: ``prev_hash`` is not the hash of the entry before it (or genesis);
- ``truncated``: the head key is not the hash of the newest entry (newest entries deleted), or
  the head is missing while entries exist, or the stream is gone while the head is not;
- ``unparseable``: the entry has no ``record`` field, is not JSON, or is not an audit record;
- ``bad_checkpoint``: a retention checkpoint whose signature does not verify (or that cannot be
  checked because no ``checkpoint_key`` was given).

After retention trimming the first entry does not link to genesis; that is accepted only when a
checkpoint record in the chain (route ``audit.checkpoint``, see ``audit.retention``) carries a
valid HMAC over exactly that entry's ``prev_hash``; otherwise it is ``deleted_or_reordered`` at
the first entry.

The head and the newest entry id are read in one MULTI/EXEC, then the stream is read up to that
entry in batches of ``batch_size`` (XRANGE with COUNT), so records appended concurrently do not
cause false alarms and the stream is never loaded at once.

A hash chain without a secret shows partial tampering; someone able to rewrite a whole tenant's
stream *and* its head can recompute every hash. Anchoring heads elsewhere closes that gap.
"""

from __future__ import annotations

import hmac
import json
from typing import Any, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, ValidationError, computed_field

from audit.checkpoint import CHECKPOINT_ROUTE, checkpoint_signature
from audit.record import GENESIS_HASH, AuditRecord, canonical_bytes, compute_hash
from audit.stream import (
    DEFAULT_PREFIX,
    AuditKeys,
    EntryFields,
    as_text,
    entry_json,
    map_redis_errors,
)

__all__ = ["ChainProblem", "ChainReport", "ProblemKind", "verify_chain"]

ProblemKind = Literal[
    "edited", "deleted_or_reordered", "truncated", "unparseable", "bad_checkpoint"
]


class ChainProblem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    entry_id: str | None
    kind: ProblemKind
    detail: str


class ChainReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant: str
    records_checked: int
    problems: list[ChainProblem]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.problems


async def verify_chain(
    redis: aioredis.Redis,
    tenant: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    batch_size: int = 500,
    checkpoint_key: bytes | None = None,
) -> ChainReport:
    """Walk ``tenant``'s stream from the first entry and report every break in the chain."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    keys = AuditKeys.for_client(redis, prefix)
    stream = keys.stream(tenant)
    with map_redis_errors(f"verify the audit chain of {tenant!r}"):
        async with redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.head(tenant))
            pipe.xrevrange(stream, count=1)
            head_raw, newest = await pipe.execute()
        head = as_text(head_raw) if head_raw is not None else None
        checker = _ChainChecker(tenant, checkpoint_key)
        if newest:
            last_id = as_text(newest[0][0])
            start = "-"
            while batch := await redis.xrange(stream, min=start, max=last_id, count=batch_size):
                for entry_id, fields in batch:
                    checker.feed(as_text(entry_id or b""), fields)
                start = "(" + as_text(batch[-1][0] or b"")
                if start == "(" + last_id:
                    break
    checker.check_head(head, stream_empty=not newest)
    checker.check_start()
    return ChainReport(tenant=tenant, records_checked=checker.checked, problems=checker.problems)


class _ChainChecker:
    """Feed entries in stream order; collects problems and remembers the last good hash."""

    def __init__(self, tenant: str, checkpoint_key: bytes | None) -> None:
        self.tenant = tenant
        self.checkpoint_key = checkpoint_key
        self.first_entry: str | None = None
        self.start_anchor: str | None = None  # prev_hash of the first entry, when not genesis
        self.anchored = False
        self.checked = 0
        self.linked = 0
        self.problems: list[ChainProblem] = []
        self.last_hash = GENESIS_HASH
        self.last_entry_id: str | None = None

    def feed(self, entry_id: str, fields: EntryFields | None) -> None:
        self.checked += 1
        payload = _parse_payload(fields)
        if isinstance(payload, str):
            self._problem(entry_id, "unparseable", payload)
            return
        stored_hash = payload.pop("hash")
        try:
            canonical = canonical_bytes(payload)
        except ValueError as exc:  # NaN / infinity smuggled into a free-form JSON field
            self._problem(entry_id, "unparseable", f"not canonical JSON ({exc})")
            return
        if self.checked == 1 and payload["prev_hash"] != GENESIS_HASH:
            self.first_entry = entry_id  # trimmed by retention? a signed checkpoint must say so
            self.start_anchor = self.last_hash = payload["prev_hash"]
        if payload.get("route") == CHECKPOINT_ROUTE:
            self._checkpoint(entry_id, payload)
        recomputed = compute_hash(payload["prev_hash"], canonical)
        if recomputed != stored_hash:
            self._problem(
                entry_id,
                "edited",
                f"content hashes to {recomputed[:16]}… but the entry says {stored_hash[:16]}…",
            )
        if payload["prev_hash"] != self.last_hash:
            self._problem(
                entry_id,
                "deleted_or_reordered",
                f"prev_hash {payload['prev_hash'][:16]}… does not follow "
                f"{'genesis' if self.last_entry_id is None else self.last_entry_id}, "
                f"whose hash is {self.last_hash[:16]}…",
            )
        self.linked += 1
        self.last_hash = stored_hash
        self.last_entry_id = entry_id

    def _checkpoint(self, entry_id: str, payload: dict[str, Any]) -> None:
        params = payload.get("input", {}).get("params", {})
        try:
            expected = checkpoint_signature(
                self.checkpoint_key or b"",
                tenant=self.tenant,
                first_kept_prev_hash=str(params["first_kept_prev_hash"]),
                removed_count=int(params["removed_count"]),
                removed_through=str(params["removed_through"]),
                removed_before=str(params["removed_before"]),
            )
            signature = str(params["signature"])
        except (KeyError, TypeError, ValueError):
            self._problem(entry_id, "bad_checkpoint", "checkpoint without its fields")
            return
        if self.checkpoint_key is None:
            self._problem(entry_id, "bad_checkpoint", "no checkpoint key given to verify it")
        elif not hmac.compare_digest(expected, signature):
            self._problem(entry_id, "bad_checkpoint", "the checkpoint's signature does not verify")
        elif params["first_kept_prev_hash"] == self.start_anchor:
            self.anchored = True

    def check_start(self) -> None:
        if self.start_anchor is not None and not self.anchored:
            problem = ChainProblem(
                entry_id=self.first_entry,
                kind="deleted_or_reordered",
                detail=f"the first entry follows {self.start_anchor[:16]}…, not genesis, and no "
                "valid retention checkpoint covers it (records deleted from the start)",
            )
            self.problems.insert(0, problem)  # problems stay in stream order

    def check_head(self, head: str | None, *, stream_empty: bool) -> None:
        if stream_empty:
            if head is not None:
                self._problem(None, "truncated", f"head is {head[:16]}… but the stream is empty")
        elif head is None:
            if self.linked:
                self._problem(self.last_entry_id, "truncated", "the head key is missing")
        elif head != self.last_hash:
            self._problem(
                self.last_entry_id,
                "truncated",
                f"head is {head[:16]}… but the newest record hashes to {self.last_hash[:16]}…: "
                "newest records deleted (or entries added outside the sink)",
            )

    def _problem(self, entry_id: str | None, kind: ProblemKind, detail: str) -> None:
        self.problems.append(ChainProblem(entry_id=entry_id, kind=kind, detail=detail))


def _parse_payload(fields: EntryFields | None) -> dict[str, Any] | str:
    """The stored record as a JSON object, or why it is not one."""
    raw = entry_json(fields)
    if raw is None:
        return "no 'record' field"
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        return f"not JSON ({exc})"
    if not isinstance(payload, dict):
        return f"JSON {type(payload).__name__}, not an object"
    try:
        record = AuditRecord.model_validate(payload)
    except ValidationError as exc:
        return f"not an audit record: {exc.errors()[0]['msg']}"
    if not record.hash or not record.prev_hash:
        return "record without chain fields"
    return payload
