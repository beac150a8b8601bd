"""The gateway behind Redis Sentinel (1 master, 1 replica, 1 sentinel; real processes) keeps
serving through a failover: the master is killed, the sentinel promotes the replica, and key
checks, requests, audit appends (one chain, nothing lost) and policy reloads go on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from policies.versions import BASE_SCOPE, PolicyVersions
from tests.redis_ha.conftest import CANDIDATE, HaGateway, ha_settings, image_decision, serve_gateway
from tests.redis_ha.topology import MASTER_NAME, SentinelGroup, sentinel_group, wait_until


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    with sentinel_group(tmp_path_factory.mktemp("sentinel")) as running:
        yield running


@pytest.fixture(scope="module")
def gateway(group: SentinelGroup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaGateway]:
    settings = ha_settings(
        tmp_path_factory.mktemp("gateway") / "data",
        redis_sentinels=group.sentinels_setting,
        redis_sentinel_master=MASTER_NAME,
    )
    with serve_gateway(settings) as running:
        yield running


def audit_verified(gateway: HaGateway, auditor: str, decision_ids: list[str]) -> None:
    with gateway.http(auditor) as http:
        for decision_id in decision_ids:
            found = http.get(f"/admin/audit/records/{decision_id}")
            assert found.status_code == 200, (decision_id, found.text)
        report = http.get("/admin/audit/verify-chain").json()
    assert report["ok"] and report["tenant"] == "acme", report


def test_gateway_survives_a_sentinel_failover(
    group: SentinelGroup, gateway: HaGateway, tmp_path: Path
) -> None:
    client, auditor = gateway.create_keys([("acme", "client"), ("acme", "auditor")])
    decisions = []
    for prompt, expected in (("a cat on a sofa", "allow"), ("a nude statue", "block")):
        status, decision, decision_id = image_decision(gateway, client, prompt)
        assert (status, decision) == ((200, "allow") if expected == "allow" else (400, "block"))
        decisions.append(decision_id)
    audit_verified(gateway, auditor, decisions)

    # the replica holds every write, then the master dies and the sentinel promotes the replica
    with group.master.client() as master:
        assert master.wait(1, 10_000) == 1
    old_master = group.master.port
    group.master.kill()
    wait_until("the sentinel to promote the replica", lambda: group.promoted(old_master))
    assert group.master_port() == group.replica.port

    # requests, old and new keys, audit appends: all on the new master
    (late_client,) = gateway.create_keys([("acme", "client")])
    for key, prompt in ((client, "a lighthouse at dusk"), (late_client, "a dog in the park")):
        status, decision, decision_id = image_decision(gateway, key, prompt)
        assert (status, decision) == (200, "allow")
        decisions.append(decision_id)
    with gateway.http(late_client) as http:
        assert http.get("/v1/models").status_code == 200

    # a policy activated elsewhere (as the CLI does) reaches the gateway through pub/sub
    async def activate(redis: Redis) -> int:
        versions = PolicyVersions(redis)
        proposed = await versions.propose(BASE_SCOPE, CANDIDATE, author="alice", reason="ha")
        await versions.approve(BASE_SCOPE, proposed.number, approver="bob")
        await versions.activate(BASE_SCOPE, proposed.number, actor="bob")
        return proposed.number

    assert gateway.with_redis(activate) == 2
    deadline = time.monotonic() + 20  # under the 30 s periodic re-read: only pub/sub is this fast
    while image_decision(gateway, client, "a lighthouse at dusk")[1] != "block":
        assert time.monotonic() < deadline, "the activated policy never reached the gateway"
        time.sleep(0.2)

    # every record reached the promoted master, and the chain still verifies end to end
    audit_verified(gateway, auditor, decisions)
    with gateway.http() as http:
        assert http.get("/readyz").status_code == 200
