"""The policy workflow against a real gateway, a second gateway process (``genguard serve`` in
a child process, its own data dir) on the same Redis, and the official openai client: propose,
validate, shadow, dry-run, approve, activate on one gateway and see the other enforce it, roll
back on the other and see the first follow."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.keys import ApiKeyStore, Role
from gateway.settings import Settings
from tests.e2e.audit_helpers import record_for, stream_records
from tests.e2e.conftest import RunningGateway, async_redis, make_key, redis_env
from tests.policy_texts import term_seed
from tests.serving import serve_in_process

SEED = term_seed("e2e")
# shadow and replay judge recorded scores: the candidate changes what a score leads to
CANDIDATE = SEED.replace(
    "category: illicit, threshold: 0.5, action: allow",
    "category: illicit, threshold: 0.5, action: block",
)
BROKEN = SEED.replace("sexual, threshold: 0.5", "sexul, treshold: 0.5")


@pytest.fixture(scope="module")
def gateway_settings(clean_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir: Path = tmp_path_factory.mktemp("genguard-policy")
    seed = data_dir / "seed.yaml"
    seed.write_text(SEED)
    return Settings(
        redis_url=clean_redis, data_dir=data_dir, bootstrap_key=make_key(), policy_file=seed
    )


@dataclass(frozen=True)
class Staff:
    editor: str  # policy_editor + policy_approver: may approve others' changes, not their own
    approver: str
    plain_editor: str
    client: str


@pytest.fixture(scope="module")
def staff(gateway: RunningGateway) -> Staff:
    async def create() -> Staff:
        client = async_redis(gateway.redis_url)
        store = ApiKeyStore(client)
        keys = []
        for roles in (
            {Role.POLICY_EDITOR, Role.POLICY_APPROVER},
            {Role.POLICY_APPROVER},
            {Role.POLICY_EDITOR},
            {Role.CLIENT},
        ):
            key, _ = await store.create(tenant="default", roles=frozenset(roles))
            keys.append(key)
        await client.aclose()
        return Staff(*keys)

    return asyncio.run(create())


class Admin:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def __call__(self, method: str, path: str, key: str, body: Any = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"}
        return self.http.request(method, f"/admin/policies{path}", json=body, headers=headers)


@pytest.fixture(scope="module")
def admin(gateway: RunningGateway) -> Iterator[Admin]:
    client = Admin(gateway.base_url)
    yield client
    client.http.close()


def generate(client: openai.OpenAI, prompt: str) -> tuple[str, str, str]:
    """(decision, decision id, policy revision) of one image request."""
    try:
        raw = client.images.with_raw_response.generate(
            prompt=prompt, size="256x256", response_format="b64_json"
        )
        headers = raw.headers
    except openai.BadRequestError as exc:
        headers = exc.response.headers
    return headers["x-genguard-decision"], headers["x-genguard-decision-id"], ""


def revision_of(gateway: RunningGateway, decision_id: str) -> str:
    with gateway.redis() as r:
        return str(record_for(r, "default", decision_id)["policy"]["revision"])


def moderation_flag(base_url: str, key: str, text: str) -> bool:
    response = httpx.post(
        f"{base_url}/v1/moderations",
        json={"input": text},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return bool(response.json()["results"][0]["flagged"])


def test_policy_workflow_end_to_end(
    gateway: RunningGateway, staff: Staff, admin: Admin, tmp_path: Path
) -> None:
    assert gateway.settings.policy_file is not None
    env = {
        **redis_env(gateway.redis_url),
        "GENGUARD_POLICY_FILE": str(gateway.settings.policy_file),
    }
    with serve_in_process(tmp_path / "gateway-b", env) as base_b:
        _workflow(gateway, staff, admin, base_b)


def _workflow(gateway: RunningGateway, staff: Staff, admin: Admin, base_b: str) -> None:
    client = gateway.client()
    history = admin("GET", "/base/history", staff.plain_editor).json()
    assert history["active"] == 1 and history["versions"][0]["author"] == "system"
    v1_revision = history["versions"][0]["revision"]

    # roles: a client key cannot propose; a plain editor cannot approve
    denied = admin("POST", "/base/propose", staff.client, {"yaml": CANDIDATE, "reason": "x"})
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "insufficient_role"

    # a broken YAML is rejected with line numbers; the old version keeps serving
    broken = admin("POST", "/base/propose", staff.editor, {"yaml": BROKEN, "reason": "typo"})
    assert broken.status_code == 422
    issues = broken.json()["error"]["issues"]
    assert {(i["line"], i["suggestion"]) for i in issues} >= {(8, "threshold"), (8, "sexual")}
    assert admin("GET", "/base/history", staff.editor).json()["active"] == 1
    checked = admin("POST", "/validate", staff.editor, {"yaml": BROKEN})
    assert checked.json()["valid"] is False and checked.json()["issues"][0]["line"] == 8

    proposed = admin(
        "POST",
        "/base/propose",
        staff.editor,
        {"yaml": CANDIDATE, "reason": "block lighthouses (test)"},
    )
    assert proposed.status_code == 201, proposed.text
    v2 = proposed.json()
    assert (v2["number"], v2["state"]) == (2, "proposed")
    diff = admin("POST", "/base/diff", staff.plain_editor, {"to_version": 2}).json()
    kinds = {c["path"]: c["kind"] for c in diff["changes"]}
    assert kinds == {"prompt.rules[prompt-illicit].action": "action"}

    # shadow: v2 decides beside v1 on the same scores, never enforced
    assert admin("POST", "/base/shadow", staff.editor, {"version": 2}).status_code == 200
    decision, lighthouse_id, _ = generate(client, "a lighthouse at dusk")
    assert decision == "allow"  # still v1
    assert generate(client, "a lighthouse in fog")[0] == "allow"
    assert generate(client, "a cat on a sofa")[0] == "allow"
    assert generate(client, "a nude statue")[0] == "block"
    assert moderation_flag(gateway.base_url, gateway.admin_key, "lighthouse keeper") is False
    with gateway.redis() as r:
        record = record_for(r, "default", lighthouse_id)
    assert record["shadow"] == {"revision": v2["revision"], "action": "block"}
    assert record["policy"]["revision"] == v1_revision
    report = admin("GET", "/base/shadow/report", staff.plain_editor).json()
    assert report["changed"] == 3
    assert report["by_transition"] == {"allow→block": 2, "allow→flag": 1}
    assert report["by_category"] == {"illicit": 3}
    assert {e["prompt"] for e in report["examples"]} >= {"a lighthouse at dusk"}
    replay = admin("POST", "/base/dry-run", staff.editor, {"version": 2, "limit": 100}).json()
    for field in ("evaluated", "changed", "by_transition", "by_category"):
        assert replay[field] == report[field], field  # shadow counts match a replay
    assert admin("DELETE", "/base/shadow", staff.editor).json()["shadow"] is None

    # approval: a second person; never the author
    refused = admin("POST", "/base/versions/2/approve", staff.editor)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "approval_refused"
    not_approver = admin("POST", "/base/versions/2/approve", staff.plain_editor)
    assert not_approver.json()["error"]["code"] == "insufficient_role"
    early = admin("POST", "/base/versions/2/activate", staff.editor, {})
    assert early.status_code == 409
    approved = admin("POST", "/base/versions/2/approve", staff.approver)
    assert approved.status_code == 200 and approved.json()["approved_by"].startswith("default/")

    # activation reaches this gateway at once and the other process through pub/sub
    assert not moderation_flag(base_b, gateway.admin_key, "lighthouse")
    assert admin("POST", "/base/versions/2/activate", staff.approver, {"reason": "go"}).is_success
    decision, blocked_id, _ = generate(client, "a lighthouse at dusk")
    assert decision == "block" and revision_of(gateway, blocked_id) == v2["revision"]
    assert _eventually(lambda: moderation_flag(base_b, gateway.admin_key, "lighthouse"))

    # rollback through the other process's admin API: one call, the exact previous behaviour
    # there at once and here through pub/sub
    admin_b = Admin(base_b)
    rolled = admin_b("POST", "/base/rollback", staff.plain_editor, {"reason": "too broad"})
    admin_b.http.close()
    assert rolled.status_code == 200 and rolled.json()["number"] == 1
    assert not moderation_flag(base_b, gateway.admin_key, "lighthouse")
    assert _eventually(
        lambda: not moderation_flag(gateway.base_url, gateway.admin_key, "lighthouse")
    )
    decision, allowed_id, _ = generate(client, "a lighthouse at dusk")
    assert decision == "allow" and revision_of(gateway, allowed_id) == v1_revision

    # every policy action is itself audited, with who did it
    with gateway.redis() as r:
        audited = [(rec["route"], rec["input"]["params"]) for rec in stream_records(r, "base")]
    routes = [route for route, _ in audited]
    for action in ("seeded", "proposed", "shadow", "approved", "activated", "rolled_back"):
        assert f"admin.policies.{action}" in routes, action
    actors = {route: params["actor"] for route, params in audited}
    assert actors["admin.policies.approved"] == approved.json()["approved_by"]
    assert actors["admin.policies.proposed"] == v2["author"] != actors["admin.policies.approved"]


def _eventually(check: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False
