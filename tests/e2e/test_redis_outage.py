"""A gateway whose Redis is down at start-up: it starts on the last good policy persisted
locally, says it is not ready, refuses API-key checks with 503 ``auth_unavailable`` (not a
misleading 401), and catches up (policy, pub/sub reloads, keys) once Redis is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from gateway.app import create_app
from gateway.embedded_redis import EmbeddedRedis
from gateway.settings import Settings
from policies.versions import BASE_SCOPE, PolicyVersions
from tests.e2e.conftest import ON_CLUSTER, make_key
from tests.serving import serve_in_thread

SEED = """\
id: outage
prompt:
  classifiers: [term_list]
  terms:
    illicit: [lighthouse]
  rules:
    - {id: prompt-illicit, category: illicit, threshold: 0.5, action: allow}
output:
  image:
    classifiers: []
"""
BLOCKING = SEED.replace("action: allow", "action: block")

pytestmark = pytest.mark.skipif(
    ON_CLUSTER,
    reason="GENGUARD_TEST_REDIS=cluster: these tests stop and restart their own single Redis; "
    "tests/redis_ha/test_cluster_failover.py covers a cluster master failing",
)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis this test may stop and start again (same port, append-only data kept)."""
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True)
    server.start()
    yield server
    server.stop()


def _activate(redis_url: str, text: str, reason: str) -> int:
    async def run() -> int:
        client = aioredis.Redis.from_url(redis_url)
        try:
            versions = PolicyVersions(client)
            proposed = await versions.propose(BASE_SCOPE, text, author="editor", reason=reason)
            await versions.approve(BASE_SCOPE, proposed.number, approver="approver")
            await versions.activate(BASE_SCOPE, proposed.number, actor="approver")
            return proposed.number
        finally:
            await client.aclose()

    return asyncio.run(run())


def _moderate(base_url: str, key: str, text: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/moderations",
        json={"input": text},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def _flagged(base_url: str, key: str, text: str) -> bool:
    response = _moderate(base_url, key, text)
    assert response.status_code == 200, response.text
    return bool(response.json()["results"][0]["flagged"])


def _eventually(check: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_gateway_starts_on_the_local_policy_while_redis_is_down(
    own_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(SEED)
    key = make_key()
    settings = Settings(
        redis_url=own_redis.url,
        data_dir=tmp_path / "gateway",
        bootstrap_key=key,
        policy_file=seed,
    )

    # a first run with Redis up: v2 (blocks "lighthouse") becomes the last good policy on disk
    with serve_in_thread(create_app(settings)) as base_url:
        assert not _flagged(base_url, key, "lighthouse")
        assert _activate(own_redis.url, BLOCKING, "block lighthouses") == 2
        assert _eventually(lambda: _flagged(base_url, key, "lighthouse"))
    own_redis.stop()

    with serve_in_thread(create_app(settings)) as base_url:
        assert httpx.get(f"{base_url}/healthz").status_code == 200
        ready = httpx.get(f"{base_url}/readyz")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["redis"].startswith("unreachable")
        assert checks["policy"] == "base v2 from local copy (Redis unreachable at start-up)"
        refused = _moderate(base_url, key, "lighthouse")
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "auth_unavailable" and "Redis unavailable" in error["message"]
        # a missing key is still the caller's fault
        assert httpx.post(f"{base_url}/v1/moderations", json={"input": "x"}).status_code == 401

        own_redis.start()  # same port, same append-only data
        assert _eventually(lambda: httpx.get(f"{base_url}/readyz").status_code == 200)
        assert _eventually(
            lambda: (
                httpx.get(f"{base_url}/readyz").json()["checks"]["policy"] == "base v2 from Redis"
            )
        )
        assert _flagged(base_url, key, "lighthouse")  # v2, now with keys checked again
        # the policy listener follows changes again after the outage
        assert _activate(own_redis.url, SEED.replace("outage", "outage-v3"), "allow again") == 3
        assert _eventually(lambda: not _flagged(base_url, key, "lighthouse"))


def test_recently_verified_keys_are_served_through_an_outage_and_audited_after(
    own_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    import redis as sync_redis

    seed = tmp_path / "seed.yaml"
    seed.write_text(SEED)
    key = make_key()
    settings = Settings(
        redis_url=own_redis.url,
        data_dir=tmp_path / "gateway",
        bootstrap_key=key,
        policy_file=seed,
        key_outage_grace_s=60,
    )
    with serve_in_thread(create_app(settings)) as base_url:
        assert _moderate(base_url, key, "a harbour").status_code == 200  # key verified
        own_redis.stop()
        served = _moderate(base_url, key, "a harbour at night")
        assert served.status_code == 200, served.text  # within the grace: served, spooled
        decision_id = served.headers["x-genguard-decision-id"]
        never_seen = _moderate(base_url, make_key(), "a harbour")
        assert never_seen.status_code == 503  # not verified before the outage: refused
        assert never_seen.json()["error"]["code"] == "auth_unavailable"

        own_redis.start()
        client = sync_redis.Redis.from_url(own_redis.url)

        def stored() -> bool:
            ids = client.hget("genguard:audit:ids", decision_id)
            return ids is not None

        assert _eventually(stored), "the spooled record reaches Redis once it is back"
        client.close()


def test_policy_can_refuse_requests_while_the_audit_log_is_degraded(
    own_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(SEED + "audit:\n  when_unavailable: refuse\n")
    key = make_key()
    settings = Settings(
        redis_url=own_redis.url,
        data_dir=tmp_path / "gateway",
        bootstrap_key=key,
        policy_file=seed,
        key_outage_grace_s=60,
    )
    with serve_in_thread(create_app(settings)) as base_url:
        assert _moderate(base_url, key, "a harbour").status_code == 200
        own_redis.stop()
        # this request finds the audit log down: its record is spooled, the sink is degraded
        assert _moderate(base_url, key, "a harbour at dusk").status_code == 200
        refused = _moderate(base_url, key, "a harbour at night")
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "audit_unavailable"
        own_redis.start()
        assert _eventually(lambda: _moderate(base_url, key, "a harbour").status_code == 200)
