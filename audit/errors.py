"""Errors of the audit package.

Exception tree::

    GenGuardError (genguard_errors)
    └── AuditError                 the audit trail could not be written or read
        ├── AuditUnavailable       Redis is unreachable (and no spool could take the record)
        ├── DuplicateDecision      a record with this decision id is already in the trail
        └── AuditRecordCorrupt     a stored entry is not a valid audit record

Redis' own exceptions never leave this package: ``audit.stream.map_redis_errors`` translates
them at the boundary.
"""

from __future__ import annotations

from genguard_errors import GenGuardError

__all__ = ["AuditError", "AuditRecordCorrupt", "AuditUnavailable", "DuplicateDecision"]


class AuditError(GenGuardError):
    """The audit trail could not be written or read."""


class AuditUnavailable(AuditError):
    """Redis is unreachable, read-only or too contended, and no spool could take the record."""


class DuplicateDecision(AuditError):
    """A record with this decision id is already in the audit trail (ids are unique)."""


class AuditRecordCorrupt(AuditError):
    """A stored stream entry is not a valid audit record (``verify_chain`` reports where)."""
