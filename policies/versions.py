"""Versioned policies in Redis: propose → approve (by someone else) → activate; rollback.

Every version is immutable once proposed: its text, revision, author, reason and timestamp never
change. Its review state (``proposed`` → ``approved``) and whether it has ever been active are
recorded beside it, and which version is active is one pointer per scope. Every step is checked
and applied by one Lua script, so two staff members (or two gateways) racing cannot approve a
version twice, activate an unapproved one, or approve their own proposal.

Scopes: ``base`` is the policy of every tenant that has none of its own; a tenant's scope (its
name) holds that tenant's policy, which may say ``extends: base`` and hold only overrides.

Layout (``prefix`` defaults to ``genguard:policy``)::

    {prefix}:scopes              set of scopes that have versions
    {prefix}:{scope}:seq         last version number
    {prefix}:{scope}:v:{n}       hash: text revision author reason created_at state
                                       approved_by approved_at activated_at
    {prefix}:{scope}:active      number of the active version
    {prefix}:{scope}:shadow      number of the version evaluated in shadow, if any
    {prefix}:{scope}:events      list of JSON events (proposed, approved, activated, …)
    {prefix}:changes             pub/sub channel: ``{"scope": …, "what": "active"|"shadow"}``

Role checks (who may propose or approve) belong to the caller; this module enforces what must
hold whoever calls: approver ≠ author, only approved versions activate, rollback only to a
version that was active before.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import redis.asyncio as aioredis
from redis import exceptions as redis_exceptions

from genguard_keyspace import REDIS_UNAVAILABLE, slot_prefix
from policies.errors import (
    ApprovalRefused,
    InvalidTransition,
    PolicyUnavailable,
    PolicyValidationError,
    VersionNotFound,
)
from policies.loader import PolicyBundle
from policies.validate import KnownBackends, validate_policy_text

__all__ = [
    "BASE_SCOPE",
    "PolicyEvent",
    "PolicyVersion",
    "PolicyVersions",
    "VersionState",
]

BASE_SCOPE = "base"
DEFAULT_PREFIX = "genguard:policy"
VersionState = Literal["proposed", "approved"]
EventSink = Callable[["PolicyEvent"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    scope: str
    number: int
    text: str
    revision: str
    author: str
    reason: str
    created_at: str
    state: VersionState
    approved_by: str | None = None
    approved_at: str | None = None
    activated_at: str | None = None  # first activation; None: never enforced

    def to_json(self, *, text: bool = True) -> dict[str, Any]:
        data = asdict(self)
        if not text:
            data.pop("text")
        return data


@dataclass(frozen=True, slots=True)
class PolicyEvent:
    """One policy action, for the audit log: who did what to which version, and why."""

    action: Literal["seeded", "proposed", "approved", "activated", "rolled_back", "shadow"]
    scope: str
    version: int | None
    actor: str
    timestamp: str
    reason: str = ""
    revision: str = ""
    previous: int | None = None  # active version before an activation / rollback

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_PROPOSE = """
local n = redis.call('INCR', KEYS[1])
local key = ARGV[1] .. n
redis.call('HSET', key, 'text', ARGV[2], 'revision', ARGV[3], 'author', ARGV[4],
  'reason', ARGV[5], 'created_at', ARGV[6], 'state', 'proposed')
redis.call('SADD', KEYS[2], ARGV[7])
return n
"""

# KEYS: version hash. ARGV: approver, timestamp. -> {1} | {0, why}
_APPROVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 'missing'} end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'proposed' then return {0, 'state:' .. state} end
if redis.call('HGET', KEYS[1], 'author') == ARGV[1] then return {0, 'self'} end
redis.call('HSET', KEYS[1], 'state', 'approved', 'approved_by', ARGV[1], 'approved_at', ARGV[2])
return {1, ''}
"""

