"""The audit record: one per request, hash-chained per tenant (after OPA's decision logs).

Every request — allowed, blocked or failed — produces exactly one ``AuditRecord``. The gateway
builds it without chain fields; the sink links it to the previous record of the same tenant:

    prev_hash = hash of the tenant's previous record (``GENESIS_HASH`` for the first)
    hash      = sha256(prev_hash + "\\n" + canonical_json(record without ``hash``))

The stream stores the canonical bytes with ``"hash"`` appended as the last key.
``canonical_json`` is the record's JSON form with sorted keys, compact separators, ASCII-only
escapes and timestamps as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. Verification re-canonicalises the
*stored* JSON (not a re-validated model), so records written by an older schema still verify.

The prompt is never required: ``input.prompt_mode`` says whether the record holds it in full,
redacted, or not at all (``prompt=None``); ``input.prompt_sha256`` is always the hash of the
prompt as received. Fields masked before writing are listed in ``erased`` as JSON pointers.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_serializer,
    field_validator,
    model_validator,
)

__all__ = [
    "GENESIS_HASH",
    "SCHEMA_VERSION",
    "Action",
    "AuditRecord",
    "DecisionRecord",
    "ErrorRecord",
    "InputRecord",
    "MetricsRecord",
    "OutputRecord",
    "PolicyRef",
    "PromptMode",
    "ReasonRecord",
    "ShadowRef",
    "StageRecord",
    "canonical_bytes",
    "canonical_json",
    "chain_link",
    "compute_hash",
    "sha256_hex",
]

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first record of every tenant's chain."""

SCHEMA_VERSION: Final = 1
"""Version of the record layout (``docs/audit.md``); bumped on any change readers must know."""

Action = Literal["allow", "flag", "route-to-variant", "block", "blur", "review", "error"]
PromptMode = Literal["full", "redacted", "omitted"]

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
ChainHash = Annotated[str, Field(pattern=r"^(?:[0-9a-f]{64})?$")]  # "" until the sink links it
JsonPointer = Annotated[str, Field(pattern=r"^(?:/.*)?$")]  # RFC 6901: "" or "/a/b"
NonEmpty = Annotated[str, Field(min_length=1)]
Milliseconds = Annotated[float, Field(ge=0.0)]

_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class PolicyRef(_Frozen):
    """The enforced policy bundle."""

    id: NonEmpty
    revision: NonEmpty


class ShadowRef(_Frozen):
    """The shadow (candidate) policy and what it would have decided on the same scores."""

    revision: NonEmpty
    action: Action


class InputRecord(_Frozen):
    """What was asked: the prompt's hash, the prompt as far as the policy allows, the params."""

    prompt_sha256: Sha256Hex
    prompt: str | None = None
    prompt_mode: PromptMode
    params: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _prompt_matches_mode(self) -> Self:
        if self.prompt_mode == "omitted" and self.prompt is not None:
            raise ValueError("prompt_mode 'omitted' requires prompt=None")
        if self.prompt_mode != "omitted" and self.prompt is None:
            raise ValueError(f"prompt_mode {self.prompt_mode!r} requires a prompt")
        return self

    @classmethod
    def from_prompt(
        cls,
        prompt: str,
        *,
        mode: PromptMode,
        redacted: str | None = None,
        params: Mapping[str, JsonValue] | None = None,
    ) -> InputRecord:
        """Hash ``prompt`` as received; keep it in full, as ``redacted``, or not at all."""
        if mode == "redacted" and redacted is None:
            raise ValueError("mode 'redacted' needs the redacted prompt")
        kept = {"full": prompt, "redacted": redacted, "omitted": None}[mode]
        return cls(
            prompt_sha256=sha256_hex(prompt.encode("utf-8", "surrogatepass")),
            prompt=kept,
            prompt_mode=mode,
            params=dict(params or {}),
        )


class StageRecord(_Frozen):
    """One pipeline stage (or one classifier within it): scores, evidence, timing, verdict."""

    stage: NonEmpty
    classifier: str | None = None
    scores: dict[str, float] = Field(default_factory=dict)
    evidence: list[dict[str, JsonValue]] = Field(default_factory=list)
    latency_ms: Milliseconds
    verdict: NonEmpty
    error: str | None = None


