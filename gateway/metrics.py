"""Prometheus metrics: what every request decided and how long each stage took.

Counters and histograms are fed from two places only: the audit record of each request
(``GatewayMetrics.observe_record``, called by ``gateway.recording``) and the HTTP middleware
(``observe_http``). Values read at scrape time (audit spool size, job queue depth, active policy
versions) are not stored in the process: ``exposition`` reads them when ``/metrics`` is asked.

Several worker processes (``genguard serve --workers N``) share one view through
prometheus_client's multiprocess mode: ``prepare_multiprocess_dir`` (called once by the serving
parent, before any worker starts) empties a directory and points ``PROMETHEUS_MULTIPROC_DIR``
at it; each worker then writes its samples to its own memory-mapped files there and any worker
answering ``/metrics`` sums them all. Without that variable (one process, tests) the metrics
live in a per-app registry.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import redis.asyncio as aioredis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from audit.record import AuditRecord

__all__ = [
    "CONTENT_TYPE_LATEST",
    "MULTIPROCESS_ENV",
    "GatewayMetrics",
    "LiveValues",
    "join_multiprocess_dir",
    "multiprocess_registry",
    "prepare_multiprocess_dir",
    "rq_queue_depth",
]

logger = logging.getLogger(__name__)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

# seconds: sub-millisecond stages (term lists, hashing) up to slow upstream generations
_STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                    30, 60, 120)  # fmt: skip
_NO_CLASSIFIER = "-"
_UNMATCHED_ROUTE = "unmatched"  # 404s: never the raw path (unbounded label values)

QueueDepthReader = Callable[[], Awaitable[int]]


def prepare_multiprocess_dir(directory: Path) -> Path:
    """Empty ``directory`` and switch prometheus_client to multiprocess mode on it, for this
    process and the worker processes it starts (they inherit the environment).

    Call once per ``genguard serve`` run, before any metric exists; samples of an earlier run
    are removed so counters start from zero, as Prometheus expects of a restarted target.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return join_multiprocess_dir(directory)


def join_multiprocess_dir(directory: Path) -> Path:
    """Write this process's samples into ``directory`` (kept as it is), next to those of the
    processes already there: how a ``genguard worker`` on the machine of a ``genguard serve``
    shows its jobs in the gateway's ``/metrics``. Call before any metric exists."""
    os.environ[MULTIPROCESS_ENV] = str(directory)
    # prometheus_client picks its value class when first imported; pick again now
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return directory


def multiprocess_registry(directory: Path) -> CollectorRegistry:
    """A registry that sums the samples of every process writing into ``directory``."""
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=str(directory))  # type: ignore[no-untyped-call]
    return merged


def rq_queue_depth(redis: aioredis.Redis, queue: str) -> QueueDepthReader:
    """Jobs waiting in the RQ queue ``queue`` (what RQ's ``Queue.count`` reads: its list)."""
    from rq import Queue

    key = f"{Queue.redis_queue_namespace_prefix}{queue}"

    async def read() -> int:
        return int(await redis.llen(key))

    return read


class LiveValues:
    """Gauges read at scrape time, in the scraping process (never summed over workers)."""

    def __init__(
        self,
        *,
        spool_path: Path | None,
        audit_degraded: bool,
        policy_versions: dict[str, int],
        queue_depths: dict[str, int],
    ) -> None:
        self.spool_path = spool_path
        self.audit_degraded = audit_degraded
        self.policy_versions = policy_versions
        self.queue_depths = queue_depths


class _LiveCollector(Collector):
    def __init__(self, live: LiveValues, spool: tuple[int, int]) -> None:
        self._live = live
        self._spool = spool

    def collect(self) -> Iterable[GaugeMetricFamily]:
        records, size = self._spool
        yield GaugeMetricFamily(
            "genguard_audit_spool_records",
            "Audit records waiting in the local spool for Redis",
            value=records,
        )
        yield GaugeMetricFamily(
            "genguard_audit_spool_bytes", "Size of the local audit spool file", value=size
        )
        yield GaugeMetricFamily(
            "genguard_audit_degraded",
            "1 while audit records are spooled instead of reaching Redis",
            value=1 if self._live.audit_degraded else 0,
        )
        versions = GaugeMetricFamily(
            "genguard_policy_active_version",
            "Active policy version number per scope (base or tenant)",
            labels=["scope"],
        )
        for scope, version in sorted(self._live.policy_versions.items()):
            versions.add_metric([scope], version)
        yield versions
        depth = GaugeMetricFamily(
            "genguard_jobs_queue_depth", "Jobs waiting in a queue", labels=["queue"]
        )
        for queue, waiting in sorted(self._live.queue_depths.items()):
            depth.add_metric([queue], waiting)
        yield depth


def _spool_size(path: Path | None) -> tuple[int, int]:
    """(records, bytes) of the spool file: one record per line."""
    if path is None:
        return 0, 0
    try:
        with path.open("rb") as spool:
            size = os.fstat(spool.fileno()).st_size
            records = 0
            if size:
                while chunk := spool.read(1 << 20):
                    records += chunk.count(b"\n")
    except FileNotFoundError:
        return 0, 0
    return records, size


