"""GenGuard audit: one tamper-evident record per request, hash-chained per tenant in Redis.

- ``record``: ``AuditRecord`` and its parts, canonical JSON, the chain hash
- ``sink``: ``AuditSink`` protocol, ``RedisStreamAuditSink`` (chain + local spool)
- ``verify``: ``verify_chain`` → ``ChainReport``
- ``query``: ``tail``, ``get_by_decision_id``, ``count``
"""

from audit.errors import AuditError, AuditRecordCorrupt, AuditUnavailable, DuplicateDecision
from audit.query import count, get_by_decision_id, tail
from audit.record import (
    GENESIS_HASH,
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
from audit.sink import SPOOLED_PREFIX, AuditSink, RedisStreamAuditSink
from audit.stream import DEFAULT_PREFIX, AuditKeys
from audit.verify import ChainProblem, ChainReport, ProblemKind, verify_chain

__all__ = [
    "DEFAULT_PREFIX",
    "GENESIS_HASH",
    "SPOOLED_PREFIX",
    "Action",
    "AuditError",
    "AuditKeys",
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
    "canonical_json",
    "compute_hash",
    "count",
    "get_by_decision_id",
    "tail",
    "verify_chain",
]
