"""``genguard worker``: an RQ worker process that runs jobs through GenGuard's pipeline.

RQ's loop (dequeue, job timeout, retries, abandoned-job clean-up) runs on the main thread; the
pipeline runs on one asyncio event loop in a second thread, built once by ``open_services``
exactly as the gateway builds it (models loaded and warmed at start-up). ``run_job`` — the
function every job names — hands the job id to that loop and waits.

Each worker process runs one job at a time (``SimpleWorker``: no fork, so the loaded models and
the loop survive between jobs); run more processes for more concurrency. A pool of GPU workers is
a set of processes with their own generator settings listening on their own queue
(``--queue``). A worker killed holding a job leaves an entry in RQ's started-job registry that
expires ``jobs.timeout_s + jobs.lease_margin_s`` after the job started; the next registry
clean-up by any worker re-queues the job (``Retry``), and ``gateway.jobs.runner`` makes the
repeat harmless.

Metrics: a worker counts each job's decision, rules and stage latencies exactly as the gateway
counts a request (``gateway.metrics``). On the machine of a ``genguard serve`` with the same data
dir it writes them into that server's multiprocess directory (``<data dir>/metrics``, or
``PROMETHEUS_MULTIPROC_DIR`` when set), so the gateway's ``/metrics`` includes the jobs;
``--metrics-port N`` also serves this worker's own samples with prometheus_client's HTTP
exporter (for a worker on another machine). docs/operations.md ("Observability").
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.registry import CollectorRegistry
from pydantic import SecretStr
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer

from gateway.jobs.connection import JobsUnavailable, sync_redis
from gateway.jobs.runner import CapturingAuditSink, JobRunner
from gateway.jobs.webhook import WebhookSender, WebhooksUnconfigured, webhook_master_key
from gateway.lifespan import open_services, read_runtime_redis_url
from gateway.metrics import MULTIPROCESS_ENV, join_multiprocess_dir
from gateway.settings import Settings

__all__ = [
    "GenGuardWorker",
    "JobRuntime",
    "run_job",
    "run_worker",
    "shared_metrics_dir",
    "shared_redis_settings",
]

logger = logging.getLogger("genguard.jobs")


class GenGuardWorker(SimpleWorker):
    """RQ's in-process worker with a lease of ``job.timeout + lease_margin_s`` (RQ: + 60 s)."""

    lease_margin_s: int = 30

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return int(job.timeout or 0) + self.lease_margin_s


class JobRuntime:
    """The worker's event loop thread, holding the services and the ``JobRunner``."""

    def __init__(self, settings: Settings, worker_name: str) -> None:
        self._settings = settings
        self._name = worker_name
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="genguard-jobs-loop", daemon=True
        )
        self._stack = AsyncExitStack()
        self.runner: JobRunner | None = None
        self.metrics_registry: CollectorRegistry | None = None  # this process's samples

    def start(self) -> None:
        self._thread.start()
        self._call(self._open())

    def stop(self) -> None:
        try:
            self._call(self._stack.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)

    def run(self, job_id: str) -> str | None:
        runner = self.runner
        assert runner is not None, "JobRuntime.start() first"
        status = self._call(runner.execute(job_id))
        return None if status is None else status.value

    def _call(self, coro: Any) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:  # RQ's job timeout (a signal) or shutdown: stop the coroutine too
            future.cancel()
            raise

    async def _open(self) -> None:
        holder: list[CapturingAuditSink] = []

        def capture(sink: Any) -> CapturingAuditSink:
            holder.append(CapturingAuditSink(sink))
            return holder[0]

        services = await self._stack.enter_async_context(
            open_services(self._settings, request_sink=capture)
        )
        self.metrics_registry = services.telemetry.metrics.registry
        jobs = self._settings.jobs
        webhooks: WebhookSender | None = None
        try:
            master = webhook_master_key(self._settings)
        except WebhooksUnconfigured as exc:
            logger.warning("webhooks disabled: %s", exc)
        else:
            webhooks = WebhookSender(
                master,
                attempts=jobs.webhook_attempts,
                backoff_s=jobs.webhook_backoff_s,
                timeout_s=jobs.webhook_timeout_s,
            )
            self._stack.push_async_callback(webhooks.aclose)
        self.runner = JobRunner(
            services,
            holder[0],
            services.audit_sink,
            webhooks,
            worker=self._name,
            max_attempts=jobs.max_attempts,
            result_ttl_s=jobs.result_ttl_s,
        )


