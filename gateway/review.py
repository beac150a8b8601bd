"""Human review: outputs held in Redis until a reviewer approves or rejects them.

A ``review`` rule does not block: the output is generated, classified and signed as usual, then
held here instead of being delivered, and the requester gets HTTP 202 with the decision id. A
reviewer (role ``reviewer`` or ``admin``) lists, inspects, approves or rejects it through
``/admin/review/*``; the requester fetches the approved output from ``GET /v1/reviews/{id}``.

Storage, per held output::

    genguard:review:<decision_id>          hash: tenant, key id, route, status, reasons, assets
    genguard:review:pending:<tenant>       sorted set of pending decision ids by hold time

A held item expires after ``ttl_s`` (7 days by default) whatever its state. The state moves once,
``pending`` → ``approved`` | ``rejected``, atomically (a Lua script), so two reviewers can never
both decide. Auditing each step is the caller's job (pipeline record, route ``admin_record``).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from redis.asyncio import Redis

from gateway.media import DeliveredAsset
from genguard_keyspace import slot_prefix

__all__ = ["HeldOutput", "RedisReviewQueue", "ReviewConflict", "ReviewStatus"]

ReviewStatus = Literal["pending", "approved", "rejected"]
KEY_PREFIX = "genguard:review"  # hash-tagged on Redis Cluster (genguard_keyspace)
DEFAULT_TTL_S = 7 * 24 * 3600

_DECIDE = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return '' end
if status ~= 'pending' then return status end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'decided_at', ARGV[2], 'decided_by', ARGV[3],
           'note', ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[5])
return 'ok'
"""


class ReviewConflict(Exception):
    """The held output was already decided (the message says how)."""


@dataclass(frozen=True, slots=True)
class HeldOutput:
    decision_id: str
    tenant: str
    key_id: str | None
    route: str
    status: ReviewStatus
    created_at: str
    reasons: tuple[dict[str, object], ...]
    assets: tuple[DeliveredAsset, ...]
    decided_at: str | None = None
    decided_by: str | None = None
    note: str | None = None

    def summary(self) -> dict[str, object]:
        """What reviewers and the requester see (no media bytes)."""
        return {
            "id": self.decision_id,
            "status": self.status,
            "tenant": self.tenant,
            "route": self.route,
            "created_at": self.created_at,
            "reasons": list(self.reasons),
            "outputs": [
                {"index": i, "mime_type": a.mime_type, "sha256": a.sha256, "bytes": len(a.data)}
                for i, a in enumerate(self.assets)
            ],
            "decided_at": self.decided_at,
            "decided_by": self.decided_by,
            "note": self.note,
        }


class RedisReviewQueue:
    def __init__(self, redis: Redis, *, ttl_s: int = DEFAULT_TTL_S) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        base = slot_prefix(redis, KEY_PREFIX)
        self._items = base + ":"  # + decision id
        self._pending = base + ":pending:"  # + tenant

    async def hold(
        self,
        *,
        decision_id: str,
        tenant: str,
        key_id: str | None,
        route: str,
        reasons: list[dict[str, object]],
        assets: tuple[DeliveredAsset, ...],
    ) -> None:
        payload = [
            {
                "data": base64.b64encode(a.data).decode("ascii"),
                "mime_type": a.mime_type,
                "sha256": a.sha256,
                "manifest_id": a.manifest_id,
                "watermark_id": a.watermark_id,
            }
            for a in assets
        ]
        key = self._items + decision_id
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "tenant": tenant,
                    "key_id": key_id or "",
                    "route": route,
                    "status": "pending",
                    "created_at": datetime.now(UTC).isoformat(),
                    "reasons": json.dumps(reasons),
                    "assets": json.dumps(payload),
                },
            )
            pipe.expire(key, self._ttl_s)
            pipe.zadd(self._pending + tenant, {decision_id: time.time()})
            await pipe.execute()

    async def get(self, decision_id: str) -> HeldOutput | None:
        stored = await self._redis.hgetall(self._items + decision_id)
        if not stored:
            return None
        return _held(decision_id, {_text(k): _text(v) for k, v in stored.items()})

    async def pending(self, tenant: str, *, limit: int = 100) -> list[HeldOutput]:
        """The oldest ``limit`` pending outputs of ``tenant`` (expired ones are dropped)."""
        ids = await self._redis.zrange(self._pending + tenant, 0, limit - 1)
        out: list[HeldOutput] = []
        for raw in ids:
            decision_id = _text(raw) if isinstance(raw, bytes | str) else str(raw)
            held = await self.get(decision_id)
            if held is None:  # expired: forget it
                await self._redis.zrem(self._pending + tenant, decision_id)
                continue
            out.append(held)
        return out

    async def decide(
        self, held: HeldOutput, status: Literal["approved", "rejected"], *, actor: str, note: str
    ) -> HeldOutput:
        """Move ``held`` from pending to ``status``; ``ReviewConflict`` if already decided."""
        result = await self._redis.eval(
            _DECIDE,
            2,
            self._items + held.decision_id,
            self._pending + held.tenant,
            status,
            datetime.now(UTC).isoformat(),
            actor,
            note,
            held.decision_id,
        )
        outcome = _text(result)
        if outcome != "ok":
            raise ReviewConflict(
                f"decision {held.decision_id} is already {outcome or 'gone (expired)'}"
            )
        updated = await self.get(held.decision_id)
        assert updated is not None
        return updated


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _held(decision_id: str, fields: dict[str, str]) -> HeldOutput:
    assets = tuple(
        DeliveredAsset(
            data=base64.b64decode(a["data"]),
            mime_type=a["mime_type"],
            sha256=a["sha256"],
            manifest_id=a["manifest_id"],
            watermark_id=a["watermark_id"],
        )
        for a in json.loads(fields["assets"])
    )
    status = fields["status"]
    assert status in ("pending", "approved", "rejected"), status
    return HeldOutput(
        decision_id=decision_id,
        tenant=fields["tenant"],
        key_id=fields["key_id"] or None,
        route=fields["route"],
        status=status,  # type: ignore[arg-type]
        created_at=fields["created_at"],
        reasons=tuple(json.loads(fields["reasons"])),
        assets=assets,
        decided_at=fields.get("decided_at") or None,
        decided_by=fields.get("decided_by") or None,
        note=fields.get("note") or None,
    )
