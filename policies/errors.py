"""Policy errors.

Exception tree::

    GenGuardError
    └── PolicyError                 a policy could not be loaded or used
        ├── PolicyValidationError   the policy text is not valid; carries one issue per problem
        ├── PolicyUnavailable       the policy store (Redis) cannot be reached
        └── PolicyWorkflowError     a version workflow step was refused
            ├── VersionNotFound     no such scope / version
            ├── ApprovalRefused     self-approval, or a step that needs another role
            └── InvalidTransition   the version is not in a state that allows this step
"""

from __future__ import annotations

from dataclasses import dataclass

from genguard_errors import GenGuardError

__all__ = [
    "ApprovalRefused",
    "InvalidTransition",
    "PolicyError",
    "PolicyIssue",
    "PolicyUnavailable",
    "PolicyValidationError",
    "PolicyWorkflowError",
    "VersionNotFound",
]


class PolicyError(GenGuardError):
    """A policy could not be loaded or used."""


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    """One problem in a policy file, located by line and field path.

    ``expected`` lists what would have been valid there (when it is a short list), and
    ``suggestion`` is the closest valid spelling of a misspelt key, category or backend name.
    """

    path: str
    message: str
    line: int | None = None
    column: int | None = None
    suggestion: str | None = None
    expected: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "(no line)"
        if self.column is not None and self.line is not None:
            where += f", column {self.column}"
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "message": self.message,
            "line": self.line,
            "column": self.column,
            "suggestion": self.suggestion,
            "expected": list(self.expected),
        }


class PolicyValidationError(PolicyError):
    """The policy is invalid; ``issues`` lists every problem found, each with its line."""

    def __init__(self, source: str, issues: list[PolicyIssue]) -> None:
        self.source = source
        self.issues = tuple(issues)
        lines = "\n".join(f"  {source}: {issue}" for issue in self.issues)
        super().__init__(f"invalid policy {source}:\n{lines}")


class PolicyUnavailable(PolicyError):
    """The policy store cannot be reached (and no local copy could stand in)."""


class PolicyWorkflowError(PolicyError):
    """A step of the propose → approve → activate workflow was refused."""


class VersionNotFound(PolicyWorkflowError):
    """No such policy scope or version."""


class ApprovalRefused(PolicyWorkflowError):
    """The caller may not take this step (e.g. approving their own proposal)."""


class InvalidTransition(PolicyWorkflowError):
    """The version's state does not allow this step (e.g. activating an unapproved version)."""