class ReasonRecord(_Frozen):
    """Why the decision is what it is: which rule fired on which score."""

    stage: NonEmpty
    category: NonEmpty
    score: float
    threshold: float
    rule: NonEmpty


class DecisionRecord(_Frozen):
    action: Action
    reasons: list[ReasonRecord] = Field(default_factory=list)


class OutputRecord(_Frozen):
    """One generated artifact, identified by hash, never stored itself."""

    sha256: Sha256Hex
    mime_type: NonEmpty
    watermark_id: str | None = None
    c2pa_manifest_id: str | None = None
    pdq: str | None = None


class ErrorRecord(_Frozen):
    """The error the client received, when the request failed."""

    type: NonEmpty
    code: NonEmpty
    message: str
    status: Annotated[int, Field(ge=100, le=599)]


class MetricsRecord(_Frozen):
    total_ms: Milliseconds
    overhead_ms: Milliseconds
    upstream_ms: Milliseconds


class AuditRecord(_Frozen):
    """One request's audit record. ``prev_hash`` and ``hash`` stay "" until the sink links it."""

    schema_version: Literal[1] = SCHEMA_VERSION
    decision_id: NonEmpty
    trace_id: NonEmpty
    timestamp: datetime
    tenant: NonEmpty
    key_id: str | None = None
    route: NonEmpty
    policy: PolicyRef
    shadow: ShadowRef | None = None
    input: InputRecord
    stages: list[StageRecord] = Field(default_factory=list)
    decision: DecisionRecord
    outputs: list[OutputRecord] = Field(default_factory=list)
    error: ErrorRecord | None = None
    metrics: MetricsRecord
    erased: list[JsonPointer] = Field(default_factory=list)
    prev_hash: ChainHash = ""
    hash: ChainHash = ""

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamp must be timezone-aware (UTC)")
        return value.astimezone(UTC)

    @field_serializer("timestamp", when_used="json")
    def _iso_utc(self, value: datetime) -> str:
        return value.strftime(_TIMESTAMP_FORMAT)

    def linked(self, prev_hash: str) -> AuditRecord:
        """A copy chained after ``prev_hash``, with ``hash`` computed over the canonical form."""
        digest, _ = chain_link(self, prev_hash)
        return self.model_copy(update={"prev_hash": prev_hash, "hash": digest})

    def to_stored_json(self) -> str:
        """The JSON stored in the stream: the canonical form with ``hash`` appended last."""
        return _append_hash(canonical_json(self), self.hash).decode("ascii")


def chain_link(record: AuditRecord, prev_hash: str) -> tuple[str, bytes]:
    """``(hash, stored JSON)`` of ``record`` linked after ``prev_hash``, serialised once."""
    if not _SHA256_HEX.fullmatch(prev_hash):
        raise ValueError(f"prev_hash must be 64 lowercase hex digits, got {prev_hash!r}")
    payload = record.model_dump(mode="json", exclude={"hash"})
    payload["prev_hash"] = prev_hash
    canonical = canonical_bytes(payload)
    digest = compute_hash(prev_hash, canonical)
    return digest, _append_hash(canonical, digest)


def canonical_bytes(payload: Mapping[str, Any]) -> bytes:
    """Sorted keys, compact separators, ASCII escapes; NaN and infinities are refused."""
    text = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return text.encode("ascii")


def canonical_json(record: AuditRecord) -> bytes:
    """The canonical form of ``record`` without its ``hash`` field: the bytes that get hashed."""
    return canonical_bytes(record.model_dump(mode="json", exclude={"hash"}))


def compute_hash(prev_hash: str, canonical: bytes) -> str:
    """``sha256(prev_hash + b"\\n" + canonical)`` as lowercase hex."""
    return sha256_hex(prev_hash.encode("ascii") + b"\n" + canonical)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _append_hash(canonical: bytes, digest: str) -> bytes:
    # still valid JSON; verification parses it and re-canonicalises without ``hash``
    return canonical[:-1] + b',"hash":"' + digest.encode("ascii") + b'"}'
