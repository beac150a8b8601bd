"""One real GenGuard server per test module, driven by the official openai client."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
import redis

from gateway.app import create_app
from gateway.settings import Settings
from tests.serving import serve_in_thread


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
        return redis.Redis.from_url(self.redis_url)


@pytest.fixture(scope="module")
def gateway_settings(clean_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir: Path = tmp_path_factory.mktemp("genguard")
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