class GatewayMetrics:
    """GenGuard's metrics (one instance per app; the names are documented in
    docs/operations.md)."""

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        self._queue_depths: dict[str, QueueDepthReader] = {}
        r = self.registry
        self.http_requests = Counter(
            "genguard_http_requests",
            "HTTP requests answered, by route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "genguard_http_request_duration_seconds",
            "Time from request to the end of the response, by route template",
            ["method", "route"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "genguard_decisions",
            "Audited requests by tenant, route and final action (allow, block, review, error…)",
            ["tenant", "route", "action"],
            registry=r,
        )
        self.decision_reasons = Counter(
            "genguard_decision_reasons",
            "Policy rules that fired, by stage and category, with the request's final action",
            ["route", "stage", "category", "action"],
            registry=r,
        )
        self.stage_runs = Counter(
            "genguard_stage_runs",
            "Pipeline stage (and classifier) runs by verdict (scored, error, skipped, ok…)",
            ["stage", "classifier", "verdict"],
            registry=r,
        )
        self.stage_latency = Histogram(
            "genguard_stage_latency_seconds",
            "Latency of each stage and classifier that ran (skipped ones are not observed)",
            ["stage", "classifier"],
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.request_latency = Histogram(
            "genguard_request_latency_seconds",
            "Audited request time: total, GenGuard's overhead (total minus upstream), upstream",
            ["route", "part"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.audit_records = Counter(
            "genguard_audit_records",
            "Audit records written, by where they went (redis, spool, failed)",
            ["outcome"],
            registry=r,
        )

    @classmethod
    def from_environment(cls) -> GatewayMetrics:
        """Multiprocess when the serving parent prepared a directory, else in-process."""
        directory = os.environ.get(MULTIPROCESS_ENV)
        return cls(Path(directory) if directory else None)

    def register_queue_depth(self, queue: str, read: QueueDepthReader) -> None:
        """Expose ``genguard_jobs_queue_depth{queue=…}``; ``read`` is awaited at each scrape."""
        if queue in self._queue_depths:
            raise ValueError(f"queue depth of {queue!r} is already registered")
        self._queue_depths[queue] = read

    # ---- observations -------------------------------------------------------------------

    def observe_record(self, record: AuditRecord) -> None:
        """Count one audited request: its decision, the rules that fired, each stage's time."""
        route, action = record.route, record.decision.action
        self.decisions.labels(record.tenant, route, action).inc()
        for reason in record.decision.reasons:
            self.decision_reasons.labels(route, reason.stage, reason.category, action).inc()
        for stage in record.stages:
            classifier = stage.classifier or _NO_CLASSIFIER
            self.stage_runs.labels(stage.stage, classifier, stage.verdict).inc()
            if stage.verdict != "skipped":
                self.stage_latency.labels(stage.stage, classifier).observe(stage.latency_ms / 1000)
        timing = record.metrics
        self.request_latency.labels(route, "total").observe(timing.total_ms / 1000)
        self.request_latency.labels(route, "overhead").observe(timing.overhead_ms / 1000)
        if timing.upstream_ms > 0:
            self.request_latency.labels(route, "upstream").observe(timing.upstream_ms / 1000)

    def observe_audit(self, outcome: str) -> None:
        self.audit_records.labels(outcome).inc()

    def observe_http(self, method: str, route: str | None, status: int, seconds: float) -> None:
        template = route or _UNMATCHED_ROUTE
        self.http_requests.labels(method, template, str(status)).inc()
        self.http_duration.labels(method, template).observe(seconds)

    # ---- exposition ---------------------------------------------------------------------

    async def live_values(
        self,
        *,
        spool_path: Path | None,
        audit_degraded: bool,
        policy_versions: dict[str, int],
    ) -> LiveValues:
        depths: dict[str, int] = {}
        for queue, read in self._queue_depths.items():
            try:
                depths[queue] = await read()
            except Exception as exc:  # a scrape never fails for one unreadable gauge
                logger.warning("queue depth of %s unreadable: %s", queue, exc)
        return LiveValues(
            spool_path=spool_path,
            audit_degraded=audit_degraded,
            policy_versions=policy_versions,
            queue_depths=depths,
        )

    async def exposition(self, live: LiveValues) -> bytes:
        """The text format of every metric (summed over worker processes) and the live gauges."""
        spool = await asyncio.to_thread(_spool_size, live.spool_path)
        gauges = CollectorRegistry(auto_describe=True)
        gauges.register(_LiveCollector(live, spool))
        if self.multiprocess_dir is None:
            counted = await asyncio.to_thread(generate_latest, self.registry)
        else:
            merged = multiprocess_registry(self.multiprocess_dir)
            counted = await asyncio.to_thread(generate_latest, merged)
        return counted + generate_latest(gauges)
