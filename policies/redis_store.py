"""The policy a gateway enforces, served from memory and kept in step with Redis.

``RedisPolicyStore`` resolves every scope's active (and shadow) version into ready
``PolicyBundle``s — tenant overrides merged over the base — and keeps them in one immutable
snapshot. ``current(tenant)`` is a dict lookup; a change published by any gateway (or the CLI)
on the ``changes`` channel makes every process re-read the pointers, validate and warm the new
bundles, and then swap the snapshot in one assignment, so a request sees either the old policy or
the new one, never a mix. A periodic re-read covers messages missed while disconnected.

The last good active versions are written under ``cache_dir``; if Redis is unreachable at
start-up the gateway serves them (and says so) and catches up once Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policies.errors import PolicyError, PolicyUnavailable
from policies.loader import PolicyBundle
from policies.validate import validate_policy_text
from policies.versions import BASE_SCOPE, PolicyVersion, PolicyVersions

__all__ = ["PolicySnapshot", "RedisPolicyStore"]

logger = logging.getLogger(__name__)

Prepare = Callable[[PolicyBundle], Awaitable[None]]
RawVersions = dict[str, tuple[PolicyVersion | None, PolicyVersion | None]]


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    """Resolved bundles by scope; replaced as a whole, never mutated."""

    active: dict[str, PolicyBundle]
    shadow: dict[str, PolicyBundle] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)  # active version number by scope
    from_cache: bool = False


class RedisPolicyStore:
    """``PolicyStore`` backed by ``PolicyVersions``, hot-reloaded through pub/sub."""

    def __init__(
        self,
        versions: PolicyVersions,
        *,
        cache_dir: Path,
        prepare: Prepare | None = None,
        resync_s: float = 30.0,
    ) -> None:
        self.versions = versions
        self._cache_dir = cache_dir
        self._prepare = prepare
        self._resync_s = resync_s
        self._snapshot: PolicySnapshot | None = None
        self._built: dict[tuple[str, int, str], PolicyBundle] = {}
        self._task: asyncio.Task[None] | None = None
        self._reload_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self.reloads = 0

    # -- PolicyStore --------------------------------------------------------------------------

    @property
    def snapshot(self) -> PolicySnapshot:
        if self._snapshot is None:
            raise PolicyError("the policy store is not open yet")
        return self._snapshot

    async def current(self, tenant: str) -> PolicyBundle:
        active = self.snapshot.active
        return active.get(tenant) or active[BASE_SCOPE]

    async def shadow(self, tenant: str) -> PolicyBundle | None:
        snapshot = self.snapshot
        if tenant in snapshot.shadow:
            return snapshot.shadow[tenant]
        if tenant in snapshot.active:
            return None  # the tenant's own policy has no shadow (see _resolve)
        return snapshot.shadow.get(BASE_SCOPE)

    # -- life cycle ---------------------------------------------------------------------------

    async def open(self, seed_text: str, *, seed_source: str) -> PolicySnapshot:
        """Seed version 1 if Redis has no policy, load everything; fall back to the local copy."""
        try:
            await self.versions.seed(seed_text, source=seed_source)
            return await self.reload()
        except PolicyUnavailable as exc:
            snapshot = await self._load_cache()
            if snapshot is None:
                raise PolicyUnavailable(
                    f"{exc}; and no local copy of the last good policy in {self._cache_dir}"
                ) from exc
            logger.warning("policy store: Redis unreachable (%s); serving the local copy", exc)
            self._snapshot = snapshot
            return snapshot

    def start(self) -> None:
        """Follow changes in the background (one task per process)."""
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._follow(), name="policy-follower")

    async def stop(self) -> None:
        """Stop following. The follower notices within a second (cancelling a pub/sub read
        mid-flight can hang redis-py, so it is asked to stop and only cancelled as a last
        resort)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        done, _ = await asyncio.wait({task}, timeout=5.0)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, 1.0)

    async def reload(self) -> PolicySnapshot:
        """Re-read every scope from Redis, build what changed, swap atomically."""
        async with self._reload_lock:
            raw: dict[str, tuple[PolicyVersion | None, PolicyVersion | None]] = {}
            for scope in await self.versions.scopes():
                active_n = await self.versions.pointer(scope, "active")
                shadow_n = await self.versions.pointer(scope, "shadow")
                raw[scope] = (
                    await self.versions.get(scope, active_n) if active_n is not None else None,
                    await self.versions.get(scope, shadow_n) if shadow_n is not None else None,
                )
            snapshot = await self._resolve(raw)
            self._snapshot = snapshot
            self.reloads += 1
            self._write_cache(raw)
            return snapshot

    async def _resolve(
        self, raw: dict[str, tuple[PolicyVersion | None, PolicyVersion | None]]
    ) -> PolicySnapshot:
        previous = self._snapshot
        base_active, base_shadow = raw.get(BASE_SCOPE, (None, None))
        if base_active is None:
            raise PolicyError("no active base policy")
        base = await self._build(base_active, None)
        active = {BASE_SCOPE: base}
        shadow: dict[str, PolicyBundle] = {}
        numbers = {BASE_SCOPE: base_active.number}
        if base_shadow is not None:
            shadow[BASE_SCOPE] = await self._build(base_shadow, None)
        for scope, (own_active, own_shadow) in raw.items():
            if scope == BASE_SCOPE:
                continue
            try:
                if own_active is not None:
                    active[scope] = await self._build(own_active, base)
                    numbers[scope] = own_active.number
                if own_shadow is not None:
                    shadow[scope] = await self._build(own_shadow, base)
                elif (
                    own_active is not None
                    and BASE_SCOPE in shadow
                    and active[scope].policy.extends == "base"
                ):
                    shadow[scope] = await self._build(own_active, shadow[BASE_SCOPE])
            except PolicyError as exc:  # keep serving what this tenant had
                logger.error("policy for tenant %r not reloaded: %s", scope, exc)
                if previous is not None and scope in previous.active:
                    active[scope] = previous.active[scope]
        return PolicySnapshot(active=active, shadow=shadow, versions=numbers)

    async def _build(self, version: PolicyVersion, base: PolicyBundle | None) -> PolicyBundle:
        key = (version.scope, version.number, base.revision if base else "")
        bundle = self._built.get(key)
        if bundle is None:
            bundle = validate_policy_text(
                version.text,
                source=f"{version.scope} v{version.number}",
                known=self.versions.stored_known,
                base=base,
            )
            if self._prepare is not None:
                await self._prepare(bundle)
            self._built[key] = bundle
        return bundle

    async def _follow(self) -> None:
        """Reload on every published change; re-read periodically; reconnect after errors."""
        redis = self.versions.redis
        while not self._stopping.is_set():
            try:
                async with redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.versions.channel)
                    await self.reload()  # anything missed while (re)connecting
                    loop = asyncio.get_running_loop()
                    next_resync = loop.time() + self._resync_s
                    while not self._stopping.is_set():
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=0.5
                        )
                        if message is not None or loop.time() >= next_resync:
                            await self.reload()
                            next_resync = loop.time() + self._resync_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("policy follower: %s; retrying in 1s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 1.0)

    # -- the local copy -----------------------------------------------------------------------

    def _write_cache(self, raw: RawVersions) -> None:
        data: dict[str, Any] = {
            scope: active.to_json() for scope, (active, _) in raw.items() if active is not None
        }
        try:
            self._cache_dir.mkdir(parents=True, exist_ok=True)
            path = self._cache_dir / "active-policies.json"
            # one tmp name per process: several workers may share this data dir
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1))
            tmp.replace(path)  # atomic: a crash never leaves a half-written copy
        except OSError as exc:
            logger.warning("could not persist the active policies locally: %s", exc)

    async def _load_cache(self) -> PolicySnapshot | None:
        path = self._cache_dir / "active-policies.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        raw: RawVersions = {
            scope: (PolicyVersion(**version), None)
            for scope, version in data.items()
            if isinstance(version, dict)
        }
        snapshot = await self._resolve(raw)
        return PolicySnapshot(snapshot.active, {}, snapshot.versions, from_cache=True)
