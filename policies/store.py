"""Where the enforced policy comes from.

``FilePolicyStore`` serves one validated policy file (or the packaged default) to every tenant;
``policies.redis_store.RedisPolicyStore`` (versioned, approved, hot-reloaded) implements the same
protocol.
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

    async def shadow(self, tenant: str) -> PolicyBundle | None:
        """The candidate evaluated beside it on the same scores (never enforced), if any."""
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

    async def shadow(self, tenant: str) -> PolicyBundle | None:
        return None
