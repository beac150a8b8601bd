"""GenGuard audit: one tamper-evident record per request, hash-chained per tenant in Redis.

- ``record``: ``AuditRecord`` and its parts, canonical JSON, the chain hash
- ``sink``: ``AuditSink`` protocol, ``RedisStreamAuditSink`` (chain + local spool)
- ``verify``: ``verify_chain`` → ``ChainReport``
- ``query``: ``tail``, ``get_by_decision_id``, ``count``
- ``search``: ``AuditQuery`` → ``search`` (indexed, cursor pages), ``stats``, ``export_records``
- ``privacy``: ``redact``, ``private_input`` (full / redacted / omitted, ``erased`` pointers)
- ``retention``: ``trim`` with a signed checkpoint; ``maintenance``: the gateway's replay task
"""

from audit.errors import AuditError, AuditRecordCorrupt, AuditUnavailable, DuplicateDecision
from audit.privacy import private_input, redact
from audit.query import count, get_by_decision_id, tail
from audit.record import (
    GENESIS_HASH,
    SCHEMA_VERSION,
    Action,
    AuditRecord,
    DecisionRecord,
    ErrorRecord,
    InputRecord,
    MetricsRecord,
    OutputRecord,
    PolicyRef,
    PromptMode,
    ReasonRecord,
    ShadowRef,
    StageRecord,
    canonical_json,
    compute_hash,
)
from audit.retention import TrimResult, trim
from audit.search import AuditPage, AuditQuery, StatsBucket, export_records, search, stats
from audit.sink import SPOOLED_PREFIX, AuditSink, RedisStreamAuditSink
from audit.stream import DEFAULT_PREFIX, AuditKeys
from audit.verify import ChainProblem, ChainReport, ProblemKind, verify_chain

__all__ = [
    "DEFAULT_PREFIX",
    "GENESIS_HASH",
    "SCHEMA_VERSION",
    "SPOOLED_PREFIX",
    "Action",
    "AuditError",
    "AuditKeys",
    "AuditPage",
    "AuditQuery",
    "AuditRecord",
    "AuditRecordCorrupt",
    "AuditSink",
    "AuditUnavailable",
    "ChainProblem",
    "ChainReport",
    "DecisionRecord",
    "DuplicateDecision",
    "ErrorRecord",
    "InputRecord",
    "MetricsRecord",
    "OutputRecord",
    "PolicyRef",
    "ProblemKind",
    "PromptMode",
    "ReasonRecord",
    "RedisStreamAuditSink",
    "ShadowRef",
    "StageRecord",
    "StatsBucket",
    "TrimResult",
    "canonical_json",
    "compute_hash",
    "count",
    "export_records",
    "get_by_decision_id",
    "private_input",
    "redact",
    "search",
    "stats",
    "tail",
    "trim",
    "verify_chain",
]
