"""Proxy overhead, throughput and memory of GenGuard in front of a zero-latency fake upstream.

One command runs everything and prints ratios measured in the same run against a baseline:

    OMP_NUM_THREADS=1 .venv/bin/python bench/proxy_overhead.py [--requests 400] [--json out.json]

1. A fake upstream (a separate uvicorn process, ``bench/proxy_overhead.py fake-upstream``) answers
   ``POST /v1/images/generations`` at once with one fixed 256x256 PNG in OpenAI's response shape.
2. Latency with the official ``openai`` client (one shared ``AsyncOpenAI``, one process, one event
   loop: the load generator's footprint is fixed) at concurrency 1, 8, 32, 128, of
   (a) client -> fake upstream directly (the baseline);
   (b) client -> ``genguard serve`` (1 worker) -> fake upstream, with a bench policy that turns
       the prompt and output stages and provenance (C2PA, watermark) off; auth, policy
       resolution and the hash-chained audit record still run, as for every request;
   (c) the same with the default policy (every default stage on).
   Overhead is reported as the server's ``x-genguard-overhead-ms`` header (total minus upstream
   time, what LiteLLM reports) and as client latency minus the direct baseline at each percentile.
3. Throughput (requests/s at concurrency 32) with 1, 2 and 4 gateway worker processes
   (``genguard serve --workers N``, one shared embedded Redis), stages off; RSS and USS per
   worker process after the run (psutil).

``--only latency|throughput`` runs one part; ``--levels`` and ``--throughput-workers`` change the
grid. Everything (Redis, upstream, gateways, load generator) shares this machine's CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
IMAGE_SIZE = 256

STAGES_OFF_POLICY = """\
# bench/proxy_overhead.py: every optional stage off; auth, policy and audit still run
id: bench-stages-off
prompt:
  classifiers: []
output:
  image:
    classifiers: []
provenance:
  c2pa: false
  watermark: false
"""


# -- the fake upstream (its own process) -------------------------------------------------------


def _png() -> bytes:
    from PIL import Image

    image = Image.linear_gradient("L").resize((IMAGE_SIZE, IMAGE_SIZE)).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def run_fake_upstream(port: int) -> None:
    """A zero-latency OpenAI images endpoint: the same precomputed body for every request."""
    import base64

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    body = json.dumps(
        {"created": 1700000000, "data": [{"b64_json": base64.b64encode(_png()).decode()}]}
    ).encode()

    async def generations(request: Request) -> Response:
        await request.body()
        return Response(body, media_type="application/json")

    async def models(request: Request) -> Response:
        return Response(b'{"object":"list","data":[]}', media_type="application/json")

    app = Starlette(
        routes=[
            Route("/v1/images/generations", generations, methods=["POST"]),
            Route("/v1/models", models),
        ]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- processes -------------------------------------------------------------------------------------


def _free_port() -> int:
    from gateway.embedded_redis import free_port

    return free_port()


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: process exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {timeout_s} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def fake_upstream(tmp: Path) -> Iterator[str]:
    port = _free_port()
    log = tmp / "upstream.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, __file__, "fake-upstream", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
    try:
        _wait_http(f"http://127.0.0.1:{port}/v1/models", process, log, 60)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        _stop(process)


@dataclass
class Gateway:
    base_url: str
    key: str
    process: subprocess.Popen[bytes]

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds used so far by the gateway's Python processes, and by its Redis."""
        import psutil

        gateway_s = redis_s = 0.0
        parent = psutil.Process(self.process.pid)
        for process in [parent, *parent.children(recursive=True)]:
            try:
                times = process.cpu_times()
                used = times.user + times.system
                if "redis" in process.name():
                    redis_s += used
                else:
                    gateway_s += used
            except psutil.Error:
                continue
        return gateway_s, redis_s


GATEWAY_ROOT = ROOT  # --gateway-root: serve another checkout (e.g. the last commit) instead
GATEWAY_ENV: dict[str, str] = {}  # --gateway-env KEY=VALUE


