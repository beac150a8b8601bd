"""The protected-voice bank in Redis: one hash of enrolled speakers plus a version counter.

``genguard:voices`` maps a voice name to a JSON record (the unit-length embedding as base64
float32, who enrolled it and when); every change increments ``genguard:voices:version`` in the
same transaction. Gateways compare that version with their in-memory ``VoiceIndex`` before each
audio output stage and rebuild the index when it moved, so an enrolment is in force on every
process at its next request. Auditing the change is the caller's job (route or CLI).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray
from redis.asyncio import Redis

from classifiers.audio.voices import EMBEDDING_SIZE, VoiceIndex, VoiceSnapshot
from genguard_keyspace import slot_prefix

__all__ = ["InvalidVoiceName", "RedisVoiceBank", "VoiceRecord"]

KEY_PREFIX = "genguard:voices"  # hash-tagged on Redis Cluster (genguard_keyspace)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


class InvalidVoiceName(ValueError):
    """A voice name must be 1-80 letters, digits, '_', '.', '-', starting with a letter or digit."""


@dataclass(frozen=True, slots=True)
class VoiceRecord:
    name: str
    embedding: NDArray[np.float32]
    enrolled_at: str
    enrolled_by: str
    speech_s: float

    def to_json(self) -> dict[str, object]:
        """What the admin API and CLI show (never the embedding)."""
        return {
            "name": self.name,
            "enrolled_at": self.enrolled_at,
            "enrolled_by": self.enrolled_by,
            "speech_s": round(self.speech_s, 2),
        }


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise InvalidVoiceName(
            f"invalid voice name {name!r}: use 1-80 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


class RedisVoiceBank:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._voices = slot_prefix(redis, KEY_PREFIX)
        self._version = self._voices + ":version"

    async def enrol(
        self, name: str, embedding: NDArray[np.float32], *, actor: str, speech_s: float
    ) -> VoiceRecord:
        """Add or replace ``name``; returns the stored record."""
        check_name(name)
        vector = np.asarray(embedding, dtype=np.float32)
        if vector.shape != (EMBEDDING_SIZE,):
            raise ValueError(f"a voice embedding has {EMBEDDING_SIZE} values, got {vector.shape}")
        record = VoiceRecord(name, vector, datetime.now(UTC).isoformat(), actor, speech_s)
        payload = {
            "embedding": base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii"),
            **record.to_json(),
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._voices, name, json.dumps(payload))
            pipe.incr(self._version)
            await pipe.execute()
        return record

    async def remove(self, name: str) -> bool:
        """Remove ``name``; False when no such voice was enrolled."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._voices, name)
            pipe.incr(self._version)
            removed, _ = await pipe.execute()
        return bool(removed)

    async def list(self) -> list[VoiceRecord]:
        stored = await self._redis.hgetall(self._voices)
        records = [_record(_text(k), _text(v)) for k, v in stored.items()]
        return sorted(records, key=lambda r: r.name)

    async def version(self) -> int:
        value = await self._redis.get(self._version)
        return int(value) if value is not None else 0

    async def sync(self, index: VoiceIndex) -> None:
        """Rebuild ``index`` from Redis when the bank's version differs from the index's."""
        version = await self.version()
        if version == index.snapshot.version:
            return
        records = await self.list()
        index.replace(VoiceSnapshot.of(version, {r.name: r.embedding for r in records}))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _record(name: str, raw: str) -> VoiceRecord:
    data = json.loads(raw)
    vector = np.frombuffer(base64.b64decode(data["embedding"]), dtype="<f4").astype(np.float32)
    return VoiceRecord(
        name, vector, str(data["enrolled_at"]), str(data["enrolled_by"]), float(data["speech_s"])
    )
