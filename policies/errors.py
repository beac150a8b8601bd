"""Policy errors.

Exception tree::

    GenGuardError
    └── PolicyError                 a policy could not be loaded or used
        └── PolicyValidationError   the policy file is not valid; carries one issue per problem
"""

from __future__ import annotations

from dataclasses import dataclass

from genguard_errors import GenGuardError

__all__ = ["PolicyError", "PolicyIssue", "PolicyValidationError"]


class PolicyError(GenGuardError):
    """A policy could not be loaded or used."""


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    """One problem in a policy file, located by line and field path."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "(no line)"
        if self.column is not None and self.line is not None:
            where += f", column {self.column}"
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class PolicyValidationError(PolicyError):
    """The policy file is invalid; ``issues`` lists every problem found, each with its line."""

    def __init__(self, source: str, issues: list[PolicyIssue]) -> None:
        self.source = source
        self.issues = tuple(issues)
        lines = "\n".join(f"  {source}: {issue}" for issue in self.issues)
        super().__init__(f"invalid policy {source}:\n{lines}")
