"""Asynchronous jobs end to end: a real gateway, real Redis, three ``genguard worker`` processes.

One worker is SIGKILLed while it holds a job: the job is held in the fake upstream (``slow``
mode: it has received the request and will not answer for a minute) when the kill happens, so
the kill lands mid-job by construction, not by timing. Another worker finishes it; every job has
exactly one result and one audit record, and ``genguard audit verify`` finds the chains intact.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from rq import Worker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.app import create_app
from gateway.cli import main as cli_main
from gateway.jobs import verify_signature
from gateway.settings import JobSettings, Settings, UpstreamSettings
from tests.e2e.conftest import create_keys, make_key
from tests.fake_upstream import FakeUpstream, serve_fake_upstream
from tests.policy_texts import nude_blocker
from tests.serving import serve_in_thread

POLICY = nude_blocker("jobs-test", audio=True)

JOBS = {  # short leases so that a lost job comes back within seconds
    "timeout_s": 8,
    "lease_margin_s": 1,
    "maintenance_interval_s": 1,
    "webhook_backoff_s": 0.2,
    "webhook_attempts": 3,
}
WORKERS = ("w0", "w1", "w2")
DEADLINE_S = 120.0  # generous: only reached when something is broken


@dataclass
class Receiver:
    """A tenant's webhook endpoint (a third party): records every delivery."""

    base_url: str = ""
    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@dataclass
class Stack:
    base_url: str
    redis_url: str
    data_dir: Path
    admin_key: str
    other_key: str
    upstream: FakeUpstream
    receiver: Receiver
    workers: dict[str, subprocess.Popen[bytes]]
    env: dict[str, str]

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {} if key == "" else {"Authorization": f"Bearer {key or self.admin_key}"}
        return httpx.Client(base_url=self.base_url, timeout=30, headers=headers)