@contextmanager
def gateway(tmp: Path, upstream: str, *, workers: int, policy: str | None) -> Iterator[Gateway]:
    """``genguard serve --workers N`` in a fresh data dir, embedded Redis, access log off."""
    data_dir = Path(tempfile.mkdtemp(dir=tmp, prefix=f"gateway-{workers}w-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENGUARD_")}
    env.update(GATEWAY_ENV)
    env.update(
        GENGUARD_IMAGE_GENERATOR="openai_compat",
        GENGUARD_UPSTREAM__BASE_URL=upstream,
        GENGUARD_UPSTREAM__API_KEY="sk-bench",
        GENGUARD_LOG_LEVEL="warning",
    )
    if policy is not None:
        policy_path = data_dir / "policy.yaml"
        policy_path.write_text(policy)
        env["GENGUARD_POLICY_FILE"] = str(policy_path)
    port = _free_port()
    log = data_dir / "serve.log"
    command = [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)]
    command += ["--data-dir", str(data_dir / "state")]
    command += ["--workers", str(workers)] if workers > 1 else []
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=GATEWAY_ROOT
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base_url}/healthz", process, log, 600)
        # every worker answers before the run starts (each one accepts only once it is ready)
        seen: set[str] = set()
        deadline = time.monotonic() + 600
        while len(seen) < workers and time.monotonic() < deadline:
            with httpx.Client() as client:
                seen.add(client.get(f"{base_url}/healthz").headers.get("x-genguard-worker-pid", ""))
            if len(seen) < workers:
                time.sleep(0.05)
        key = (data_dir / "state" / "bootstrap.key").read_text().strip()
        yield Gateway(base_url, key, process)
    finally:
        _stop(process)


# -- the load generator --------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    concurrency: int
    requests: int
    seconds: float
    latency_ms: list[float]
    header_ms: list[float]
    errors: int
    gateway_cpu_ms: float | None = None  # per measured request, all gateway processes
    redis_cpu_ms: float | None = None

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def _client(base_url: str, key: str) -> object:
    import openai
    from openai._constants import DEFAULT_CONNECTION_LIMITS

    # the client's own HTTP stack, with a keep-alive connection for every concurrent request
    limits = type(DEFAULT_CONNECTION_LIMITS)(max_connections=512, max_keepalive_connections=512)
    http = openai.DefaultAsyncHttpxClient(limits=limits, timeout=120)
    return openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, http_client=http)


