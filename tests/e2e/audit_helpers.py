"""Read audit records straight from the Redis stream (what a T&S analyst would query)."""

from __future__ import annotations

import json
from typing import Any

import redis

from genguard_keyspace import slot_prefix

PREFIX = "genguard:audit"


def stream_key(client: redis.Redis, tenant: str) -> str:
    """The tenant's audit stream (hash-tagged on a cluster client, as the sink names it)."""
    return f"{slot_prefix(client, PREFIX)}:stream:{tenant}"


def stream_records(client: redis.Redis, tenant: str) -> list[dict[str, Any]]:
    entries = client.xrange(stream_key(client, tenant))
    return [json.loads(fields[b"record"]) for _, fields in entries]


def count(client: redis.Redis, tenant: str) -> int:
    return int(client.xlen(stream_key(client, tenant)))


def record_for(client: redis.Redis, tenant: str, decision_id: str) -> dict[str, Any]:
    matches = [r for r in stream_records(client, tenant) if r["decision_id"] == decision_id]
    assert len(matches) == 1, f"expected one audit record for {decision_id}, got {len(matches)}"
    return matches[0]
