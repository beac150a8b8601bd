"""/admin/audit/* on a real gateway: roles, tenant isolation, filters, export, audited reads."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import openai
import pytest

from tests.e2e.audit_helpers import count, stream_records
from tests.e2e.conftest import RunningGateway, create_keys, redis_env

BLOCKED = "a nude woman on a beach"


@dataclass(frozen=True)
class Keys:
    acme_client: str
    acme_auditor: str
    globex_client: str
    globex_auditor: str


@pytest.fixture(scope="module")
def keys(gateway: RunningGateway) -> Keys:
    keys = Keys(
        *create_keys(
            gateway.redis_url,
            [("acme", "client"), ("acme", "auditor"), ("globex", "client"), ("globex", "auditor")],
        )
    )
    acme = gateway.client(keys.acme_client)
    acme.moderations.create(input="a watercolour of a lighthouse")
    with pytest.raises(openai.BadRequestError):
        acme.images.generate(prompt=BLOCKED, response_format="b64_json")
    acme.images.generate(prompt="a lighthouse at dawn", size="256x256", response_format="b64_json")
    gateway.client(keys.globex_client).moderations.create(input="globex only")
    return keys


@pytest.fixture
def http(gateway: RunningGateway) -> Iterator[httpx.Client]:
    with gateway.http(key="") as client:
        yield client


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_an_auditor_finds_the_blocked_request_by_decision_and_category(
    gateway: RunningGateway, keys: Keys, http: httpx.Client
) -> None:
    response = http.get(
        "/admin/audit/query",
        params={"decision": "block", "category": "sexual"},
        headers=auth(keys.acme_auditor),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tenant"] == "acme"
    assert [r["input"]["prompt"] for r in body["records"]] == [BLOCKED]
    record = body["records"][0]
    assert record["schema_version"] == 1
    assert record["decision"]["reasons"][0]["category"] == "sexual"
    detail = http.get(
        f"/admin/audit/records/{record['decision_id']}", headers=auth(keys.acme_auditor)
    )
    assert detail.status_code == 200
    assert detail.json() == record


def test_the_image_can_be_traced_back_by_its_sha256(
    gateway: RunningGateway, keys: Keys, http: httpx.Client
) -> None:
    allowed = http.get(
        "/admin/audit/query",
        params={"decision": "allow", "route": "images.generations"},
        headers=auth(keys.acme_auditor),
    ).json()["records"]
    assert len(allowed) == 1
    digest = allowed[0]["outputs"][0]["sha256"]
    found = http.get(
        "/admin/audit/query", params={"output_sha256": digest}, headers=auth(keys.acme_auditor)
    ).json()["records"]
    assert [r["decision_id"] for r in found] == [allowed[0]["decision_id"]]


def test_an_auditor_of_one_tenant_cannot_read_another(
    gateway: RunningGateway, keys: Keys, http: httpx.Client
) -> None:
    globex_records = stream_records(gateway.redis(), "globex")
    globex_id = next(r["decision_id"] for r in globex_records if r["route"] == "moderations")
    for path, params in (
        ("/admin/audit/query", {"tenant": "globex"}),
        ("/admin/audit/stats", {"tenant": "globex"}),
        ("/admin/audit/export", {"tenant": "globex"}),
        ("/admin/audit/verify-chain", {"tenant": "globex"}),
    ):
        response = http.get(path, params=params, headers=auth(keys.acme_auditor))
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "tenant_forbidden"
    hidden = http.get(f"/admin/audit/records/{globex_id}", headers=auth(keys.acme_auditor))
    assert hidden.status_code == 404
    by_filter = http.get(
        "/admin/audit/query", params={"decision_id": globex_id}, headers=auth(keys.acme_auditor)
    )
    assert by_filter.json()["records"] == []
    # globex's own auditor sees it; the acme client key has no auditor role at all
    own = http.get(f"/admin/audit/records/{globex_id}", headers=auth(keys.globex_auditor))
    assert own.status_code == 200
    client_only = http.get("/admin/audit/query", headers=auth(keys.acme_client))
    assert client_only.status_code == 403
    assert http.get("/admin/audit/query").status_code == 401


def test_an_admin_may_name_any_tenant(
    gateway: RunningGateway, keys: Keys, http: httpx.Client
) -> None:
    response = http.get(
        "/admin/audit/query", params={"tenant": "globex"}, headers=auth(gateway.admin_key)
    )
    assert response.status_code == 200
    assert {r["tenant"] for r in response.json()["records"]} == {"globex"}


def test_stats_export_and_verify(gateway: RunningGateway, keys: Keys, http: httpx.Client) -> None:
    stats = http.get("/admin/audit/stats", headers=auth(keys.acme_auditor)).json()
    totals: dict[str, int] = {}
    for bucket in stats["buckets"]:
        for action, n in bucket["decisions"].items():
            totals[action] = totals.get(action, 0) + n
    assert totals == {"allow": 2, "block": 1}  # admin reads are not counted
    exported = http.get(
        "/admin/audit/export", params={"format": "csv"}, headers=auth(keys.acme_auditor)
    )
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {"allow", "block"} <= {row["action"] for row in rows}
    jsonl = http.get("/admin/audit/export", headers=auth(keys.acme_auditor)).text.splitlines()
    assert len(jsonl) == len(rows) + 1  # the CSV export itself was audited in between
    report = http.get("/admin/audit/verify-chain", headers=auth(keys.acme_auditor)).json()
    assert report["ok"] and report["tenant"] == "acme"


def test_every_admin_read_is_itself_audited(
    gateway: RunningGateway, keys: Keys, http: httpx.Client
) -> None:
    with gateway.redis() as r:
        before = count(r, "acme")
        http.get(
            "/admin/audit/query", params={"decision": "block"}, headers=auth(keys.acme_auditor)
        )
        reads = [x for x in stream_records(r, "acme") if x["route"] == "admin.audit.query"]
        assert count(r, "acme") == before + 1
    last = reads[-1]
    assert last["input"]["params"]["decision"] == "block"
    assert last["key_id"] == keys.acme_auditor.split("_")[1]


def test_cli_query_and_stats_match_the_api(gateway: RunningGateway, keys: Keys) -> None:
    env = {
        **redis_env(gateway.redis_url),
        "GENGUARD_DATA_DIR": str(gateway.settings.data_dir),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "query", "--tenant", "acme",
         "--decision", "block", "--category", "sexual"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert BLOCKED in result.stdout and len(result.stdout.splitlines()) == 1
