"""Errors of the erasure package.

Exception tree::

    GenGuardError
    └── ErasureError                  an edit could not be computed, saved or applied
        ├── VariantNotFound           no variant of that name in the registry
        └── BaseModelMismatch         a variant patch was made for another base model
"""

from __future__ import annotations

from genguard_errors import GenGuardError

__all__ = ["BaseModelMismatch", "ErasureError", "VariantNotFound"]


class ErasureError(GenGuardError):
    """A concept edit could not be computed, saved or applied."""


class VariantNotFound(ErasureError):
    """The variant registry has no variant of that name."""


class BaseModelMismatch(ErasureError):
    """A variant patch was built for a different base model than the one it is applied to."""