async def _load(
    name: str,
    base_url: str,
    key: str,
    concurrency: int,
    requests: int,
    warmup: int,
    cpu: Callable[[], tuple[float, float]] | None,
) -> Run:
    import openai

    client = _client(base_url, key)
    assert isinstance(client, openai.AsyncOpenAI)
    latency: list[float] = []
    header: list[float] = []
    errors = 0
    counter = 0

    async def one(i: int, record: bool) -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            raw = await client.images.with_raw_response.generate(
                prompt=f"a lighthouse on a cliff at dawn, study {i}",
                size=f"{IMAGE_SIZE}x{IMAGE_SIZE}",
                response_format="b64_json",
            )
        except openai.APIError:
            errors += 1
            return
        elapsed = (time.perf_counter() - started) * 1000
        if record:
            latency.append(elapsed)
            value = raw.headers.get("x-genguard-overhead-ms")
            if value is not None:
                header.append(float(value))

    async def worker(total: int, record: bool) -> None:
        nonlocal counter
        while counter < total:
            counter += 1
            await one(counter, record)

    try:
        await asyncio.gather(*(worker(warmup, False) for _ in range(concurrency)))
        counter = 0
        before = cpu() if cpu else None
        started = time.perf_counter()
        await asyncio.gather(*(worker(requests, True) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        after = cpu() if cpu else None
    finally:
        await client.close()
    run = Run(name, concurrency, len(latency), seconds, latency, header, errors)
    if before is not None and after is not None:
        run.gateway_cpu_ms = (after[0] - before[0]) * 1000 / requests
        run.redis_cpu_ms = (after[1] - before[1]) * 1000 / requests
    return run


def load(
    name: str,
    base_url: str,
    key: str,
    concurrency: int,
    requests: int,
    cpu: Callable[[], tuple[float, float]] | None = None,
) -> Run:
    runner: Callable[[Coroutine[Any, Any, Run]], Run] = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        pass
    warmup = max(20, 2 * concurrency)
    return runner(_load(name, base_url, key, concurrency, requests, warmup, cpu))


# -- reports ---------------------------------------------------------------------------------------


def _p(run: Run, q: float, header: bool = False) -> float:
    return percentile(run.header_ms if header else run.latency_ms, q)


def latency_table(direct: dict[int, Run], runs: dict[str, dict[int, Run]]) -> list[str]:
    lines = [
        "| setup | conc. | client p50 / p95 / p99 ms | client minus direct p50 / p95 / p99 ms "
        "| x-genguard-overhead-ms p50 / p95 / p99 | latency ratio p50 | req/s "
        "| gateway / Redis CPU ms per request | errors |",
        "|---|---:|---|---|---|---:|---:|---|---:|",
    ]
    for level, base in direct.items():
        lines.append(
            f"| direct | {level} | {_p(base, 50):.2f} / {_p(base, 95):.2f} / {_p(base, 99):.2f} "
            f"| - | - | 1.00 | {base.throughput:.0f} | - | {base.errors} |"
        )
        for name, by_level in runs.items():
            run = by_level.get(level)
            if run is None:
                continue
            minus = " / ".join(f"{_p(run, q) - _p(base, q):.2f}" for q in (50, 95, 99))
            head = " / ".join(f"{_p(run, q, True):.2f}" for q in (50, 95, 99))
            lines.append(
                f"| {name} | {level} | {_p(run, 50):.2f} / {_p(run, 95):.2f} / {_p(run, 99):.2f} "
                f"| {minus} | {head} | {_p(run, 50) / _p(base, 50):.2f} | {run.throughput:.0f} "
                f"| {_cpu(run)} | {run.errors} |"
            )
    return lines


def _cpu(run: Run) -> str:
    if run.gateway_cpu_ms is None or run.redis_cpu_ms is None:
        return "-"
    return f"{run.gateway_cpu_ms:.2f} / {run.redis_cpu_ms:.2f}"


def worker_memory(process: subprocess.Popen[bytes]) -> list[dict[str, float]]:
    """RSS and USS (pages only this process holds) of each gateway worker process, MiB."""
    import psutil

    parent = psutil.Process(process.pid)
    rows = []
    for child in parent.children(recursive=True):
        try:
            if "redis" in child.name():
                continue
            info = child.memory_full_info()
        except psutil.Error:
            continue
        if "multiprocessing" in " ".join(child.cmdline()) and "resource_tracker" in " ".join(
            child.cmdline()
        ):
            continue
        rows.append({"pid": child.pid, "rss_mib": info.rss / 2**20, "uss_mib": info.uss / 2**20})
    if not rows:  # one worker: the parent serves
        info = parent.memory_full_info()
        rows.append({"pid": parent.pid, "rss_mib": info.rss / 2**20, "uss_mib": info.uss / 2**20})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    fake = sub.add_parser("fake-upstream", help="(internal) run the fake upstream")
    fake.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", type=int, default=400, help="per latency run")
    parser.add_argument("--requests-on", type=int, default=200, help="per run, stages on")
    parser.add_argument("--levels", default="1,8,32,128")
    parser.add_argument(
        "--latency-workers",
        type=int,
        default=1,
        help="gateway worker processes of the latency rows",
    )
    parser.add_argument("--throughput-workers", default="1,2,4")
    parser.add_argument("--throughput-requests", type=int, default=2000)
    parser.add_argument("--throughput-concurrency", type=int, default=32)
    parser.add_argument(
        "--throughput-stages",
        choices=("off", "on"),
        default="off",
        help="throughput with the bench policy (off) or the default policy (on); for 'on' give "
        "each worker one CPU thread: --gateway-env GENGUARD_WORKERS=1 with OMP_NUM_THREADS=1",
    )
    parser.add_argument("--only", choices=("latency", "throughput", "latency-off"))
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument(
        "--gateway-root", type=Path, help="run `genguard serve` from this checkout (before/after)"
    )
    parser.add_argument(
        "--gateway-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="e.g. GENGUARD_KEY_CACHE_S=0",
    )
    args = parser.parse_args()
    if args.command == "fake-upstream":
        run_fake_upstream(args.port)
        return
    global GATEWAY_ROOT
    if args.gateway_root is not None:
        GATEWAY_ROOT = args.gateway_root.resolve()
    GATEWAY_ENV.update(item.split("=", 1) for item in args.gateway_env)
    levels = [int(x) for x in args.levels.split(",")]
    results: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {platform.platform()}",
    }
    print(f"machine: {results['machine']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="genguard-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with fake_upstream(tmp) as upstream:
            if args.only in (None, "latency", "latency-off"):
                direct = {c: load("direct", upstream, "sk-bench", c, args.requests) for c in levels}
                runs: dict[str, dict[int, Run]] = {}
                setups: list[tuple[str, str | None, int]] = [
                    ("stages off", STAGES_OFF_POLICY, args.requests)
                ]
                if args.only != "latency-off":
                    setups.append(("default stages on", None, args.requests_on))
                for name, policy, count in setups:
                    with gateway(tmp, upstream, workers=args.latency_workers, policy=policy) as gw:
                        runs[name] = {
                            c: load(name, f"{gw.base_url}/v1", gw.key, c, count, gw.cpu_s)
                            for c in levels
                        }
                        results[f"memory {name}"] = worker_memory(gw.process)
                print("\n".join(latency_table(direct, runs)), flush=True)
                results["latency"] = {
                    "direct": [_summary(r) for r in direct.values()],
                    **{n: [_summary(r) for r in by.values()] for n, by in runs.items()},
                }
            if args.only in (None, "throughput"):
                throughput(args, tmp, upstream, results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def throughput(
    args: argparse.Namespace, tmp: Path, upstream: str, results: dict[str, object]
) -> None:
    concurrency, count = args.throughput_concurrency, args.throughput_requests
    direct = load("direct", upstream, "sk-bench", concurrency, count)
    stages = args.throughput_stages
    policy = STAGES_OFF_POLICY if stages == "off" else None
    print(
        f"\nthroughput at concurrency {concurrency}, {count} requests, stages {stages} "
        f"(direct to the fake upstream: {direct.throughput:.0f} req/s)",
        flush=True,
    )
    print(
        "| gateway workers | req/s | vs 1 worker | client p50 / p99 ms "
        "| gateway / Redis CPU ms per request | RSS / USS per worker MiB |"
    )
    print("|---:|---:|---:|---|---|---|")
    rows = []
    first: float | None = None
    for workers in (int(x) for x in args.throughput_workers.split(",")):
        with gateway(tmp, upstream, workers=workers, policy=policy) as gw:
            run = load("throughput", f"{gw.base_url}/v1", gw.key, concurrency, count, gw.cpu_s)
            memory = worker_memory(gw.process)
        first = first or run.throughput
        mem = ", ".join(f"{m['rss_mib']:.0f} / {m['uss_mib']:.0f}" for m in memory)
        print(
            f"| {workers} | {run.throughput:.0f} | {run.throughput / first:.2f} "
            f"| {_p(run, 50):.2f} / {_p(run, 99):.2f} | {_cpu(run)} | {mem} |",
            flush=True,
        )
        rows.append({"workers": workers, **_summary(run), "memory": memory})
    results[f"throughput stages {stages}"] = {"direct": _summary(direct), "gateway": rows}


def _summary(run: Run) -> dict[str, object]:
    data = asdict(run)
    data.pop("latency_ms")
    data.pop("header_ms")
    for q in (50, 95, 99):
        data[f"client_p{q}_ms"] = round(_p(run, q), 3)
        data[f"header_p{q}_ms"] = round(_p(run, q, True), 3)
    data["requests_per_s"] = round(run.throughput, 1)
    return data


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    main()
