"""The record model, its canonical form and the chain hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from audit import (
    GENESIS_HASH,
    AuditRecord,
    InputRecord,
    StageRecord,
    canonical_json,
    compute_hash,
)

RecordFactory = Callable[..., AuditRecord]


def test_prompt_is_never_required(make_record: RecordFactory) -> None:
    record = make_record()
    assert record.input.prompt is None
    assert record.input.prompt_mode == "omitted"
    assert "prompt 0" not in record.linked(GENESIS_HASH).to_stored_json()
    assert record.input.prompt_sha256 == hashlib.sha256(b"prompt 0").hexdigest()


def test_prompt_mode_must_match_the_prompt() -> None:
    sha = "0" * 64
    with pytest.raises(ValidationError, match="'omitted' requires prompt=None"):
        InputRecord(prompt_sha256=sha, prompt="a cat", prompt_mode="omitted")
    with pytest.raises(ValidationError, match="'full' requires a prompt"):
        InputRecord(prompt_sha256=sha, prompt=None, prompt_mode="full")
    redacted = InputRecord.from_prompt("call 555-0100", mode="redacted", redacted="call [PHONE]")
    assert redacted.prompt == "call [PHONE]"
    assert redacted.prompt_sha256 == hashlib.sha256(b"call 555-0100").hexdigest()


def test_timestamp_must_be_aware_and_is_kept_in_utc(make_record: RecordFactory) -> None:
    data = make_record().model_dump()
    with pytest.raises(ValidationError, match="timezone-aware"):
        AuditRecord.model_validate({**data, "timestamp": datetime(2025, 1, 1, 12)})
    cet = datetime(2025, 1, 1, 13, 30, tzinfo=timezone(timedelta(hours=1)))
    record = AuditRecord.model_validate({**data, "timestamp": cet})
    assert record.timestamp.utcoffset() == timedelta(0)
    assert b'"timestamp":"2025-01-01T12:30:00.000000Z"' in canonical_json(record)


def test_canonical_json_is_sorted_compact_and_excludes_hash(make_record: RecordFactory) -> None:
    linked = make_record().linked(GENESIS_HASH)
    canonical = canonical_json(linked)
    parsed = json.loads(canonical)
    assert "hash" not in parsed
    assert parsed["prev_hash"] == GENESIS_HASH
    assert list(parsed) == sorted(parsed)
    assert list(parsed["input"]) == sorted(parsed["input"])
    assert canonical == json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()


def test_compute_hash_chains_prev_hash_and_canonical_bytes(make_record: RecordFactory) -> None:
    assert GENESIS_HASH == "0" * 64
    first = make_record().linked(GENESIS_HASH)
    second = make_record().linked(first.hash)
    expected = hashlib.sha256(first.hash.encode() + b"\n" + canonical_json(second)).hexdigest()
    assert second.prev_hash == first.hash
    assert second.hash == expected == compute_hash(first.hash, canonical_json(second))


def test_stored_json_round_trips_to_the_same_hash(make_record: RecordFactory) -> None:
    linked = make_record().linked(GENESIS_HASH)
    restored = AuditRecord.model_validate_json(linked.to_stored_json())
    assert restored == linked
    assert compute_hash(restored.prev_hash, canonical_json(restored)) == linked.hash


def test_records_are_frozen(make_record: RecordFactory) -> None:
    record = make_record()
    with pytest.raises(ValidationError, match="frozen"):
        record.tenant = "other"  # type: ignore[misc]


def test_non_finite_scores_and_bad_pointers_are_refused() -> None:
    with pytest.raises(ValidationError, match="finite"):
        StageRecord(stage="prompt", scores={"hate": float("nan")}, latency_ms=1, verdict="allow")
    with pytest.raises(ValidationError, match="erased"):
        AuditRecord.model_validate(
            {
                "decision_id": "d",
                "trace_id": "t",
                "timestamp": "2025-01-01T00:00:00Z",
                "tenant": "acme",
                "route": "/v1/images/generations",
                "policy": {"id": "p", "revision": "1"},
                "input": {"prompt_sha256": "0" * 64, "prompt_mode": "omitted"},
                "decision": {"action": "allow"},
                "metrics": {"total_ms": 1, "overhead_ms": 1, "upstream_ms": 0},
                "erased": ["input.prompt"],
            }
        )
