"""The versioned policy store on a real Redis: seed, propose → approve → activate, rollback,
inheritance, hot reload across two stores (two gateway processes) and the local copy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from classifiers.base import Scores
from classifiers.taxonomy import Category
from gateway.embedded_redis import free_port
from policies.decision import decide
from policies.errors import (
    ApprovalRefused,
    InvalidTransition,
    PolicyUnavailable,
    PolicyValidationError,
    VersionNotFound,
)
from policies.loader import default_policy_text
from policies.redis_store import RedisPolicyStore
from policies.versions import BASE_SCOPE, PolicyEvent, PolicyVersions

STRICT = default_policy_text().replace(
    "{id: prompt-obfuscation, category: prompt-attack, threshold: 0.5, action: flag}",
    "{id: prompt-obfuscation, category: prompt-attack, threshold: 0.5, action: block}",
)
assert default_policy_text() != STRICT


def attack_action(bundle_policy: object) -> str:
    from policies.schema import Policy

    assert isinstance(bundle_policy, Policy)
    scores = [Scores("term_list", {Category.PROMPT_ATTACK: 0.9})]
    return decide("prompt", bundle_policy.prompt, scores).action.value


async def test_seed_once_then_propose_approve_activate(
    versions: PolicyVersions, events: list[PolicyEvent]
) -> None:
    assert await versions.seed(default_policy_text(), source="default.yaml") is True
    assert await versions.seed(STRICT, source="other.yaml") is False  # never overwrites
    v1 = await versions.active(BASE_SCOPE)
    assert v1 is not None and (v1.number, v1.author, v1.state) == (1, "system", "approved")

    v2 = await versions.propose(BASE_SCOPE, STRICT, author="acme/editor", reason="block attacks")
    assert (v2.number, v2.state, v2.author, v2.reason) == (
        2,
        "proposed",
        "acme/editor",
        "block attacks",
    )
    assert v2.created_at.endswith("Z")
    with pytest.raises(InvalidTransition, match="not approved"):
        await versions.activate(BASE_SCOPE, 2, actor="acme/editor")
    with pytest.raises(ApprovalRefused, match="second person"):
        await versions.approve(BASE_SCOPE, 2, approver="acme/editor")
    approved = await versions.approve(BASE_SCOPE, 2, approver="acme/approver")
    assert (approved.state, approved.approved_by) == ("approved", "acme/approver")
    with pytest.raises(InvalidTransition, match="approved, not proposed"):
        await versions.approve(BASE_SCOPE, 2, approver="acme/other")
    await versions.activate(BASE_SCOPE, 2, actor="acme/approver", reason="go")
    assert await versions.pointer(BASE_SCOPE, "active") == 2
    # the version itself never changed: same text and revision as proposed
    stored = await versions.get(BASE_SCOPE, 2)
    assert (stored.text, stored.revision) == (STRICT, v2.revision)
    assert [(e.action, e.version, e.actor) for e in events] == [
        ("seeded", 1, "system"),
        ("proposed", 2, "acme/editor"),
        ("approved", 2, "acme/approver"),
        ("activated", 2, "acme/approver"),
    ]
    assert events[-1].previous == 1
    with pytest.raises(VersionNotFound):
        await versions.approve(BASE_SCOPE, 9, approver="x")


async def test_broken_yaml_rejected_with_lines_and_active_version_unchanged(
    versions: PolicyVersions,
) -> None:
    await versions.seed(default_policy_text(), source="default.yaml")
    broken = "id: broken\nprompt:\n  rules:\n    - {id: r, category: sexal, threshold: 0.5}\n"
    with pytest.raises(PolicyValidationError) as info:
        await versions.propose(BASE_SCOPE, broken, author="a", reason="typo")
    issue = info.value.issues[0]
    assert (issue.line, issue.suggestion) == (4, "sexual")
    with pytest.raises(PolicyValidationError) as info:
        await versions.propose(BASE_SCOPE, "id: x\nprompt: [unclosed\n", author="a", reason="r")
    assert info.value.issues[0].line == 3 and "YAML syntax error" in info.value.issues[0].message
    assert await versions.pointer(BASE_SCOPE, "active") == 1
    assert [v.number for v in await versions.versions(BASE_SCOPE)] == [1]


async def test_rollback_restores_the_exact_previous_behaviour(
    versions: PolicyVersions, tmp_path: Path
) -> None:
    store = RedisPolicyStore(versions, cache_dir=tmp_path)
    await store.open(default_policy_text(), seed_source="default.yaml")
    before = await store.current("acme")
    assert attack_action(before.policy) == "flag"
    await versions.propose(BASE_SCOPE, STRICT, author="e", reason="strict")
    await versions.approve(BASE_SCOPE, 2, approver="a")
    await versions.activate(BASE_SCOPE, 2, actor="a")
    await store.reload()
    assert attack_action((await store.current("acme")).policy) == "block"
    with pytest.raises(InvalidTransition, match="never active"):
        await versions.propose(BASE_SCOPE, STRICT + "\n# v3\n", author="e", reason="v3")
        await versions.approve(BASE_SCOPE, 3, approver="a")
        await versions.rollback(BASE_SCOPE, 3, actor="a")
    rolled = await versions.rollback(BASE_SCOPE, actor="a", reason="too strict")
    assert rolled.number == 1
    await store.reload()
    after = await store.current("acme")
    assert after.revision == before.revision and after.policy == before.policy
    assert attack_action(after.policy) == "flag"
    with pytest.raises(InvalidTransition, match="already active"):
        await versions.rollback(BASE_SCOPE, 1, actor="a")


async def test_tenant_inherits_base_and_overrides_one_threshold(
    versions: PolicyVersions, tmp_path: Path
) -> None:
    store = RedisPolicyStore(versions, cache_dir=tmp_path)
    await store.open(default_policy_text(), seed_source="default.yaml")
    override = (
        "extends: base\n"
        "id: acme\n"
        "prompt:\n"
        "  rules:\n"
        "    - {id: prompt-obfuscation, category: prompt-attack, threshold: 0.5, action: block}\n"
    )
    with pytest.raises(PolicyValidationError) as info:
        await versions.propose(
            "acme", override.replace("threshold: 0.5", "threshold: 5"), author="e", reason="r"
        )
    assert info.value.issues[0].line == 5  # the line in the tenant's own text
    await versions.propose("acme", override, author="e", reason="acme blocks attacks")
    await versions.approve("acme", 1, approver="a")
    await versions.activate("acme", 1, actor="a")
    await store.reload()
    acme, other = await store.current("acme"), await store.current("other")
    assert acme.id == "acme" and other.id == "default"
    assert attack_action(acme.policy) == "block" and attack_action(other.policy) == "flag"
    # inherited parts follow the base: a new base term reaches acme too
    assert acme.policy.prompt.terms == other.policy.prompt.terms
    new_base = default_policy_text().replace("      - gore\n", "      - gore\n      - splatter\n")
    await versions.propose(BASE_SCOPE, new_base, author="e", reason="more terms")
    await versions.approve(BASE_SCOPE, 2, approver="a")
    await versions.activate(BASE_SCOPE, 2, actor="a")
    await store.reload()
    acme2 = await store.current("acme")
    assert "splatter" in acme2.policy.prompt.terms[Category.VIOLENCE_GRAPHIC]
    assert acme2.revision != acme.revision
    assert attack_action(acme2.policy) == "block"


async def test_hot_reload_across_two_stores_and_atomic_swap(
    aredis: aioredis.Redis, prefix: str, tmp_path: Path
) -> None:
    stores = [
        RedisPolicyStore(
            PolicyVersions(aredis, prefix=prefix), cache_dir=tmp_path / name, resync_s=60
        )
        for name in ("a", "b")
    ]
    for store in stores:
        await store.open(default_policy_text(), seed_source="default.yaml")
        store.start()
    try:
        old = await stores[1].current("t")
        seen: set[str] = set()
        editor = stores[0].versions
        await editor.propose(BASE_SCOPE, STRICT, author="e", reason="strict")
        await editor.approve(BASE_SCOPE, 2, approver="a")
        await editor.activate(BASE_SCOPE, 2, actor="a")
        for _ in range(250):  # the other process follows through pub/sub, no restart
            bundle = await stores[1].current("t")
            seen.add(bundle.revision)
            if bundle.revision != old.revision:
                break
            await asyncio.sleep(0.02)
        new = await stores[1].current("t")
        assert new.revision != old.revision and attack_action(new.policy) == "block"
        assert seen <= {old.revision, new.revision}  # either old or new, never a mix
    finally:
        for store in stores:
            await store.stop()


async def test_starts_from_the_local_copy_when_redis_is_down(
    versions: PolicyVersions, tmp_path: Path
) -> None:
    store = RedisPolicyStore(versions, cache_dir=tmp_path)
    await store.open(default_policy_text(), seed_source="default.yaml")
    await versions.propose(BASE_SCOPE, STRICT, author="e", reason="strict")
    await versions.approve(BASE_SCOPE, 2, approver="a")
    await versions.activate(BASE_SCOPE, 2, actor="a")
    good = await store.reload()
    down = aioredis.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    try:
        offline = RedisPolicyStore(PolicyVersions(down), cache_dir=tmp_path)
        snapshot = await offline.open(default_policy_text(), seed_source="default.yaml")
        assert snapshot.from_cache
        bundle = await offline.current("any")
        assert bundle.revision == good.active[BASE_SCOPE].revision
        assert attack_action(bundle.policy) == "block"  # the last good version, not the seed
        with pytest.raises(PolicyUnavailable, match="no local copy"):
            await RedisPolicyStore(PolicyVersions(down), cache_dir=tmp_path / "none").open(
                default_policy_text(), seed_source="default.yaml"
            )
    finally:
        await down.aclose()
