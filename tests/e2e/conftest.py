"""One real GenGuard server per test module, driven by the official openai client.

``GENGUARD_TEST_REDIS=cluster`` runs these modules on a real 3-master Redis Cluster (one per
session, flushed before each module, ``GENGUARD_REDIS_CLUSTER=true`` set for each module so every
``Settings`` and CLI subprocess talks to it as a cluster); unset (or ``single``), on one
redis-server. Tests that read Redis themselves use ``sync_redis`` / ``async_redis`` and the
keyspace helpers (``genguard_keyspace.slot_prefix``), so the same assertions hold on both.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from gateway.app import create_app
from gateway.keys import ApiKeyStore, parse_roles
from gateway.settings import Settings
from tests.redis_ha.topology import flush_cluster
from tests.serving import serve_in_thread

TEST_REDIS = os.environ.get("GENGUARD_TEST_REDIS", "single")
if TEST_REDIS not in ("single", "cluster"):
    raise ValueError(f"GENGUARD_TEST_REDIS={TEST_REDIS!r}: expected 'single' or 'cluster'")
ON_CLUSTER = TEST_REDIS == "cluster"


def sync_redis(url: str) -> redis.Redis:
    """A client for the test Redis at ``url`` (a cluster client on a cluster run)."""
    if ON_CLUSTER:
        # typed as the stores type it (gateway/redis_connect.py): the same commands answer
        return redis.RedisCluster.from_url(url)  # type: ignore[return-value]
    return redis.Redis.from_url(url)


def async_redis(url: str) -> AsyncRedis:
    """The asyncio twin of ``sync_redis``."""
    if ON_CLUSTER:
        return AsyncRedisCluster.from_url(url)  # type: ignore[return-value]
    return AsyncRedis.from_url(url)


def redis_env(url: str) -> dict[str, str]:
    """``GENGUARD_*`` variables that point a child process (CLI, ``genguard serve``) at ``url``."""
    return {"GENGUARD_REDIS_URL": url, **({"GENGUARD_REDIS_CLUSTER": "true"} if ON_CLUSTER else {})}


@pytest.fixture(scope="module")
def clean_redis(request: pytest.FixtureRequest) -> str:
    """The session's test Redis (one server, or the cluster), flushed before the module."""
    if ON_CLUSTER:
        return flush_cluster(request.getfixturevalue("redis_cluster_group"))
    url: str = request.getfixturevalue("redis_url")
    with redis.Redis.from_url(url) as client:
        client.flushall()
    return url


@pytest.fixture(scope="module", autouse=True)
def _cluster_settings() -> Iterator[None]:
    """On a cluster run, every ``Settings`` built in the module (and every CLI subprocess,
    which inherits the environment) treats ``GENGUARD_REDIS_URL`` as a cluster seed node."""
    if not ON_CLUSTER:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENGUARD_REDIS_CLUSTER", "true")
        yield


def make_key() -> str:
    return f"gg_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class RunningGateway:
    base_url: str
    admin_key: str
    settings: Settings
    redis_url: str

    def client(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.base_url}/v1",
            api_key=key or self.admin_key,
            max_retries=0,
            timeout=120,
        )

    def redis(self) -> redis.Redis:
        return sync_redis(self.redis_url)

    def http(self, key: str | None = None) -> httpx.Client:
        """A plain HTTP client for the admin and native routes (``key=""``: no auth header)."""
        headers = {} if key == "" else {"Authorization": f"Bearer {key or self.admin_key}"}
        return httpx.Client(base_url=self.base_url, timeout=60, headers=headers)


def create_keys(redis_url: str, specs: Sequence[tuple[str, str]]) -> list[str]:
    """Create one API key per ``(tenant, comma-separated roles)``; return them in order."""

    async def make() -> list[str]:
        client = async_redis(redis_url)
        try:
            store = ApiKeyStore(client)
            return [
                (await store.create(tenant=tenant, roles=parse_roles(roles)))[0]
                for tenant, roles in specs
            ]
        finally:
            await client.aclose()

    return asyncio.run(make())


def settings_with_policy(redis_url: str, data_dir: Path, policy_text: str) -> Settings:
    """Gateway settings enforcing ``policy_text`` (written into the data dir)."""
    policy = data_dir / "policy.yaml"
    policy.write_text(policy_text, encoding="utf-8")
    return Settings(
        redis_url=redis_url, data_dir=data_dir, bootstrap_key=make_key(), policy_file=policy
    )


@pytest.fixture(scope="module")
def gateway_settings(
    request: pytest.FixtureRequest, clean_redis: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Embedded defaults, or the test module's ``POLICY`` text when it defines one."""
    data_dir: Path = tmp_path_factory.mktemp("genguard")
    policy_text: str | None = getattr(request.module, "POLICY", None)
    if policy_text is not None:
        return settings_with_policy(clean_redis, data_dir, policy_text)
    return Settings(redis_url=clean_redis, data_dir=data_dir, bootstrap_key=make_key())


@pytest.fixture(scope="module")
def gateway(gateway_settings: Settings) -> Iterator[RunningGateway]:
    app = create_app(gateway_settings)
    with serve_in_thread(app) as base_url:
        assert gateway_settings.bootstrap_key is not None
        assert gateway_settings.redis_url is not None
        yield RunningGateway(
            base_url=base_url,
            admin_key=gateway_settings.bootstrap_key.get_secret_value(),
            settings=gateway_settings,
            redis_url=gateway_settings.redis_url.get_secret_value(),
        )


@pytest.fixture
def http(gateway: RunningGateway) -> Iterator[httpx.Client]:
    """An HTTP client with the bootstrap admin key."""
    with gateway.http() as client:
        yield client
