"""CPU per upstream call: one ``httpx.AsyncClient`` against ``ShardedAsyncClient``.

    OMP_NUM_THREADS=1 .venv/bin/python bench/upstream_pool.py [--requests 1500] [--rounds 2]

Starts the zero-latency fake upstream of ``bench/proxy_overhead.py`` (its own process) and posts
the gateway's image request to it from one event loop at concurrency 1, 32 and 128, measuring
this process's CPU time per request (``time.process_time``) after a warm-up of 200 requests.
The clients are configured as ``OpenAICompatGenerator`` configures them (before: httpx's default
limits; after: 32 shards of at most 16 connections, 4 busy per shard before the next).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.embedded_redis import free_port  # noqa: E402
from generators.http_pool import ShardedAsyncClient  # noqa: E402

BODY = {"model": "bench", "prompt": "a lighthouse", "n": 1, "response_format": "b64_json"}
Send = Callable[[str], Awaitable[httpx.Response]]


async def _cpu_ms_per_request(kind: str, url: str, concurrency: int, requests: int) -> float:
    if kind == "httpx.AsyncClient":
        client = httpx.AsyncClient()

        async def send(target: str) -> httpx.Response:
            return await client.post(target, json=BODY)

        close = client.aclose
    else:
        sharded = ShardedAsyncClient(
            shards=32,
            busy_per_shard=4,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )

        async def send(target: str) -> httpx.Response:
            return await sharded.request("POST", target, json=BODY)

        close = sharded.aclose
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            (await send(url)).raise_for_status()

    try:
        await asyncio.gather(*(one() for _ in range(200)))
        started = time.process_time()
        await asyncio.gather(*(one() for _ in range(requests)))
        return (time.process_time() - started) / requests * 1000
    finally:
        await close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "proxy_overhead.py"), "fake-upstream",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    try:
        for _ in range(600):
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/models")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/v1/images/generations"
        print("| round | client | concurrency | client CPU ms per request |")
        print("|---:|---|---:|---:|")
        for round_ in range(1, args.rounds + 1):
            for kind in ("httpx.AsyncClient", "ShardedAsyncClient"):
                for concurrency in (1, 32, 128):
                    cpu = asyncio.run(_cpu_ms_per_request(kind, url, concurrency, args.requests))
                    print(f"| {round_} | {kind} | {concurrency} | {cpu:.2f} |", flush=True)
    finally:
        upstream.terminate()
        upstream.wait()


if __name__ == "__main__":
    main()
