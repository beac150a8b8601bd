"""``genguard policy …`` against a real Redis: the same workflow as the admin routes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import redis

from policies.loader import default_policy_text

STRICT = default_policy_text().replace(
    "category: prompt-attack, threshold: 0.5, action: flag",
    "category: prompt-attack, threshold: 0.5, action: block",
)


def genguard(*args: str, redis_url: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENGUARD_")}
    env.update(GENGUARD_REDIS_URL=redis_url, USER=user, LOGNAME=user)
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "policy", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_workflow_validate_propose_approve_activate_rollback(
    clean_redis: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nprompt:\n  classifiers: [term_lst]\n")
    result = genguard("validate", str(bad), redis_url=clean_redis)
    assert result.returncode == 1
    expected = (
        f"{bad}: line 3, column 17: prompt.classifiers[0]: unknown text classifier 'term_lst'; "
        "did you mean 'term_list'?"
    )
    assert expected in result.stderr
    strict = tmp_path / "strict.yaml"
    strict.write_text(STRICT)
    # the first use seeds version 1 from the packaged default
    proposed = genguard("propose", str(strict), "--reason", "block attacks", redis_url=clean_redis)
    assert proposed.returncode == 0, proposed.stderr
    assert "proposed base v2" in proposed.stdout
    own = genguard("approve", "2", redis_url=clean_redis)
    assert own.returncode == 1 and "cannot approve it" in own.stderr
    assert genguard("approve", "2", redis_url=clean_redis, user="bob").returncode == 0
    diff = genguard("diff", "v1", "v2", redis_url=clean_redis)
    assert "prompt.rules[prompt-obfuscation].action: 'flag' → 'block'" in diff.stdout
    assert genguard("activate", "2", redis_url=clean_redis, user="bob").returncode == 0
    history = genguard("history", redis_url=clean_redis).stdout.splitlines()
    assert (
        history[0].startswith("v2")
        and "ACTIVE" in history[0]
        and "approved by cli:bob" in history[0]
    )
    dry = genguard("dry-run", "v1", "--json", redis_url=clean_redis)
    assert dry.returncode == 0 and json.loads(dry.stdout)["evaluated"] == 0  # no traffic yet
    rolled = genguard("rollback", "--reason", "too strict", redis_url=clean_redis)
    assert rolled.returncode == 0 and "rolled back base to v1" in rolled.stdout
    with redis.Redis.from_url(clean_redis) as r:
        assert r.get("genguard:policy:base:active") == b"1"
        entries = r.xrange("genguard:audit:stream:base")
    actors = [json.loads(f[b"record"])["input"]["params"]["actor"] for _, f in entries]
    routes = [json.loads(f[b"record"])["route"] for _, f in entries]
    assert routes == [
        "admin.policies.seeded",
        "admin.policies.proposed",
        "admin.policies.approved",
        "admin.policies.activated",
        "admin.policies.rolled_back",
    ]
    assert actors[1:] == ["cli:alice", "cli:bob", "cli:bob", "cli:alice"]


def test_cli_schema_and_reference(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    result = genguard("schema", "--out", str(out), redis_url="redis://127.0.0.1:1")
    assert result.returncode == 0
    assert json.loads(out.read_text())["title"] == "GenGuard policy"