# KEYS: version hash, active pointer, shadow pointer (cleared when it is the version activated).
# ARGV: number, timestamp, need_history, channel, message, expected current ('' = any).
# -> {1, previous} | {0, why}
_ACTIVATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 'missing'} end
local current = redis.call('GET', KEYS[2]) or ''
if ARGV[6] ~= '' and current ~= ARGV[6] then return {0, 'moved:' .. current} end
if current == ARGV[1] then return {0, 'already'} end
if redis.call('HGET', KEYS[1], 'state') ~= 'approved' then return {0, 'unapproved'} end
local activated = redis.call('HGET', KEYS[1], 'activated_at')
if ARGV[3] == '1' and (not activated or activated == '') then return {0, 'never'} end
if not activated or activated == '' then redis.call('HSET', KEYS[1], 'activated_at', ARGV[2]) end
redis.call('SET', KEYS[2], ARGV[1])
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return {1, current}
"""

# KEYS: shadow pointer. ARGV: version number ("" = stop), channel, message
_SHADOW = """
if ARGV[1] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""

_SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], 1)
redis.call('HSET', KEYS[2], 'text', ARGV[1], 'revision', ARGV[2], 'author', ARGV[3],
  'reason', ARGV[4], 'created_at', ARGV[5], 'state', 'approved', 'approved_by', ARGV[3],
  'approved_at', ARGV[5], 'activated_at', ARGV[5])
