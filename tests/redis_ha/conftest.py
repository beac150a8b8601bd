"""A gateway on Redis Sentinel and on Redis Cluster: real processes, one topology per module."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
from redis.asyncio import Redis

from gateway.app import create_app
from gateway.keys import ApiKeyStore, parse_roles
from gateway.redis_connect import connect_redis
from gateway.settings import Settings
from tests.e2e.conftest import make_key
from tests.serving import serve_in_thread

T = TypeVar("T")

# "nude" blocks; "lighthouse" scores illicit but is allowed (CANDIDATE blocks it); "heist" holds
# the output for human review
POLICY = """\
id: redis-ha
prompt:
  classifiers: [term_list]
  terms:
    sexual: [nude]
    illicit: [lighthouse]
    violence: [heist]
  rules:
    - {id: prompt-sexual, category: sexual, threshold: 0.5, action: block}
    - {id: prompt-illicit, category: illicit, threshold: 0.5, action: allow}
    - {id: heist-review, category: violence, threshold: 0.5, action: review}
output:
  image: {classifiers: []}
"""
CANDIDATE = POLICY.replace(
    "category: illicit, threshold: 0.5, action: allow",
    "category: illicit, threshold: 0.5, action: block",
)


def ha_settings(data_dir: Path, **redis: Any) -> Settings:
    data_dir.mkdir(parents=True, exist_ok=True)
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY)
    return Settings(data_dir=data_dir, bootstrap_key=make_key(), policy_file=policy, **redis)


@dataclass(frozen=True)
class HaGateway:
    base_url: str
    settings: Settings

    @property
    def admin_key(self) -> str:
        assert self.settings.bootstrap_key is not None
        return self.settings.bootstrap_key.get_secret_value()

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.admin_key}"}
        return httpx.Client(base_url=self.base_url, timeout=60, headers=headers)

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=key, max_retries=0)

    def with_redis(self, steps: Callable[[Redis], Awaitable[T]]) -> T:
        """Run ``steps`` on a client made by the gateway's own factory (same topology)."""

        async def run() -> T:
            async with connect_redis(self.settings) as redis:
                return await steps(redis)

        return asyncio.run(run())

    def create_keys(self, specs: Sequence[tuple[str, str]]) -> list[str]:
        async def create(redis: Redis) -> list[str]:
            store = ApiKeyStore(redis)
            return [
                (await store.create(tenant=tenant, roles=parse_roles(roles)))[0]
                for tenant, roles in specs
            ]

        return self.with_redis(create)


@contextmanager
def serve_gateway(settings: Settings) -> Iterator[HaGateway]:
    with serve_in_thread(create_app(settings)) as base_url:
        yield HaGateway(base_url, settings)


@contextmanager
def serve_on_cluster(cluster_url: str, data_dir: Path) -> Iterator[HaGateway]:
    """The gateway in cluster mode on the Redis Cluster at ``cluster_url``."""
    with serve_gateway(ha_settings(data_dir, redis_url=cluster_url, redis_cluster=True)) as running:
        yield running


def image_decision(gateway: HaGateway, key: str, prompt: str) -> tuple[int, str, str]:
    """(HTTP status, decision, decision id) of one image generation."""
    with gateway.http(key) as http:
        response = http.post(
            "/v1/images/generations",
            json={"prompt": prompt, "size": "256x256", "response_format": "b64_json"},
        )
    return (
        response.status_code,
        response.headers.get("x-genguard-decision", ""),
        response.headers.get("x-genguard-decision-id", ""),
    )
