"""Where the enforced policy comes from.

``FilePolicyStore`` serves one validated policy file (or the packaged default) to every tenant;
the versioned, approved Redis store of the compliance workflow implements the same protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from policies.loader import PolicyBundle, default_policy_text, load_policy_file, parse_policy

__all__ = ["FilePolicyStore", "PolicyStore"]


class PolicyStore(Protocol):
    async def current(self, tenant: str) -> PolicyBundle:
        """The policy enforced for ``tenant`` now: immutable, with a revision."""
        ...


class FilePolicyStore:
    """One policy for all tenants, loaded and validated once (at start-up, not per request)."""

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            self._bundle = parse_policy(default_policy_text(), source="policies/default.yaml")
        else:
            self._bundle = load_policy_file(path)

    @property
    def bundle(self) -> PolicyBundle:
        return self._bundle

    async def current(self, tenant: str) -> PolicyBundle:
        return self._bundle
