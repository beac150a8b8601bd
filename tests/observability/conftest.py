"""One in-process gateway for the observability tests: a small term-list policy (fast to start),
tracing on, spans kept by the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.app import create_app
from gateway.settings import ObservabilitySettings, Settings
from tests.e2e.conftest import RunningGateway, make_key
from tests.policy_texts import term_seed
from tests.serving import serve_in_thread

POLICY = term_seed("observability-test")

_SPANS = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider (OpenTelemetry allows one per process, so this module is
    its only user); stopped afterwards so later tests' spans are not kept in memory."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_SPANS))
    trace.set_tracer_provider(provider)
    yield _SPANS
    _SPANS.clear()
    _SPANS.shutdown()


def policy_file(directory: Path) -> Path:
    path = directory / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def observed_gateway(
    spans: InMemorySpanExporter, clean_redis: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    data_dir = tmp_path_factory.mktemp("observability")
    settings = Settings(
        redis_url=clean_redis,
        data_dir=data_dir,
        bootstrap_key=make_key(),
        policy_file=policy_file(data_dir),
        observability=ObservabilitySettings(otel_enabled=True),
    )
    with serve_in_thread(create_app(settings)) as base_url:
        assert settings.bootstrap_key is not None
        yield RunningGateway(
            base_url=base_url,
            admin_key=settings.bootstrap_key.get_secret_value(),
            settings=settings,
            redis_url=clean_redis,
        )