_runtime: JobRuntime | None = None
"""The process's runtime: an RQ job names a function, and this process *is* the worker."""


def run_job(job_id: str) -> str | None:
    """What every job calls (``gateway.jobs.store.JOB_FUNCTION``)."""
    if _runtime is None:
        raise RuntimeError("run_job runs inside 'genguard worker' only")
    return _runtime.run(job_id)


def shared_redis_settings(settings: Settings) -> Settings:
    """Point an unconfigured worker at the embedded Redis of the gateway on its data dir."""
    if settings.redis_url is not None or settings.redis_sentinels is not None:
        return settings
    url = read_runtime_redis_url(settings.data_dir)
    if url is None:
        return settings  # sync_redis says what to configure
    return settings.model_copy(update={"redis_url": SecretStr(url)})


def shared_metrics_dir(settings: Settings) -> Path | None:
    """Join the multiprocess metrics directory of a ``genguard serve`` on this machine:
    ``PROMETHEUS_MULTIPROC_DIR`` when set (created if missing), else ``<data dir>/metrics`` when
    a server on the same data dir made it; None (in-process metrics) otherwise. Call before any
    metric exists (before the services open)."""
    configured = os.environ.get(MULTIPROCESS_ENV)
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
    else:
        directory = settings.data_dir.resolve() / "metrics"
        if not directory.is_dir():
            return None
    return join_multiprocess_dir(directory)


def run_worker(
    settings: Settings,
    queues: list[str] | None = None,
    *,
    name: str | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> int:
    """Run until SIGTERM / SIGINT (RQ's warm shutdown: the current job finishes first).

    ``metrics_port``: serve this worker's metrics (``/metrics`` in Prometheus' text format) on
    ``metrics_host:metrics_port`` with prometheus_client's exporter.
    """
    global _runtime
    settings = shared_redis_settings(settings)
    try:
        connection = sync_redis(settings)
    except JobsUnavailable as exc:
        print(f"genguard: {exc}", file=sys.stderr)
        return 2
    jobs = settings.jobs
    names = queues or [jobs.image_queue, jobs.speech_queue]
    worker_name = name or f"genguard-{socket.gethostname()}-{os.getpid()}"
    shared = shared_metrics_dir(settings)
    if shared is not None:
        logger.info("worker metrics go to the shared directory %s", shared)
    runtime = JobRuntime(settings, worker_name)
    runtime.start()
    _runtime = runtime
    exporter = None
    try:
        if metrics_port is not None:
            assert runtime.metrics_registry is not None  # set by start()
            exporter, _ = start_http_server(
                metrics_port, addr=metrics_host, registry=runtime.metrics_registry
            )
            logger.info("worker metrics at http://%s:%d/metrics", metrics_host, metrics_port)
        GenGuardWorker.lease_margin_s = jobs.lease_margin_s
        worker = GenGuardWorker(
            [Queue(n, connection=connection, serializer=JSONSerializer) for n in names],
            connection=connection,
            name=worker_name,
            serializer=JSONSerializer,
            maintenance_interval=jobs.maintenance_interval_s,
            # idle workers wake every maintenance interval (RQ waits worker_ttl - 15 s)
            worker_ttl=jobs.maintenance_interval_s + 15,
        )
        logger.info("worker %s listening on %s", worker_name, ", ".join(names))
        worker.work(logging_level=settings.log_level.upper())
    finally:
        _runtime = None
        if exporter is not None:
            exporter.shutdown()
        runtime.stop()
        connection.close()
    return 0