def _wait(what: str, ready: Callable[[], Any], deadline_s: float = DEADLINE_S) -> Any:
    """Poll until ``ready()`` is truthy (a readiness wait with a generous bound, not a timing
    assertion)."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = ready()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def stack(clean_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("jobs")
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    receiver = Receiver()

    async def hook(request: Request) -> Response:
        receiver.deliveries.append((dict(request.headers), await request.body()))
        return Response(status_code=204)

    with (
        serve_fake_upstream() as upstream,
        serve_in_thread(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as hook_url,
    ):
        receiver.base_url = hook_url
        admin_key = make_key()
        settings = Settings(
            redis_url=clean_redis,
            data_dir=data_dir,
            bootstrap_key=admin_key,
            policy_file=policy,
            image_generator="openai_compat",
            upstream=UpstreamSettings(base_url=upstream.base_url),
            jobs=JobSettings(**JOBS),  # type: ignore[arg-type]
            workers=2,
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("GENGUARD_")}
        env.update(
            {
                "GENGUARD_REDIS_URL": clean_redis,
                "GENGUARD_DATA_DIR": str(data_dir),
                "GENGUARD_POLICY_FILE": str(policy),
                "GENGUARD_IMAGE_GENERATOR": "openai_compat",
                "GENGUARD_UPSTREAM__BASE_URL": upstream.base_url,
                "GENGUARD_WORKERS": "2",
                "OMP_NUM_THREADS": "1",
                **{f"GENGUARD_JOBS__{k.upper()}": str(v) for k, v in JOBS.items()},
            }
        )
        (other_key,) = create_keys(clean_redis, [("tenant-b", "client")])
        with serve_in_thread(create_app(settings)) as base_url:
            # the gateway seeded the policy and the dev CA; now the workers (same data dir)
            workers = {
                name: subprocess.Popen(
                    [sys.executable, "-m", "gateway.cli", "worker", "--name", name],
                    env=env,
                    stdout=(data_dir / f"{name}.log").open("wb"),
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
                for name in WORKERS
            }
            connection = redis.Redis.from_url(clean_redis)
            try:
                _wait(
                    "three workers to register",
                    lambda: (
                        _all_alive(workers, data_dir)
                        and len(Worker.all(connection=connection)) == len(WORKERS)
                    ),
                )
                yield Stack(
                    base_url=base_url,
                    redis_url=clean_redis,
                    data_dir=data_dir,
                    admin_key=admin_key,
                    other_key=other_key,
                    upstream=upstream,
                    receiver=receiver,
                    workers=workers,
                    env=env,
                )
            finally:
                for process in workers.values():
                    if process.poll() is None:
                        process.send_signal(signal.SIGTERM)
                for process in workers.values():
                    try:
                        process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait(timeout=10)
                connection.close()


def _all_alive(workers: dict[str, subprocess.Popen[bytes]], data_dir: Path) -> bool:
    for name, process in workers.items():
        if process.poll() is not None:
            log = (data_dir / f"{name}.log").read_text(errors="replace")[-4000:]
            raise AssertionError(f"worker {name} exited during start-up:\n{log}")
    return True


def _submit(client: httpx.Client, body: dict[str, Any]) -> str:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued"
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert response.headers["x-genguard-decision-id"] == job["id"]
    return str(job["id"])


def _final(client: httpx.Client, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "blocked", "failed") else None

    result: dict[str, Any] = _wait(f"job {job_id} to finish", done)
    return result


def _audit_records(connection: redis.Redis, tenant: str, decision_id: str) -> list[dict[str, Any]]:
    entries = connection.xrange(f"genguard:audit:stream:{tenant}")
    records = [json.loads(fields[b"record"]) for _, fields in entries]
    return [r for r in records if r["decision_id"] == decision_id]


def test_a_worker_killed_mid_job_loses_nothing_and_audits_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream = stack.upstream
    upstream.mode, upstream.slow_s = "slow", 300.0  # held until the worker is gone
    connection = redis.Redis.from_url(stack.redis_url)
    with stack.http() as client:
        held = _submit(client, {"kind": "image", "prompt": "a lighthouse at dusk", "n": 1})
        # mid-job by construction: the upstream has the request, the job names its worker
        _wait(
            "the held job to reach the upstream",
            lambda: upstream.requests_to("/v1/images/generations"),
        )
        holder = _wait(
            "the held job to be running",
            lambda: connection.hget(f"genguard:jobs:{{{held}}}", "worker"),
        ).decode()
        assert client.get(f"/v1/jobs/{held}").json()["status"] == "running"
        stack.workers[holder].send_signal(signal.SIGKILL)
        stack.workers[holder].wait(timeout=30)
        upstream.mode = "ok"

        secret = client.get("/v1/jobs/webhook-secret").json()["secret"]
        hooked = _submit(
            client,
            {
                "kind": "image",
                "prompt": "a red bicycle",
                "size": "256x256",
                "webhook_url": f"{stack.receiver.base_url}/hook",
            },
        )
        speech = _submit(
            client,
            {"kind": "speech", "model": "genguard-espeak-tts", "input": "hello from the queue"},
        )
        blocked = _submit(client, {"kind": "image", "prompt": "a nude portrait"})
        jobs = {held: _final(client, held), hooked: _final(client, hooked)}
        jobs[speech] = _final(client, speech)
        jobs[blocked] = _final(client, blocked)

    # the held job: finished by another worker, on its second attempt, once
    assert jobs[held]["status"] == "succeeded"
    assert jobs[held]["attempts"] == 2
    assert connection.hget(f"genguard:jobs:{{{held}}}", "worker").decode() != holder
    assert len(jobs[held]["result"]["body"]["data"]) == 1
    assert len(upstream.requests_to("/v1/images/generations")) >= 2  # killed try + the retry
    assert jobs[hooked]["status"] == "succeeded"
    assert jobs[hooked]["result"]["http_status"] == 200
    assert jobs[speech]["status"] == "succeeded"
    assert jobs[speech]["result"]["body"]["content_type"].startswith("audio/")
    assert jobs[blocked]["status"] == "blocked"
    assert jobs[blocked]["result"]["http_status"] == 400
    assert jobs[blocked]["result"]["body"]["error"]["code"] == "content_policy_violation"

    # exactly one audit record per job, carrying the job id and the job's outcome
    tenant = "default"
    for job_id, job in jobs.items():
        records = _audit_records(connection, tenant, job_id)
        assert len(records) == 1, (job_id, len(records))
        assert records[0]["input"]["params"]["job_id"] == job_id
        expected = {"succeeded": ("allow", "flag"), "blocked": ("block",)}[job["status"]]
        assert records[0]["decision"]["action"] in expected
    assert _audit_records(connection, tenant, blocked)[0]["decision"]["reasons"][0]["category"] == (
        "sexual"
    )

    # the webhook: delivered, signed with the tenant's secret, the job as GET shows it
    deliveries = [d for d in stack.receiver.deliveries if json.loads(d[1])["id"] == hooked]
    assert deliveries
    headers, body = deliveries[0]
    assert verify_signature(
        secret, headers["x-genguard-timestamp"], body, headers["x-genguard-signature"]
    )
    assert not verify_signature(
        secret, headers["x-genguard-timestamp"], body + b" ", headers["x-genguard-signature"]
    )
    assert json.loads(body)["status"] == "succeeded"
    assert jobs[hooked]["webhook"]["status"] == "delivered"

    # ``genguard audit verify``, in this process (the workers' environment, no interpreter start)
    for name, value in stack.env.items():
        if name.startswith("GENGUARD_"):
            monkeypatch.setenv(name, value)
    assert cli_main(["audit", "verify"]) == 0
    assert "BROKEN" not in capsys.readouterr().out
    connection.close()


def test_tenants_see_only_their_own_jobs(stack: Stack) -> None:
    with stack.http() as client:
        mine = _submit(client, {"kind": "image", "prompt": "a quiet harbour", "size": "256x256"})
    with stack.http(stack.other_key) as other:
        response = other.get(f"/v1/jobs/{mine}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "job_not_found"
        assert other.get("/v1/jobs/dec_0123456789abcdef").status_code == 404
        theirs = other.get("/v1/jobs/webhook-secret").json()
    with stack.http() as client:
        assert _final(client, mine)["status"] == "succeeded"
        ours = client.get("/v1/jobs/webhook-secret").json()
    assert theirs["tenant"] == "tenant-b" and theirs["secret"] != ours["secret"]
    with stack.http("") as anonymous:
        assert anonymous.get(f"/v1/jobs/{mine}").status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"prompt": "a cat"}, 400, "kind"),
        ({"kind": "video", "prompt": "a cat"}, 400, "kind"),
        ({"kind": "image"}, 400, "prompt"),
        ({"kind": "image", "prompt": "a cat", "n": 0}, 400, "n"),
        ({"kind": "image", "prompt": "a cat", "webhook_url": "ftp://x/y"}, 400, "webhook_url"),
        ({"kind": "speech", "input": "hi"}, 400, "model"),
        ({"kind": "image", "prompt": "a cat", "model": "no-such-model"}, 404, "model"),
    ],
)
def test_bad_submissions_are_refused_naming_the_field_and_audited(
    stack: Stack, body: dict[str, Any], status: int, param: str
) -> None:
    with stack.http() as client:
        response = client.post("/v1/jobs", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    connection = redis.Redis.from_url(stack.redis_url)
    try:
        records = _audit_records(connection, "default", error["decision_id"])
    finally:
        connection.close()
    assert len(records) == 1
    assert records[0]["route"] == "jobs.submit"
    assert records[0]["error"]["status"] == status
