"""Named PDQ hash banks in Redis, one category each, plus a version counter.

``genguard:hashbanks`` maps a bank name to its JSON settings (category, threshold, who created it
and when); ``genguard:hashbanks:hashes:<name>`` maps each hash (64 hex digits) to JSON metadata
(who added it, when, the PDQ quality, where it came from). Every change increments
``genguard:hashbanks:version`` in the same transaction. Gateways compare that version with their
in-memory ``PdqIndex`` before each image stage that runs ``pdq_bank`` and rebuild the index when
it moved, so a change is in force on every process at its next request. Auditing a change is the
caller's job (route or CLI).
"""

from __future__ import annotations

import builtins
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from classifiers.image.pdq_bank import (
    DEFAULT_THRESHOLD,
    HASH_BITS,
    BankedHash,
    PdqIndex,
    PdqSnapshot,
    parse_hex,
)
from classifiers.taxonomy import Category
from genguard_keyspace import slot_prefix

__all__ = ["HashBank", "HashBankError", "HashBankExists", "RedisHashBanks", "check_bank_name"]

KEY_PREFIX = "genguard:hashbanks"  # hash-tagged on Redis Cluster (genguard_keyspace)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


class HashBankError(ValueError):
    """A bank name, threshold or hash is invalid."""


class HashBankExists(HashBankError):
    """A bank of that name already exists."""


@dataclass(frozen=True, slots=True)
class HashBank:
    name: str
    category: Category
    threshold: int
    created_at: str
    created_by: str
    size: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "category": self.category.value,
            "threshold": self.threshold,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "size": self.size,
        }


def check_bank_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise HashBankError(
            f"invalid bank name {name!r}: use 1-80 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def normalise_hex(value: str) -> str:
    try:
        parse_hex(value)
    except ValueError as exc:
        raise HashBankError(str(exc)) from None
    return value.strip().lower()


class RedisHashBanks:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._banks = slot_prefix(redis, KEY_PREFIX)
        self._hashes = self._banks + ":hashes:"  # + bank name
        self._version = self._banks + ":version"

    async def create(
        self,
        name: str,
        *,
        category: Category = Category.HASH_MATCH,
        threshold: int = DEFAULT_THRESHOLD,
        actor: str,
    ) -> HashBank:
        check_bank_name(name)
        if not 0 <= threshold < HASH_BITS // 2:
            raise HashBankError(f"threshold must be 0-{HASH_BITS // 2 - 1} bits, got {threshold}")
        bank = HashBank(name, category, threshold, datetime.now(UTC).isoformat(), actor)
        settings = {k: v for k, v in bank.to_json().items() if k != "size"}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(self._banks, name, json.dumps(settings))
            pipe.incr(self._version)
            created, _ = await pipe.execute()
        if not created:
            raise HashBankExists(f"a hash bank named {name!r} already exists")
        return bank

    async def get(self, name: str) -> HashBank:
        raw = await self._redis.hget(self._banks, name)
        if raw is None:
            raise KeyError(f"no hash bank named {name!r}")
        return _bank(name, _text(raw), await self._redis.hlen(self._hashes + name))

    async def list(self) -> list[HashBank]:
        stored = await self._redis.hgetall(self._banks)
        banks = [
            _bank(_text(k), _text(v), await self._redis.hlen(self._hashes + _text(k)))
            for k, v in stored.items()
        ]
        return sorted(banks, key=lambda b: b.name)

    async def add(
        self, name: str, hashes: dict[str, dict[str, object]], *, actor: str
    ) -> builtins.list[str]:
        """Add ``hashes`` (hex -> metadata) to ``name``; returns the normalised hex values."""
        await self.get(name)
        now = datetime.now(UTC).isoformat()
        records = {
            normalise_hex(h): json.dumps({"added_at": now, "added_by": actor, **meta})
            for h, meta in hashes.items()
        }
        if not records:
            raise HashBankError("no hashes to add")
        async with self._redis.pipeline(transaction=True) as pipe:
            for value, record in records.items():
                pipe.hset(self._hashes + name, value, record)
            pipe.incr(self._version)
            await pipe.execute()
        return sorted(records)

    async def hashes(self, name: str) -> dict[str, dict[str, object]]:
        await self.get(name)
        stored = await self._redis.hgetall(self._hashes + name)
        return {_text(k): json.loads(_text(v)) for k, v in sorted(stored.items())}

    async def remove_hash(self, name: str, value: str) -> bool:
        """Remove one hash; False when the bank does not hold it."""
        await self.get(name)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._hashes + name, normalise_hex(value))
            pipe.incr(self._version)
            removed, _ = await pipe.execute()
        return bool(removed)

    async def delete(self, name: str) -> bool:
        """Delete the bank and its hashes; False when no such bank exists."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._banks, name)
            pipe.delete(self._hashes + name)
            pipe.incr(self._version)
            removed, _, _ = await pipe.execute()
        return bool(removed)

    async def version(self) -> int:
        value = await self._redis.get(self._version)
        return int(value) if value is not None else 0

    async def sync(self, index: PdqIndex) -> None:
        """Rebuild ``index`` from Redis when the banks' version differs from the index's."""
        version = await self.version()
        if version == index.snapshot.version:
            return
        entries: list[BankedHash] = []
        for bank in await self.list():
            stored = await self._redis.hkeys(self._hashes + bank.name)
            entries.extend(
                BankedHash(bank.name, _text(h), bank.category, bank.threshold) for h in stored
            )
        index.replace(PdqSnapshot.of(version, entries))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _bank(name: str, raw: str, size: int) -> HashBank:
    data = json.loads(raw)
    return HashBank(
        name,
        Category(data["category"]),
        int(data["threshold"]),
        str(data["created_at"]),
        str(data["created_by"]),
        size,
    )
