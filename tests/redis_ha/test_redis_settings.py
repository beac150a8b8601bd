"""Redis topology settings: errors name the variable and never echo a secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.redis_connect import describe_redis
from gateway.settings import Settings


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"redis_sentinels": "sentinel-1"}, "GENGUARD_REDIS_SENTINEL_MASTER"),
        ({"redis_sentinels": "s1:26379,s2", "redis_sentinel_master": "m"}, "'s2' is not host:port"),
        (
            {"redis_sentinels": "s1:26379", "redis_sentinel_master": "m", "redis_url": "redis://x"},
            "exclude each other",
        ),
        ({"redis_cluster": True}, "GENGUARD_REDIS_CLUSTER needs GENGUARD_REDIS_URL"),
        ({"redis_password": "hunter2-secret"}, "apply only with GENGUARD_REDIS_SENTINELS"),
    ],
)
def test_bad_topology_is_refused_naming_the_setting(fields: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**fields)  # type: ignore[arg-type]
    messages = " ".join(e["msg"] for e in caught.value.errors())  # what the CLI prints
    assert named in messages and "hunter2" not in messages


def test_descriptions_hide_passwords() -> None:
    cluster = Settings(redis_url="redis://ops:hunter2@node-1:7000/0", redis_cluster=True)
    assert describe_redis(cluster) == "Redis Cluster (seed node) redis://ops:***@node-1:7000/0"
    sentinel = Settings(redis_sentinels="s1:26379", redis_sentinel_master="m", redis_password="p")
    assert describe_redis(sentinel) == "Redis master 'm' via Sentinel s1:26379"
