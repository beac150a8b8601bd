"""Measure GenGuard's overhead (x-genguard-overhead-ms) around the procedural generator.

Starts `genguard serve` on its embedded defaults in a temporary data dir, sends N allowed
512x512 image requests through the official openai client, and prints the medians of the
overhead header, the generator time (from the audit records) and the client-side latency.

    .venv/bin/python bench/overhead.py [--requests 50] [--size 512x512]

This is the end-to-end view with a stage breakdown (one request at a time). The proxy overhead
against a zero-latency upstream at concurrency 1-128, throughput with several worker processes
and memory per worker are measured by ``bench/proxy_overhead.py`` (issue #9).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai
import redis

KEY_LINE = re.compile(r"bootstrap admin key \(tenant 'default', also saved in .*\): (gg_\S+)")


def start_server(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENGUARD_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), "--data-dir",
         str(data_dir)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    assert process.stderr is not None
    key = None
    while True:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            raise SystemExit("genguard serve exited during start-up")
        match = KEY_LINE.search(line)
        if match:
            key = match.group(1)
        if "Application startup complete" in line and key:
            return process, key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--size", default="512x512")
    parser.add_argument("--port", type=int, default=18089)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        process, key = start_server(Path(tmp), args.port)
        try:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{args.port}/v1", api_key=key,
                                   max_retries=0)  # fmt: skip
            client.images.generate(prompt="warm-up", size=args.size)  # type: ignore[arg-type]
            overhead, latency, ids = [], [], []
            for i in range(args.requests):
                started = time.perf_counter()
                raw = client.images.with_raw_response.generate(
                    prompt=f"a lighthouse on a cliff at dawn, study {i}",
                    size=args.size,  # type: ignore[arg-type]
                    response_format="b64_json",
                )
                latency.append((time.perf_counter() - started) * 1000)
                overhead.append(float(raw.headers["x-genguard-overhead-ms"]))
                ids.append(raw.headers["x-genguard-decision-id"])
            url = (Path(tmp) / "redis.url").read_text().strip()
            r = redis.Redis.from_url(url)
            records = [
                json.loads(f[b"record"]) for _, f in r.xrange("genguard:audit:stream:default")
            ]
            by_id = {rec["decision_id"]: rec for rec in records}
            generator = [by_id[i]["metrics"]["upstream_ms"] for i in ids]
            # a stage's classifiers run concurrently: its time in a request is the longest entry
            stages: dict[str, list[float]] = {}
            for i in ids:
                longest: dict[str, float] = {}
                for stage in by_id[i]["stages"]:
                    name = stage["stage"]
                    longest[name] = max(longest.get(name, 0.0), stage["latency_ms"])
                for name, value in longest.items():
                    stages.setdefault(name, []).append(value)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
    med = statistics.median
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"requests: {args.requests} allowed images at {args.size} (procedural generator)")
    print(
        f"x-genguard-overhead-ms median: {med(overhead):.2f} ms "
        f"(p90 {sorted(overhead)[int(0.9 * len(overhead))]:.2f} ms)"
    )
    print(f"generator time median:        {med(generator):.2f} ms")
    print(f"client latency median:        {med(latency):.2f} ms")
    print(f"overhead / client latency:    {med(overhead) / med(latency):.2f}")
    for name, values in stages.items():
        print(f"  stage {name:<11} median {med(values):7.2f} ms")


if __name__ == "__main__":
    main()
