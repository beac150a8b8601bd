"""What observability costs per request: the HTTP middleware and the per-record metrics.

Runs in one process, no network: an ASGI app that answers at once, called directly with and
without ``ObservabilityMiddleware`` (access log line formatted as JSON into a null stream, metrics
updated, tracing off and on with the SDK's in-memory exporter), and
``GatewayMetrics.observe_record`` for an audit record of a typical image request (5 stages),
in-process and in prometheus_client's multiprocess mode. Also the time of one /metrics
exposition. Prints microseconds per call (median of 7 rounds) and the ratios to the baseline.

    OMP_NUM_THREADS=1 .venv/bin/python bench/observability_cost.py
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit.record import (
    AuditRecord,
    DecisionRecord,
    InputRecord,
    MetricsRecord,
    PolicyRef,
    ReasonRecord,
    StageRecord,
)
from gateway.logging_setup import JsonFormatter
from gateway.metrics import GatewayMetrics, LiveValues, prepare_multiprocess_dir
from gateway.observability import ObservabilityMiddleware, Telemetry
from gateway.tracing import Tracing


def record() -> AuditRecord:
    stages = [
        StageRecord(stage="prompt", classifier=c, latency_ms=3.0, verdict="allow")
        for c in ("term_list", "minilm_concepts", "profanity")
    ] + [
        StageRecord(stage="generate", classifier="procedural", latency_ms=30.0, verdict="ok"),
        StageRecord(stage="output", classifier="nudenet", latency_ms=20.0, verdict="allow"),
    ]
    return AuditRecord(
        decision_id="dec_0",
        trace_id="0" * 32,
        timestamp=datetime.now(UTC),
        tenant="acme",
        key_id=None,
        route="images.generations",
        policy=PolicyRef(id="p", revision="r"),
        input=InputRecord.from_prompt("", mode="omitted", params={}),
        stages=stages,
        decision=DecisionRecord(
            action="allow",
            reasons=[
                ReasonRecord(stage="prompt", category="illicit", score=0.6, threshold=0.5, rule="r")
            ],
        ),
        metrics=MetricsRecord(total_ms=60.0, overhead_ms=30.0, upstream_ms=30.0),
    )


class _State:
    pass


class _App:
    """The smallest ASGI app: 200, a 2-byte body."""

    def __init__(self, telemetry: Telemetry | None) -> None:
        self.state = _State()
        if telemetry is not None:
            self.state.services = type("S", (), {"telemetry": telemetry})()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def per_call_us(app: Any, calls: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        return None

    owner = app.app if isinstance(app, ObservabilityMiddleware) else app
    scope = {"type": "http", "method": "POST", "path": "/v1/images/generations", "headers": [],
             "app": owner}  # fmt: skip
    started = time.perf_counter()
    for _ in range(calls):
        await app(dict(scope), receive, send)
    return (time.perf_counter() - started) / calls * 1e6


def rounds(fn: Any, calls: int) -> float:
    return statistics.median(fn(calls) for _ in range(7))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    calls = parser.parse_args().calls
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    logging.getLogger("genguard.access").setLevel(logging.INFO)

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    plain = Telemetry()
    traced = Telemetry(GatewayMetrics(), Tracing(trace.get_tracer("bench")))

    def run(app_factory: Any) -> Any:
        def once(n: int) -> float:
            exporter.clear()
            return asyncio.run(per_call_us(app_factory(), n))

        return once

    bare = rounds(run(lambda: _App(plain)), calls)
    middleware = rounds(run(lambda: ObservabilityMiddleware(_App(plain))), calls)
    with_spans = rounds(run(lambda: ObservabilityMiddleware(_App(traced))), calls)
    print(f"ASGI call, bare app                       {bare:8.1f} us")
    for label, cost in (("tracing off", middleware), ("tracing on ", with_spans)):
        print(f"  + middleware, {label}               {cost:8.1f} us  (+{cost - bare:.1f})")

    audit = record()

    def observe(metrics: GatewayMetrics) -> Any:
        def once(n: int) -> float:
            started = time.perf_counter()
            for _ in range(n):
                metrics.observe_record(audit)
            return (time.perf_counter() - started) / n * 1e6

        return once

    single = rounds(observe(GatewayMetrics()), calls)
    print(f"observe_record, 5 stages, in-process      {single:8.1f} us")
    live = LiveValues(spool_path=None, audit_degraded=False, policy_versions={"base": 1},
                      queue_depths={})  # fmt: skip
    in_process = GatewayMetrics()
    observe(in_process)(1000)
    started = time.perf_counter()
    asyncio.run(in_process.exposition(live))
    print(
        f"/metrics exposition, in-process           {(time.perf_counter() - started) * 1e3:8.2f} ms"
    )

    with tempfile.TemporaryDirectory() as directory:
        prepare_multiprocess_dir(Path(directory))
        shared = GatewayMetrics(Path(directory))
        multi = rounds(observe(shared), calls)
        print(f"observe_record, 5 stages, multiprocess    {multi:8.1f} us")
        started = time.perf_counter()
        asyncio.run(shared.exposition(live))
        elapsed_ms = (time.perf_counter() - started) * 1e3
        print(f"/metrics exposition, multiprocess (1 pid) {elapsed_ms:8.2f} ms")
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


if __name__ == "__main__":
    main()