redis.call('SET', KEYS[3], 1)
redis.call('SADD', KEYS[4], ARGV[6])
return 1
"""


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PolicyVersions:
    """The versioned policy repository and its workflow, on one Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        known: KnownBackends | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        self._redis = redis
        self.prefix = slot_prefix(redis, prefix)  # hash-tagged on Redis Cluster
        self.channel = f"{self.prefix}:changes"
        self._known = known
        self._on_event = on_event
        self._propose = redis.register_script(_PROPOSE)
        self._approve = redis.register_script(_APPROVE)
        self._activate = redis.register_script(_ACTIVATE)
        self._seed = redis.register_script(_SEED)
        self._shadow = redis.register_script(_SHADOW)

    def _key(self, scope: str, *parts: str | int) -> str:
        return ":".join([self.prefix, scope, *(str(p) for p in parts)])

    @property
    def redis(self) -> aioredis.Redis:
        return self._redis

    @property
    def known(self) -> KnownBackends:
        """What a policy being written (validated, proposed, activated) is checked against."""
        if self._known is None:
            self._known = KnownBackends.registered()
        return self._known

    @property
    def stored_known(self) -> KnownBackends:
        """What a stored version is checked against when it is loaded: the same, less the
        variants. A version accepted earlier must stay loadable on a gateway that lacks one of
        its variants (never fall back to another policy): its routed requests fail closed (503).
        """
        return replace(self.known, variants=None)

    # -- reading ----------------------------------------------------------------------------

    async def scopes(self) -> list[str]:
        with _map_errors("list policy scopes"):
            members = await self._redis.smembers(f"{self.prefix}:scopes")
        return sorted(_text(m) for m in members)

    async def get(self, scope: str, number: int) -> PolicyVersion:
        with _map_errors(f"read policy {scope} v{number}"):
            stored = await self._redis.hgetall(self._key(scope, "v", number))
        if not stored:
            raise VersionNotFound(f"policy scope {scope!r} has no version {number}")
        f = {_text(k): _text(v) for k, v in stored.items()}
        state: VersionState = "approved" if f.get("state") == "approved" else "proposed"
        return PolicyVersion(
            scope=scope,
            number=number,
            text=f["text"],
            revision=f["revision"],
            author=f["author"],
            reason=f.get("reason", ""),
            created_at=f["created_at"],
            state=state,
            approved_by=f.get("approved_by") or None,
            approved_at=f.get("approved_at") or None,
            activated_at=f.get("activated_at") or None,
        )

    async def pointer(self, scope: str, which: Literal["active", "shadow"]) -> int | None:
        with _map_errors(f"read the {which} policy of {scope}"):
            value = await self._redis.get(self._key(scope, which))
        return int(_text(value)) if value else None

    async def active(self, scope: str) -> PolicyVersion | None:
        number = await self.pointer(scope, "active")
        return await self.get(scope, number) if number is not None else None

    async def versions(self, scope: str) -> list[PolicyVersion]:
        with _map_errors(f"list the versions of {scope}"):
            last = await self._redis.get(self._key(scope, "seq"))
        count = int(_text(last)) if last else 0
        return [await self.get(scope, n) for n in range(count, 0, -1)]

    async def events(self, scope: str, limit: int = 100) -> list[dict[str, Any]]:
        with _map_errors(f"read the policy events of {scope}"):
            raw = await self._redis.lrange(self._key(scope, "events"), -limit, -1)
        return [json.loads(_text(item)) for item in reversed(raw)]

    async def resolve_text(self, scope: str, text: str, *, source: str) -> PolicyBundle:
        """Validate ``text`` as a version of ``scope`` (merged over the active base if it
        extends it)."""
        base: PolicyBundle | None = None
        if scope != BASE_SCOPE:
            active_base = await self.active(BASE_SCOPE)
            if active_base is not None:
                base = validate_policy_text(
                    active_base.text,
                    source=f"base v{active_base.number}",
                    known=self.stored_known,
                )
        return validate_policy_text(text, source=source, known=self.known, base=base)

    # -- the workflow -----------------------------------------------------------------------

    async def seed(self, text: str, *, source: str) -> bool:
        """Make ``text`` version 1 of the base scope, active, if the base has no versions yet."""
        bundle = validate_policy_text(text, source=source, known=self.known)
        at = now_iso()
        reason = f"seeded from {source}"
        with _map_errors("seed the base policy"):
            created = await self._seed(
                keys=[
                    self._key(BASE_SCOPE, "seq"),
                    self._key(BASE_SCOPE, "v", 1),
                    self._key(BASE_SCOPE, "active"),
                    f"{self.prefix}:scopes",
                ],
                args=[text, bundle.revision, "system", reason, at, BASE_SCOPE],
            )
        if int(created):
            await self._event(
                PolicyEvent("seeded", BASE_SCOPE, 1, "system", at, reason, bundle.revision)
            )
        return bool(int(created))

    async def propose(self, scope: str, text: str, *, author: str, reason: str) -> PolicyVersion:
        """Validate and store a new version (state ``proposed``); nothing enforces it yet."""
        if not reason.strip():
            raise InvalidTransition("a proposal needs a reason (what changes and why)")
        bundle = await self.resolve_text(scope, text, source=f"{scope} (proposed)")
        at = now_iso()
        with _map_errors(f"propose a policy for {scope}"):
            number = int(
                await self._propose(
                    keys=[self._key(scope, "seq"), f"{self.prefix}:scopes"],
                    args=[
                        self._key(scope, "v", ""),
                        text,
                        bundle.revision,
                        author,
                        reason,
                        at,
                        scope,
                    ],
                )
            )
        await self._event(
            PolicyEvent("proposed", scope, number, author, at, reason, bundle.revision)
        )
        return await self.get(scope, number)

    async def approve(self, scope: str, number: int, *, approver: str) -> PolicyVersion:
        """Approve a proposed version. The approver must not be its author."""
        at = now_iso()
        with _map_errors(f"approve policy {scope} v{number}"):
            status, why = await self._approve(
                keys=[self._key(scope, "v", number)], args=[approver, at]
            )
        why = _text(why)
        if not int(status):
            if why == "missing":
                raise VersionNotFound(f"policy scope {scope!r} has no version {number}")
            if why == "self":
                raise ApprovalRefused(
                    f"{approver} proposed {scope} v{number} and cannot approve it: "
                    "a second person must approve"
                )
            raise InvalidTransition(
                f"{scope} v{number} is {why.removeprefix('state:')}, not proposed"
            )
        version = await self.get(scope, number)
        await self._event(
            PolicyEvent("approved", scope, number, approver, at, "", version.revision)
        )
        return version

    async def activate(
        self, scope: str, number: int, *, actor: str, reason: str = ""
    ) -> PolicyVersion:
        """Enforce an approved version now (every gateway swaps to it)."""
        return await self._switch(scope, number, actor=actor, reason=reason, rollback=False)

    async def rollback(
        self, scope: str, number: int | None = None, *, actor: str, reason: str = ""
    ) -> PolicyVersion:
        """Enforce an earlier version again: ``number``, or the one active before the current.

        Only versions that were active before are eligible (they were approved then), so a
        rollback needs no new approval and takes one call.
        """
        if number is None:
            number = await self._previous_active(scope)
        return await self._switch(scope, number, actor=actor, reason=reason, rollback=True)

    async def _previous_active(self, scope: str) -> int:
        current = await self.pointer(scope, "active")
        for event in await self.events(scope, limit=1000):
            if event["action"] in {"activated", "rolled_back"} and event["version"] == current:
                previous = event.get("previous")
                if previous is not None:
                    return int(previous)
        raise InvalidTransition(f"{scope} has no earlier active version to roll back to")

    async def _switch(
        self, scope: str, number: int, *, actor: str, reason: str, rollback: bool
    ) -> PolicyVersion:
        version = await self.get(scope, number)
        if scope == BASE_SCOPE:
            await self._check_inheritors(version)
        else:
            await self.resolve_text(scope, version.text, source=f"{scope} v{number}")
        at = now_iso()
        message = json.dumps({"scope": scope, "what": "active", "version": number})
        with _map_errors(f"activate policy {scope} v{number}"):
            status, value = await self._activate(
                keys=[
                    self._key(scope, "v", number),
                    self._key(scope, "active"),
                    self._key(scope, "shadow"),
                ],
                args=[number, at, "1" if rollback else "0", self.channel, message, ""],
            )
        value = _text(value)
        if not int(status):
            raise InvalidTransition(
                {
                    "missing": f"policy scope {scope!r} has no version {number}",
                    "already": f"{scope} v{number} is already active",
                    "unapproved": f"{scope} v{number} is not approved yet: a policy_approver "
                    "other than its author must approve it first",
                    "never": f"{scope} v{number} was never active; rollback only returns to "
                    "earlier active versions (activate it instead, once approved)",
                }.get(value, f"cannot activate {scope} v{number}: {value}")
            )
        previous = int(value) if value else None
        action: Literal["activated", "rolled_back"] = "rolled_back" if rollback else "activated"
        await self._event(
            PolicyEvent(action, scope, number, actor, at, reason, version.revision, previous)
        )
        return await self.get(scope, number)

    async def _check_inheritors(self, base_version: PolicyVersion) -> None:
        """A new base must keep every inheriting tenant policy valid."""
        base = validate_policy_text(
            base_version.text, source=f"base v{base_version.number}", known=self.known
        )
        for scope in await self.scopes():
            if scope == BASE_SCOPE:
                continue
            active = await self.active(scope)
            if active is None:
                continue
            try:
                validate_policy_text(
                    active.text,
                    source=f"{scope} v{active.number}",
                    known=self.stored_known,
                    base=base,
                )
            except PolicyValidationError as exc:
                raise InvalidTransition(
                    f"base v{base_version.number} would make the active policy of tenant "
                    f"{scope!r} invalid:\n{exc}"
                ) from None

    async def set_shadow(self, scope: str, number: int | None, *, actor: str) -> None:
        """Evaluate ``number`` in shadow on live traffic (None: stop)."""
        revision = ""
        if number is not None:
            version = await self.get(scope, number)
            await self.resolve_text(scope, version.text, source=f"{scope} v{number}")
            revision = version.revision
        message = json.dumps({"scope": scope, "what": "shadow", "version": number})
        with _map_errors(f"set the shadow policy of {scope}"):
            # a script, not MULTI: Redis Cluster pipelines refuse PUBLISH
            shown = "" if number is None else str(number)
            await self._shadow(
                keys=[self._key(scope, "shadow")], args=[shown, self.channel, message]
            )
        reason = "shadow started" if number is not None else "shadow stopped"
        await self._event(PolicyEvent("shadow", scope, number, actor, now_iso(), reason, revision))

    async def _event(self, event: PolicyEvent) -> None:
        with _map_errors("record a policy event"):
            await self._redis.rpush(self._key(event.scope, "events"), json.dumps(event.to_json()))
        if self._on_event is not None:
            await self._on_event(event)


# any Redis error, and what a cluster raises while failing over (genguard_keyspace)
_STORE_ERRORS: tuple[type[BaseException], ...] = (redis_exceptions.RedisError, *REDIS_UNAVAILABLE)


@contextmanager
def _map_errors(action: str) -> Iterator[None]:
    """Translate redis-py (and socket) errors into ``PolicyUnavailable``."""
    try:
        yield
    except _STORE_ERRORS as exc:
        raise PolicyUnavailable(f"{action}: Redis unavailable ({exc})") from exc
