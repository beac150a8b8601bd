"""The manifest repository: watermark id → signed manifest store and a summary, in Redis.

A copy whose C2PA data was stripped still carries the watermark; the verifier reads the id and
looks it up here (soft-binding resolution). Keys (all under ``genguard:provenance:``):

    wm:<id>        hash: ``summary`` (JSON) and ``manifest`` (the signed JUMBF manifest store)
    image-sizes    set of "WxH" sizes that marked images had (the verifier resizes back to them)
    audio-rates    set of sample rates that marked audio had

Records are kept until deleted: a credential must stay resolvable as long as the asset lives.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis

from genguard_keyspace import slot_prefix

__all__ = ["ManifestRepository", "RegisteredOutput"]

KEY_PREFIX = "genguard:provenance"  # hash-tagged on Redis Cluster (genguard_keyspace)


@dataclass(frozen=True, slots=True)
class RegisteredOutput:
    """What GenGuard delivered under one watermark id (never the prompt)."""

    watermark_id: str
    watermark_alg: str
    manifest_id: str | None
    decision_id: str
    tenant: str
    policy_id: str
    policy_revision: str
    generator: str
    model: str
    mime_type: str
    sha256: str
    size_bytes: int
    width: int | None = None
    height: int | None = None
    sample_rate: int | None = None
    created_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ManifestRepository:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._prefix = slot_prefix(redis, KEY_PREFIX) + ":"

    async def register(self, output: RegisteredOutput, manifest_store: bytes) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                f"{self._prefix}wm:{output.watermark_id}",
                mapping={"summary": json.dumps(output.to_json()), "manifest": manifest_store},
            )
            if output.width and output.height:
                pipe.sadd(f"{self._prefix}image-sizes", f"{output.width}x{output.height}")
            if output.sample_rate:
                pipe.sadd(f"{self._prefix}audio-rates", str(output.sample_rate))
            await pipe.execute()

    async def lookup(self, watermark_id: str) -> tuple[RegisteredOutput, bytes] | None:
        stored = await self._redis.hgetall(f"{self._prefix}wm:{watermark_id}")
        if not stored:
            return None
        fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in stored.items()}
        summary = json.loads(fields["summary"])
        manifest = fields.get("manifest", b"")
        return RegisteredOutput(**summary), manifest if isinstance(manifest, bytes) else b""

    async def image_sizes(self) -> list[tuple[int, int]]:
        sizes = []
        for raw in await self._redis.smembers(f"{self._prefix}image-sizes"):
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            width, _, height = text.partition("x")
            sizes.append((int(width), int(height)))
        return sizes

    async def sample_rates(self) -> list[int]:
        return [int(r) for r in await self._redis.smembers(f"{self._prefix}audio-rates")]
