"""A Redis Cluster master dies under the gateway (3 masters, the audit master with one replica;
real processes): while the cluster answers ``CLUSTERDOWN`` requests still succeed, their audit
records go to the local spool, /readyz says not ready; once the replica takes over, the spool
is replayed into the stream on the new master and the tenant's chain verifies, nothing lost and
nothing audited twice."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from redis import exceptions as redis_exceptions

from audit.errors import AuditUnavailable
from audit.stream import map_redis_errors
from gateway.errors import error_for_exception
from gateway.keys import KeyStoreUnavailable
from gateway.keys import _redis_errors as key_errors
from genguard_keyspace import REDIS_UNAVAILABLE
from policies.errors import PolicyUnavailable
from policies.versions import _map_errors as policy_errors
from tests.redis_ha.conftest import HaGateway, image_decision, serve_on_cluster
from tests.redis_ha.topology import RedisClusterGroup, RedisProcess, redis_cluster, wait_until

AUDIT_STREAM = "{genguard:audit}:stream:acme"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterGroup]:
    root = tmp_path_factory.mktemp("cluster")
    with redis_cluster(root) as running:
        running.add_replica(running.master_for(AUDIT_STREAM), root / "replica")
        yield running


@pytest.fixture(scope="module")
def gateway(
    cluster: RedisClusterGroup, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HaGateway]:
    with serve_on_cluster(cluster.url, tmp_path_factory.mktemp("gateway") / "data") as running:
        yield running


def spooled_ids(gateway: HaGateway) -> list[str]:
    spool = gateway.settings.data_dir / "audit-spool.jsonl"
    if not spool.exists():
        return []
    lines = spool.read_text().splitlines()
    return [json.loads(line)["decision_id"] for line in lines if line.strip()]


def audited(gateway: HaGateway, auditor: str, decision_id: str) -> bool:
    with gateway.http(auditor) as http:
        return http.get(f"/admin/audit/records/{decision_id}").status_code == 200


def test_requests_survive_a_cluster_master_failure(
    cluster: RedisClusterGroup, gateway: HaGateway
) -> None:
    client, auditor = gateway.create_keys([("acme", "client"), ("acme", "auditor")])
    before = [image_decision(gateway, client, p) for p in ("a cat on a sofa", "a nude statue")]
    assert [d[:2] for d in before] == [(200, "allow"), (400, "block")]
    decisions = [d[2] for d in before]
    assert all(audited(gateway, auditor, d) for d in decisions)

    # the replica holds every write; then the audit stream's master dies and, with no automatic
    # failover, every node answers CLUSTERDOWN (full slot coverage is required by default)
    master = cluster.master_for(AUDIT_STREAM)
    (replica,) = cluster.replicas
    with master.client() as node:
        assert node.wait(1, 10_000) == 1
    master.kill()
    survivors: list[RedisProcess] = [n for n in cluster.nodes if n is not master]
    wait_until("the cluster to report fail", lambda: cluster.state(survivors[0]) == "fail")

    # requests go on (the key was verified before: outage grace) and their audit records are
    # spooled; an image that passed the checks is refused with a 503 (its provenance manifest
    # cannot be registered), never a 500
    with gateway.http(client) as http:
        moderated = http.post("/v1/moderations", json={"input": "a dog in the park"})
    assert moderated.status_code == 200, moderated.text
    blocked = image_decision(gateway, client, "a nude model")
    assert blocked[:2] == (400, "block")
    with gateway.http(client) as http:
        refused = http.post("/v1/images/generations", json={"prompt": "a dog", "size": "256x256"})
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "redis_unavailable"
    outage_ids = [moderated.headers["x-genguard-decision-id"], blocked[2],
                  refused.headers["x-genguard-decision-id"]]  # fmt: skip
    assert spooled_ids(gateway)[-3:] == outage_ids
    with gateway.http() as http:
        ready = http.get("/readyz")
    assert ready.status_code == 503, ready.text

    # the replica takes over: the maintenance task replays the spool onto the new master
    cluster.takeover(replica)
    assert cluster.master_for(AUDIT_STREAM) is replica
    decisions += outage_ids
    wait_until(
        "the spooled records to be replayed",
        lambda: all(audited(gateway, auditor, d) for d in outage_ids),
        timeout_s=60,
    )
    status, decision, after_id = image_decision(gateway, client, "a lighthouse at dusk")
    assert (status, decision) == (200, "allow")
    decisions.append(after_id)
    assert audited(gateway, auditor, after_id)

    # one record per decision, in one chain that verifies end to end
    with gateway.http(auditor) as http:
        report = http.get("/admin/audit/verify-chain").json()
        query = http.get("/admin/audit/query", params={"limit": 100}).json()
    assert report["ok"] and report["tenant"] == "acme", report
    listed = [r["decision_id"] for r in query["records"] if r["decision_id"].startswith("dec_")]
    assert sorted(listed) == sorted(decisions), (listed, decisions)  # admin actions aside
    with gateway.http() as http:
        assert http.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    "error",
    [
        redis_exceptions.ClusterDownError("CLUSTERDOWN The cluster is down"),
        redis_exceptions.MasterDownError("MASTERDOWN Link with MASTER is down"),
        redis_exceptions.TryAgainError("TRYAGAIN Multiple keys request during rehashing"),
        redis_exceptions.MovedError("3999 127.0.0.1:6381"),
        redis_exceptions.ClusterError("TTL exhausted."),
        redis_exceptions.SlotNotCoveredError('Slot "42" is not covered by the cluster.'),
        redis_exceptions.ReadOnlyError("READONLY You can't write against a read only replica."),
        redis_exceptions.ConnectionError("Error 111 connecting"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_failover_error_means_unavailable(error: Exception) -> None:
    """Each store maps the same list to its own 'unavailable' error, and a request that meets one
    mid-outage gets 503 redis_unavailable, not 500."""

    def raised_by(mapping: Callable[[str], AbstractContextManager[None]]) -> BaseException:
        with pytest.raises(Exception) as info, mapping("step"):
            raise error
        return info.value

    assert isinstance(error, REDIS_UNAVAILABLE)
    assert isinstance(raised_by(map_redis_errors), AuditUnavailable)
    assert isinstance(raised_by(policy_errors), PolicyUnavailable)
    assert isinstance(raised_by(key_errors), KeyStoreUnavailable)
    api = error_for_exception(error)
    assert (api.status, api.code) == (503, "redis_unavailable")
