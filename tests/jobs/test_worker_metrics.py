"""A ``genguard worker``'s jobs show up in metrics, both ways (real processes, real Redis):

- the worker runs beside a ``genguard serve`` on the same data dir, so it writes into the
  server's multiprocess directory and the gateway's ``/metrics`` counts the jobs' decisions;
- ``--metrics-port`` serves the worker's own samples with prometheus_client's exporter.

The gateway itself only queues the jobs: every ``images.generations`` decision counted here was
made by the worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.embedded_redis import free_port
from tests.e2e.conftest import create_keys, make_key
from tests.policy_texts import nude_blocker
from tests.serving import serve_in_process, stop_process

POLICY = nude_blocker("worker-metrics")
DEADLINE_S = 120.0  # generous: only reached when something is broken
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _wait(what: str, ready: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while not (result := ready()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return result


def _samples(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _scrape(url: str, key: str | None = None) -> Samples | None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=10)
    except httpx.HTTPError:
        return None
    return _samples(response.text) if response.status_code == 200 else None


@pytest.fixture(scope="module")
def stack(
    clean_redis: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, Path]]:
    """(gateway URL, worker exporter URL, data dir): serve first, then the worker joins it."""
    data_dir = tmp_path_factory.mktemp("worker-metrics")
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    env = {
        "GENGUARD_REDIS_URL": clean_redis,
        "GENGUARD_POLICY_FILE": str(policy),
        "GENGUARD_BOOTSTRAP_KEY": make_key(),
        "OMP_NUM_THREADS": "1",
    }
    with serve_in_process(data_dir, env) as base_url:
        port = free_port()
        worker_env = {k: v for k, v in os.environ.items() if not k.startswith("GENGUARD_")}
        worker_env |= env | {"GENGUARD_DATA_DIR": str(data_dir)}
        worker_env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # found from the data dir
        log = data_dir / "worker.log"
        worker = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "worker", "--name", "metrics-worker",
             "--metrics-port", str(port)],
            env=worker_env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        exporter = f"http://127.0.0.1:{port}/metrics"
        try:

            def up() -> bool:
                if worker.poll() is not None:
                    raise RuntimeError(f"genguard worker exited:\n{log.read_text()[-4000:]}")
                return _scrape(exporter) is not None

            _wait("the worker's metrics exporter", up)
            yield base_url, exporter, data_dir
        finally:
            stop_process(worker, signal.SIGTERM)


def test_job_decisions_reach_the_gateway_metrics_and_the_worker_exporter(
    stack: tuple[str, str, Path], clean_redis: str
) -> None:
    base_url, exporter, data_dir = stack
    client_key, metrics_key = create_keys(clean_redis, [("acme", "client"), ("ops", "metrics")])
    with httpx.Client(
        base_url=base_url, timeout=60, headers={"Authorization": f"Bearer {client_key}"}
    ) as http:
        job_ids = []
        for prompt in ("a lighthouse at dusk", "a nude statue"):
            submitted = http.post("/v1/jobs", json={"kind": "image", "prompt": prompt, "n": 1})
            assert submitted.status_code == 202, submitted.text
            job_ids.append(submitted.json()["id"])

        def finished() -> list[str] | None:
            states = [http.get(f"/v1/jobs/{job_id}").json()["status"] for job_id in job_ids]
            return states if all(s in ("succeeded", "blocked", "failed") for s in states) else None

        assert _wait("the jobs to finish", finished) == ["succeeded", "blocked"]

    route = {"tenant": "acme", "route": "images.generations"}
    stage = {"stage": "prompt", "classifier": "term_list"}
    # the worker's own exporter: exactly its two decisions
    own = _scrape(exporter)
    assert own is not None
    assert _value(own, "genguard_decisions_total", **route, action="allow") == 1
    assert _value(own, "genguard_decisions_total", **route, action="block") == 1
    assert _value(own, "genguard_stage_latency_seconds_count", **stage) == 2
    # the gateway's /metrics sums the shared directory: the worker's samples are in it
    shared = _scrape(f"{base_url}/metrics", metrics_key)
    assert shared is not None
    assert _value(shared, "genguard_decisions_total", **route, action="allow") == 1
    assert _value(shared, "genguard_decisions_total", **route, action="block") == 1
    assert any(p.name.endswith(".db") for p in (data_dir / "metrics").iterdir())
