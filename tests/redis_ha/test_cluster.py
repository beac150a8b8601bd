"""A representative slice of the gateway on a 3-master Redis Cluster (real processes, created
with ``redis-cli --cluster create``): keys, requests audited, policy propose / approve / activate
and the pub/sub reload, audit query and chain verification, a hash bank, the review queue."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from policies.versions import BASE_SCOPE, PolicyVersions
from tests.redis_ha.conftest import (
    CANDIDATE,
    HaGateway,
    image_decision,
    serve_on_cluster,
)
from tests.redis_ha.topology import RedisClusterGroup, redis_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterGroup]:
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture(scope="module")
def gateway(
    cluster: RedisClusterGroup, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HaGateway]:
    with serve_on_cluster(cluster.url, tmp_path_factory.mktemp("gateway") / "data") as running:
        yield running


def test_gateway_slice_on_a_redis_cluster(gateway: HaGateway) -> None:
    client, auditor, reviewer = gateway.create_keys(
        [("acme", "client"), ("acme", "auditor"), ("acme", "reviewer")]
    )
    # the base policy belongs to the operator's tenant
    editor, approver = gateway.create_keys(
        [("default", "policy_editor"), ("default", "policy_approver")]
    )

    # requests, allowed and blocked, each audited
    allowed = image_decision(gateway, client, "a lighthouse at dusk")
    blocked = image_decision(gateway, client, "a nude statue")
    assert allowed[:2] == (200, "allow") and blocked[:2] == (400, "block")

    # review: the output is held, a reviewer approves it, the requester fetches it
    status, decision, held_id = image_decision(gateway, client, "a heist at midnight")
    assert (status, decision) == (202, "review")
    with gateway.http(reviewer) as http:
        queue = http.get("/admin/review").json()["data"]
        assert [item["id"] for item in queue] == [held_id]
        approved = http.post(f"/admin/review/{held_id}/approve", json={"note": "fiction"})
        assert approved.status_code == 200 and approved.json()["status"] == "approved"
        assert http.get("/admin/review").json()["data"] == []
    with gateway.http(client) as http:
        assert http.get(f"/v1/reviews/{held_id}").status_code == 200

    # a hash bank (its hashes and version counter change in one MULTI)
    with gateway.http() as http:
        assert http.post("/admin/hashbanks", json={"name": "known-bad"}).status_code == 201
        added = http.post("/admin/hashbanks/known-bad/hashes", json={"hashes": ["ab" * 32]})
        assert added.status_code == 201, added.text
        banks = http.get("/admin/hashbanks").json()["data"]
        assert [(b["name"], b["size"]) for b in banks] == [("known-bad", 1)]

    # the policy workflow through the admin API: two people, enforced at once
    def admin(method: str, path: str, key: str, body: object = None) -> dict[str, object]:
        with gateway.http(key) as http:
            response = http.request(method, f"/admin/policies/base{path}", json=body)
        assert response.is_success, response.text
        result: dict[str, object] = response.json()
        return result

    v2 = admin("POST", "/propose", editor, {"yaml": CANDIDATE, "reason": "block lighthouses"})
    admin("POST", f"/versions/{v2['number']}/approve", approver)
    admin("POST", f"/versions/{v2['number']}/activate", approver, {"reason": "go"})
    assert image_decision(gateway, client, "a lighthouse at dusk")[:2] == (400, "block")

    # a rollback made elsewhere (as the CLI does) reaches the gateway through pub/sub
    async def roll_back(redis: Redis) -> None:
        await PolicyVersions(redis).rollback(BASE_SCOPE, actor="carol", reason="too strict")

    gateway.with_redis(roll_back)
    deadline = time.monotonic() + 20  # under the 30 s periodic re-read: only pub/sub is this fast
    while image_decision(gateway, client, "a lighthouse at dusk")[1] != "allow":
        assert time.monotonic() < deadline, "the rollback never reached the gateway"
        time.sleep(0.2)

    # audit: every request is queryable and the tenant's chain verifies
    with gateway.http(auditor) as http:
        for decision_id in (allowed[2], blocked[2], held_id):
            assert http.get(f"/admin/audit/records/{decision_id}").status_code == 200
        query = http.get("/admin/audit/query", params={"decision": "block"}).json()
        assert blocked[2] in {r["decision_id"] for r in query["records"]}
        report = http.get("/admin/audit/verify-chain").json()
    assert report["ok"] and report["tenant"] == "acme", report

    # the keys really are spread over the cluster, each store in its own hash slot
    async def placement(redis: Redis) -> set[int]:
        names = ["{genguard:audit}:stream:acme", "{genguard:policy}:base:active",
                 "{genguard:hashbanks}", "{genguard:review}:" + held_id]  # fmt: skip
        assert [await redis.exists(n) for n in names] == [1, 1, 1, 1]
        return {int(await redis.cluster_keyslot(n)) for n in names}  # type: ignore[attr-defined]

    assert len(gateway.with_redis(placement)) == 4
