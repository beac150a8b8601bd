"""API keys: generated once, shown once, stored hashed in Redis.

A key reads ``gg_<key_id>_<secret>``; Redis keeps ``sha256(key)`` with the key's tenant and roles,
never the key. Looking a key up costs one HGETALL by ``key_id`` and a constant-time comparison;
a key verified in the last ``cache_s`` seconds (``GENGUARD_KEY_CACHE_S``, default 5) is accepted
from memory without that round trip. A revocation therefore takes effect at once in the process
that revoked the key, and within ``cache_s`` on every other replica and worker process (the
cache is a short TTL, not invalidated by messages); ``cache_s=0`` checks Redis on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from redis.asyncio import Redis

from genguard_keyspace import REDIS_UNAVAILABLE

__all__ = [
    "ApiKeyStore",
    "InvalidKey",
    "KeyInfo",
    "KeyStoreUnavailable",
    "Principal",
    "Role",
    "parse_roles",
]

KEY_PATTERN = re.compile(r"^gg_([a-z0-9]{12})_([A-Za-z0-9_-]{32,64})$")
TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class Role(StrEnum):
    CLIENT = "client"
    AUDITOR = "auditor"
    POLICY_EDITOR = "policy_editor"
    POLICY_APPROVER = "policy_approver"
    REVIEWER = "reviewer"  # approves or rejects outputs held by a ``review`` rule
    METRICS = "metrics"  # scrapes /metrics (Prometheus), nothing else
    ADMIN = "admin"


def parse_roles(text: str) -> frozenset[Role]:
    roles = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            roles.add(Role(part))
        except ValueError:
            valid = ", ".join(r.value for r in Role)
            raise ValueError(f"unknown role {part!r}; expected one of: {valid}") from None
    if not roles:
        raise ValueError("at least one role is required")
    return frozenset(roles)


class InvalidKey(Exception):
    """The presented key is malformed, unknown or revoked (the message says which)."""


class KeyStoreUnavailable(Exception):
    """Redis, where the keys live, did not answer: a key can be neither checked nor created."""


@contextmanager
def _redis_errors(action: str) -> Iterator[None]:
    try:
        yield
    except REDIS_UNAVAILABLE as exc:  # incl. a cluster failing over (genguard_keyspace)
        raise KeyStoreUnavailable(f"{action}: Redis unavailable ({exc})") from exc


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant their records belong to, and what they may do."""

    tenant: str
    key_id: str
    roles: frozenset[Role]

    def has(self, role: Role) -> bool:
        return role in self.roles or Role.ADMIN in self.roles


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key_id: str
    tenant: str
    roles: frozenset[Role]
    name: str
    created_at: str
    revoked_at: str | None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fields(stored: dict[bytes | str, bytes | str]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in stored.items()}


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeyStore:
    """Hashed API keys in Redis.

    ``cache_s``: a key this process verified within the last ``cache_s`` seconds is accepted
    without asking Redis (see the module docstring for what that means for revocation).
    ``outage_grace_s``: while Redis cannot be reached, a key that this process verified within
    the last ``outage_grace_s`` seconds is still accepted (revocations made during the outage
    take effect when Redis returns); any other key gets ``KeyStoreUnavailable`` (503). 0 turns
    the grace off.
    """

    MAX_REMEMBERED = 10_000

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "genguard:keys",
        outage_grace_s: float = 0.0,
        cache_s: float = 0.0,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._grace_s = outage_grace_s
        self._cache_s = cache_s
        # sha256(key) -> (principal, when Redis last confirmed it), least recently used first
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def _hash_key(self, key_id: str) -> str:
        return f"{self._prefix}:{key_id}"

    async def create(
        self, *, tenant: str, roles: frozenset[Role], name: str = "", secret: str | None = None
    ) -> tuple[str, KeyInfo]:
        """Create a key and return it (the only time it is visible) with its stored info."""
        if not TENANT_PATTERN.match(tenant):
            raise ValueError(
                f"invalid tenant {tenant!r}: use 1-63 lowercase letters, digits, '-' or '_'"
            )
        if secret is not None:
            match = KEY_PATTERN.match(secret)
            if not match:
                raise ValueError("a preset key must look like gg_<12 a-z0-9>_<32-64 url-safe>")
            key_id, key = match.group(1), secret
        else:
            key_id = secrets.token_hex(6)
            key = f"gg_{key_id}_{secrets.token_urlsafe(32)}"
        now = datetime.now(UTC).isoformat()
        info = KeyInfo(key_id, tenant, roles, name, now, None)
        with _redis_errors("create an API key"):
            await self._store(key_id, key, info)
        return key, info

    async def _store(self, key_id: str, key: str, info: KeyInfo) -> None:
        tenant, roles, name, now = info.tenant, info.roles, info.name, info.created_at
        await self._redis.hset(
            self._hash_key(key_id),
            mapping={
                "digest": _digest(key),
                "tenant": tenant,
                "roles": ",".join(sorted(r.value for r in roles)),
                "name": name,
                "created_at": now,
                "revoked_at": "",
            },
        )
        await self._redis.sadd(f"{self._prefix}:all", key_id)

    async def authenticate(self, key: str) -> Principal:
        match = KEY_PATTERN.match(key)
        if not match:
            raise InvalidKey("malformed API key (expected gg_<id>_<secret>)")
        key_id = match.group(1)
        digest = _digest(key)
        remembered = self._verified.get(digest)
        if remembered is not None and time.monotonic() - remembered[1] <= self._cache_s:
            return remembered[0]
        try:
            with _redis_errors("check the API key"):
                stored = await self._redis.hgetall(self._hash_key(key_id))
        except KeyStoreUnavailable:
            remembered = self._verified.get(digest)
            if remembered and time.monotonic() - remembered[1] <= self._grace_s:
                return remembered[0]
            raise
        if not stored:
            raise InvalidKey("unknown API key")
        fields = _fields(stored)
        if not hmac.compare_digest(fields["digest"], digest):
            raise InvalidKey("unknown API key")
        if fields.get("revoked_at"):
            self._verified.pop(digest, None)
            raise InvalidKey("this API key was revoked")
        principal = Principal(fields["tenant"], key_id, parse_roles(fields["roles"]))
        if self._grace_s > 0 or self._cache_s > 0:
            self._verified[digest] = (principal, time.monotonic())
            self._verified.move_to_end(digest)
            while len(self._verified) > self.MAX_REMEMBERED:
                self._verified.popitem(last=False)
        return principal

    async def revoke(self, key_id: str) -> KeyInfo:
        exists = await self._redis.exists(self._hash_key(key_id))
        if not exists:
            raise KeyError(f"no API key with id {key_id!r}")
        await self._redis.hset(self._hash_key(key_id), "revoked_at", datetime.now(UTC).isoformat())
        for digest in [d for d, (p, _) in self._verified.items() if p.key_id == key_id]:
            del self._verified[digest]  # at once in this process; elsewhere within cache_s
        info = await self.get(key_id)
        assert info is not None
        return info

    async def get(self, key_id: str) -> KeyInfo | None:
        stored = await self._redis.hgetall(self._hash_key(key_id))
        if not stored:
            return None
        f = _fields(stored)
        return KeyInfo(
            key_id,
            f["tenant"],
            parse_roles(f["roles"]),
            f.get("name", ""),
            f["created_at"],
            f.get("revoked_at") or None,
        )

    async def list(self) -> list[KeyInfo]:
        ids = sorted(_text(m) for m in await self._redis.smembers(f"{self._prefix}:all"))
        infos = [await self.get(key_id) for key_id in ids]
        return sorted((i for i in infos if i is not None), key=lambda i: i.created_at)

    async def count(self) -> int:
        with _redis_errors("count the API keys"):
            return int(await self._redis.scard(f"{self._prefix}:all"))
