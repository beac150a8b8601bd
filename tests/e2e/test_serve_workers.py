"""``genguard serve --workers 2``: two uvicorn worker processes on one embedded Redis.

The parent starts the one Redis and the bootstrap key; both workers serve the official
``openai`` client, every request lands in one hash chain that ``genguard audit verify`` accepts.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from gateway.embedded_redis import free_port
from tests.e2e.conftest import ON_CLUSTER
from tests.policy_texts import nude_blocker

pytestmark = pytest.mark.skipif(
    ON_CLUSTER,
    reason="GENGUARD_TEST_REDIS=cluster: this test runs genguard serve on its embedded "
    "single Redis (no GENGUARD_REDIS_URL)",
)

KEY_LINE = re.compile(r"bootstrap admin key \(tenant 'default', also saved in .*\): (gg_\S+)")
WORKERS = 2
POLICY = nude_blocker("workers")


def start(data_dir: Path, port: int, policy: Path) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENGUARD_")}
    env["GENGUARD_POLICY_FILE"] = str(policy)
    env["GENGUARD_WORKERS"] = "1"  # the thread pool inside each worker process
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--workers", str(WORKERS), "--port",
         str(port), "--data-dir", str(data_dir)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    assert process.stderr is not None
    lines: list[str] = []
    started = 0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            if process.poll() is not None:
                pytest.fail("genguard serve --workers exited:\n" + "".join(lines))
            continue
        lines.append(line)
        started += "Application startup complete" in line
        if started == WORKERS:
            match = KEY_LINE.search("".join(lines))
            assert match, "".join(lines)
            output = "".join(lines)
            assert output.count("private Redis at") == 1, output  # the parent's, only
            assert output.count("bootstrap admin key (tenant") == 1, output
            return process, match.group(1)
    process.kill()
    pytest.fail("genguard serve --workers did not start:\n" + "".join(lines))


def worker_pids(base_url: str) -> set[str]:
    """Which processes answer ``/healthz`` over fresh connections (the kernel spreads accepts)."""
    seen: set[str] = set()
    for _ in range(200):
        with httpx.Client(base_url=base_url) as client:  # a new connection each time
            seen.add(client.get("/healthz").headers["x-genguard-worker-pid"])
        if len(seen) == WORKERS:
            break
    return seen


def test_two_workers_share_one_redis_and_one_audit_chain(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    process, key = start(data_dir, port, policy)
    try:
        pids = worker_pids(base_url)
        assert len(pids) == WORKERS, pids
        assert str(process.pid) not in pids  # the parent supervises, the workers serve

        def generate(i: int) -> str:
            # one client (one connection) per call, so the calls spread over both workers
            client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
            prompt = "a nude figure" if i % 8 == 0 else f"a red kite, study {i}"
            try:
                raw = client.images.with_raw_response.generate(prompt=prompt, size="64x64")
            except openai.BadRequestError as exc:
                assert exc.code == "content_policy_violation"
                return "block"
            finally:
                client.close()
            return raw.headers["x-genguard-decision"]

        with ThreadPoolExecutor(8) as threads:
            decisions = list(threads.map(generate, range(24)))
        assert decisions.count("block") == 3
        assert decisions.count("allow") == 21

        verify = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "--data-dir", str(data_dir), "audit", "verify",
             "--tenant", "default"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert verify.returncode == 0, verify.stdout + verify.stderr
        # both workers appended to the one chain in the one Redis: every request is in it once
        assert "default: ok (24 records)" in verify.stdout, verify.stdout
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    assert process.returncode == 0
    assert not (data_dir / "redis.url").exists()  # the parent stopped its Redis
