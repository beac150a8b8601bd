"""The root of every GenGuard exception.

Each package has one root under ``GenGuardError`` (``ClassifierError``, ``GenerationError``,
``ProvenanceError``, ``AuditError``, ``PolicyError``); ``gateway/errors.py`` maps them to HTTP.
"""

from __future__ import annotations

__all__ = ["GenGuardError"]


class GenGuardError(Exception):
    """Base class of all errors raised by GenGuard's packages."""
