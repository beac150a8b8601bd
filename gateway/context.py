"""Per-request context: who is calling, the decision id, and when the request started."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field

from gateway.keys import Principal

__all__ = ["UNAUTHENTICATED_TENANT", "RequestContext", "new_decision_id"]

# Requests whose key could not be verified are audited under this tenant.
UNAUTHENTICATED_TENANT = "_unauthenticated"


def new_decision_id() -> str:
    return f"dec_{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class RequestContext:
    decision_id: str
    route: str
    principal: Principal | None
    trace_id: str = field(default_factory=lambda: secrets.token_hex(16))
    started: float = field(default_factory=time.perf_counter)

    @property
    def tenant(self) -> str:
        return self.principal.tenant if self.principal else UNAUTHENTICATED_TENANT

    @property
    def key_id(self) -> str | None:
        return self.principal.key_id if self.principal else None
