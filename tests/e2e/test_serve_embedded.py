"""The newcomer's path: ``genguard serve`` on embedded defaults, then a restart keeps state."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from gateway.embedded_redis import free_port
from tests.e2e.conftest import ON_CLUSTER

pytestmark = pytest.mark.skipif(
    ON_CLUSTER,
    reason="GENGUARD_TEST_REDIS=cluster: this test runs genguard serve on its embedded "
    "single Redis (no GENGUARD_REDIS_URL)",
)

KEY_LINE = re.compile(r"bootstrap admin key \(tenant 'default', also saved in .*\): (gg_\S+)")


def start(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENGUARD_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), "--data-dir",
         str(data_dir)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    lines: list[str] = []
    deadline = time.monotonic() + 120
    assert process.stderr is not None
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            if process.poll() is not None:
                pytest.fail("genguard serve exited:\n" + "".join(lines))
            continue
        lines.append(line)
        if "Uvicorn running" in line or "Application startup complete" in line:
            return process, lines
    process.kill()
    pytest.fail("genguard serve did not start:\n" + "".join(lines))


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)


def test_serve_embedded_defaults_and_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    port = free_port()
    process, lines = start(data_dir, port)
    try:
        output = "".join(lines)
        assert "development, untrusted" in output
        assert f"http://127.0.0.1:{port}/v1" in output
        match = KEY_LINE.search(output)
        assert match, output
        key = match.group(1)
        assert (data_dir / "bootstrap.key").read_text().strip() == key
        assert oct((data_dir / "bootstrap.key").stat().st_mode & 0o777) == "0o600"
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        first = client.images.with_raw_response.generate(prompt="a red kite", size="64x64")
        assert first.headers["x-genguard-decision"] == "allow"
    finally:
        stop(process)
    assert list((data_dir / "redis").rglob("*.aof*")), "append-only persistence under the data dir"
    assert not (data_dir / "redis.url").exists()

    process, lines = start(data_dir, port)
    try:
        output = "".join(lines)
        assert "gg_" not in output  # the key is not printed again
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        client.images.generate(prompt="a red kite", size="64x64")  # key survived the restart
        verify = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "--data-dir", str(data_dir), "audit", "verify"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "default: ok (2 records)" in verify.stdout
    finally:
        stop(process)
