"""The genguard CLI against a real Redis: keys, policy validation, audit tail and verify."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from policies.loader import default_policy_text


def genguard(
    *args: str, redis_url: str | None = None, data_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENGUARD_")}
    if redis_url:
        env["GENGUARD_REDIS_URL"] = redis_url
    if data_dir:
        env["GENGUARD_DATA_DIR"] = str(data_dir)
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120)  # fmt: skip


def test_policy_validate_default(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(default_policy_text())
    result = genguard("policy", "validate", str(path))
    assert result.returncode == 0, result.stderr
    assert "valid (policy 'default', revision sha256:" in result.stdout


def test_policy_validate_reports_lines(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("id: bad\nprompt:\n  rules:\n    - {id: r1, category: sexx, threshold: 0.5}\n"
                    "  timeout: 3\n")  # fmt: skip
    result = genguard("policy", "validate", str(path))
    assert result.returncode == 1
    assert "line 4" in result.stderr and "prompt.rules[0].category" in result.stderr
    assert "line 5" in result.stderr and "unknown field 'timeout'" in result.stderr


def test_policy_validate_unknown_classifier(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("id: bad\noutput:\n  image:\n    classifiers: [nudenett]\n")
    result = genguard("policy", "validate", str(path))
    assert result.returncode == 1
    assert "unknown image classifier 'nudenett'" in result.stderr


def test_keys_lifecycle_is_audited(clean_redis: str, tmp_path: Path) -> None:
    created = genguard("keys", "create", "--tenant", "acme", "--roles", "client,auditor",
                       "--name", "ci", redis_url=clean_redis, data_dir=tmp_path)  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("gg_")
    key_id = key.split("_")[1]
    client = redis.Redis.from_url(clean_redis)
    stored = client.hgetall(f"genguard:keys:{key_id}")
    assert key.encode() not in b"".join(stored.values())  # stored hashed, never in clear
    listed = genguard("keys", "list", redis_url=clean_redis, data_dir=tmp_path)
    assert key_id in listed.stdout and "active" in listed.stdout and key not in listed.stdout
    revoked = genguard("keys", "revoke", key_id, redis_url=clean_redis, data_dir=tmp_path)
    assert revoked.returncode == 0
    listed = genguard("keys", "list", redis_url=clean_redis, data_dir=tmp_path)
    assert "revoked" in listed.stdout
    missing = genguard("keys", "revoke", "nosuchkey000", redis_url=clean_redis, data_dir=tmp_path)
    assert missing.returncode == 1 and "no API key" in missing.stderr
    bad_role = genguard("keys", "create", "--tenant", "acme", "--roles", "god",
                        redis_url=clean_redis, data_dir=tmp_path)  # fmt: skip
    assert bad_role.returncode == 2 and "unknown role 'god'" in bad_role.stderr
    tail = genguard("audit", "tail", "--tenant", "acme", "--json", redis_url=clean_redis,
                    data_dir=tmp_path)  # fmt: skip
    routes = [json.loads(line)["route"] for line in tail.stdout.splitlines()]
    assert routes == ["admin.keys.create", "admin.keys.revoke"]
    verify = genguard("audit", "verify", "--tenant", "acme", redis_url=clean_redis,
                      data_dir=tmp_path)  # fmt: skip
    assert verify.returncode == 0 and "acme: ok (2 records)" in verify.stdout


def test_audit_verify_detects_tampering(clean_redis: str, tmp_path: Path) -> None:
    for _ in range(3):
        genguard("keys", "create", "--tenant", "tamper", redis_url=clean_redis, data_dir=tmp_path)
    client = redis.Redis.from_url(clean_redis)
    stream = "genguard:audit:stream:tamper"
    entries = client.xrange(stream)
    assert len(entries) == 3
    client.xdel(stream, entries[1][0])
    verify = genguard("audit", "verify", "--tenant", "tamper", redis_url=clean_redis,
                      data_dir=tmp_path)  # fmt: skip
    assert verify.returncode == 1
    assert "BROKEN" in verify.stdout and "deleted_or_reordered" in verify.stdout


def test_production_mode_refuses_bootstrap_key(tmp_path: Path) -> None:
    env_key = "gg_aaaaaaaaaaaa_" + "b" * 40
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", "0"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "GENGUARD_MODE": "production", "GENGUARD_BOOTSTRAP_KEY": env_key},
    )  # fmt: skip
    assert result.returncode == 2
    assert "GENGUARD_BOOTSTRAP_KEY is for development only" in result.stderr
    assert env_key not in result.stderr  # the secret is never echoed


@pytest.mark.parametrize("bad", ["bogus", "--port"])
def test_cli_usage_errors(bad: str) -> None:
    result = genguard(bad)
    assert result.returncode == 2
