"""Where audit records live in Redis, and the one place Redis errors are translated.

Layout (``prefix`` defaults to ``genguard:audit``)::

    {prefix}:stream:{tenant}   stream, one entry per record, one field ``record`` = stored JSON
    {prefix}:head:{tenant}     string, hash of the tenant's newest record (the chain head)
    {prefix}:ids               hash, decision_id -> "{tenant} {stream entry id}"
    {prefix}:tenants           set of tenants that have records

Indexes (``audit.index``), written by the same Lua script as the entry, so never out of step::

    {prefix}:ix:{tenant}:time                 zset, entry id scored by record time (ms)
    {prefix}:ix:{tenant}:days                 zset, "YYYYMMDD" of every day with records
    {prefix}:ix:{tenant}:{day}:{facet}:{value} zset, entry ids of that day with that facet value
    {prefix}:ix:{tenant}:out:{kind}:{value}   zset, entries whose output has that sha256/pdq/wm
    {prefix}:stats:{tenant}:{day}             hash, "HH|decision|block" -> count, …
    {prefix}:checkpoint:{tenant}              string, the newest retention checkpoint (JSON)

Works with clients created with or without ``decode_responses``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from pydantic import ValidationError
from redis import exceptions as redis_exceptions

from audit.errors import AuditError, AuditRecordCorrupt, AuditUnavailable
from audit.record import AuditRecord
from genguard_keyspace import REDIS_UNAVAILABLE, slot_prefix

__all__ = [
    "DEFAULT_PREFIX",
    "RECORD_FIELD",
    "AuditKeys",
    "as_text",
    "decode_entry",
    "entry_json",
    "map_redis_errors",
]

DEFAULT_PREFIX = "genguard:audit"
RECORD_FIELD = "record"

EntryFields = Mapping[bytes, bytes] | Mapping[str, str] | Mapping[bytes | str, bytes | str]


@dataclass(frozen=True, slots=True)
class AuditKeys:
    """Key names under one prefix."""

    prefix: str = DEFAULT_PREFIX

    @classmethod
    def for_client(cls, redis: object, prefix: str = DEFAULT_PREFIX) -> AuditKeys:
        """The names on ``redis``: one hash slot for all of them on a cluster (the chain
        script touches a tenant's keys and the shared ``ids`` / ``tenants`` at once)."""
        return cls(slot_prefix(redis, prefix))

    def stream(self, tenant: str) -> str:
        return f"{self.prefix}:stream:{tenant}"

    def head(self, tenant: str) -> str:
        return f"{self.prefix}:head:{tenant}"

    def time_index(self, tenant: str) -> str:
        return f"{self.prefix}:ix:{tenant}:time"

    def days(self, tenant: str) -> str:
        return f"{self.prefix}:ix:{tenant}:days"

    def facet(self, tenant: str, day: str, facet: str, value: str) -> str:
        return f"{self.prefix}:ix:{tenant}:{day}:{facet}:{value}"

    def output(self, tenant: str, kind: str, value: str) -> str:
        return f"{self.prefix}:ix:{tenant}:out:{kind}:{value}"

    def stats(self, tenant: str, day: str) -> str:
        return f"{self.prefix}:stats:{tenant}:{day}"

    def checkpoint(self, tenant: str) -> str:
        return f"{self.prefix}:checkpoint:{tenant}"

    @property
    def ids(self) -> str:
        return f"{self.prefix}:ids"

    @property
    def tenants(self) -> str:
        return f"{self.prefix}:tenants"


def as_text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def entry_json(fields: EntryFields | None) -> str | None:
    """The ``record`` field of a stream entry, or None when the entry has no such field."""
    for name, value in (fields or {}).items():
        if as_text(name) == RECORD_FIELD:
            return as_text(value)
    return None


def decode_entry(tenant: str, entry_id: str, fields: EntryFields | None) -> AuditRecord:
    """Parse one stream entry; ``AuditRecordCorrupt`` (naming the entry) if it is no record."""
    raw = entry_json(fields)
    if raw is None:
        raise AuditRecordCorrupt(f"tenant {tenant!r} entry {entry_id}: no {RECORD_FIELD!r} field")
    try:
        return AuditRecord.model_validate_json(raw)
    except ValidationError as exc:
        raise AuditRecordCorrupt(
            f"tenant {tenant!r} entry {entry_id}: not an audit record "
            f"({exc.error_count()} errors, first: {exc.errors()[0]['msg']})"
        ) from exc


@contextmanager
def map_redis_errors(action: str) -> Iterator[None]:
    """Translate redis-py (and socket) errors into ``AuditUnavailable`` / ``AuditError``."""
    try:
        yield
    except REDIS_UNAVAILABLE as exc:  # incl. a cluster failing over: the sink spools
        raise AuditUnavailable(
            f"{action}: Redis unavailable ({type(exc).__name__}: {exc})"
        ) from exc
    except redis_exceptions.RedisError as exc:
        raise AuditError(f"{action}: Redis error ({type(exc).__name__}: {exc})") from exc
