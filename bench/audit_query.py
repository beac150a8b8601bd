"""First-page latency of filtered audit queries over a large trail (not a test; prints figures).

Loads ``--records`` realistic records (several tenants, ~30 days, decisions, categories, keys,
classifiers) into a private redis-server (no AOF during the load) through the production path,
``RedisStreamAuditSink.append`` — the same Lua script writes the entry, the chain and every index
— then times ``audit.search`` (what ``GET /admin/audit/query`` calls) for a few filters.

.venv/bin/python bench/audit_query.py --records 1000000 --repeat 21
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis

from audit import (
    AuditRecord,
    DecisionRecord,
    InputRecord,
    MetricsRecord,
    OutputRecord,
    PolicyRef,
    ReasonRecord,
    RedisStreamAuditSink,
    StageRecord,
)
from audit.search import AuditQuery, search
from gateway.embedded_redis import EmbeddedRedis

TENANTS = ("acme", "globex", "initech", "umbrella", "hooli")
DAYS = 30
START = datetime(2025, 1, 1, tzinfo=UTC)
# (action, weight): most requests pass, some are flagged, fewer blocked
ACTIONS = (("allow", 75), ("flag", 15), ("block", 10))
CATEGORIES = ("sexual", "violence", "hate", "self-harm", "illicit", "harassment")
ROUTES = ("images.generations", "images.generations", "audio.speech", "moderations")
CLASSIFIERS = {
    "prompt": ("term_list", "semantic", "prompt_head"),
    "output": ("nudenet", "clip_concepts"),
}


def make_record(rng: random.Random, tenant: str, n: int, per_tenant: int) -> AuditRecord:
    when = START + timedelta(seconds=n * DAYS * 86400 / per_tenant + rng.random())
    action = rng.choices([a for a, _ in ACTIONS], [w for _, w in ACTIONS])[0]
    reasons = []
    if action != "allow":
        for category in rng.sample(CATEGORIES, k=1 if rng.random() < 0.8 else 2):
            stage = rng.choice(("prompt", "output"))
            reasons.append(
                ReasonRecord(
                    stage=stage,
                    category=category,
                    score=round(rng.uniform(0.5, 1.0), 3),
                    threshold=0.5,
                    rule=f"{stage}.{category}",
                )
            )
    route = rng.choice(ROUTES)
    stages = [
        StageRecord(
            stage="prompt",
            classifier=classifier,
            scores={c: round(rng.random(), 3) for c in CATEGORIES[:3]},
            latency_ms=round(rng.uniform(0.1, 20), 2),
            verdict="allow",
        )
        for classifier in CLASSIFIERS["prompt"]
    ]
    outputs = []
    if route != "moderations" and action != "block":
        stages.append(
            StageRecord(
                stage="output",
                classifier=rng.choice(CLASSIFIERS["output"]),
                scores={"nudity": round(rng.random(), 3)},
                latency_ms=round(rng.uniform(5, 60), 2),
                verdict=action,
            )
        )
        outputs.append(
            OutputRecord(
                sha256=rng.randbytes(32).hex(),
                mime_type="image/png" if route.startswith("images") else "audio/wav",
                pdq=rng.randbytes(32).hex() if route.startswith("images") else None,
                watermark_id=rng.randbytes(8).hex(),
            )
        )
    return AuditRecord(
        decision_id=f"dec_{uuid.UUID(int=rng.getrandbits(128)).hex}",
        trace_id=rng.randbytes(16).hex(),
        timestamp=when,
        tenant=tenant,
        key_id=f"key_{tenant}_{rng.randrange(25):03d}",
        route=route,
        policy=PolicyRef(id="default", revision=f"sha256:{'ab' * 5}{n * 4 // per_tenant:02d}"),
        input=InputRecord.from_prompt(
            f"a photo of item {n} in the style {rng.randrange(500)}",
            mode="omitted",
            params={"size": "1024x1024", "n": 1},
        ),
        stages=stages,
        decision=DecisionRecord(action=action, reasons=reasons),
        outputs=outputs,
        metrics=MetricsRecord(total_ms=80.0, overhead_ms=40.0, upstream_ms=40.0),
    )


def tenant_records(tenant: str, count: int, seed: int) -> Iterator[AuditRecord]:
    rng = random.Random(seed)
    for n in range(count):
        yield make_record(rng, tenant, n, count)


async def load(url: str, total: int, concurrency: int) -> float:
    client = Redis.from_url(url)
    sink = RedisStreamAuditSink(client)
    per_tenant = total // len(TENANTS)
    done = 0
    started = time.perf_counter()

    async def tenant_load(index: int, tenant: str) -> None:
        nonlocal done
        records = tenant_records(tenant, per_tenant, seed=index)

        async def worker() -> None:
            nonlocal done
            for record in records:  # one shared iterator: records stay in time order
                await sink.append(record)
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    async def progress() -> None:
        while True:
            await asyncio.sleep(30)
            rate = done / (time.perf_counter() - started)
            print(f"  loaded {done:,} ({rate:,.0f} records/s)", flush=True)

    reporter = asyncio.create_task(progress())
    await asyncio.gather(*(tenant_load(i, t) for i, t in enumerate(TENANTS)))
    reporter.cancel()
    elapsed = time.perf_counter() - started
    await client.aclose()
    return elapsed


async def measure(url: str, repeat: int) -> None:
    client = Redis.from_url(url)
    info = await client.info("memory")
    keys = await client.dbsize()
    print(f"Redis used_memory: {int(info['used_memory']) / 2**20:,.0f} MiB ({keys:,} keys)")
    day = START + timedelta(days=17)
    end_of_day = day + timedelta(days=1) - timedelta(microseconds=1)
    queries = {
        "block + sexual, one day": AuditQuery(
            tenant="acme", decision="block", category="sexual", since=day, until=end_of_day
        ),
        "flag + hate + stage output, one day": AuditQuery(
            tenant="acme",
            decision="flag",
            category="hate",
            stage="output",
            since=day,
            until=end_of_day,
        ),
        "block + violence, all 30 days": AuditQuery(
            tenant="acme", decision="block", category="violence"
        ),
        "one API key + block, all 30 days": AuditQuery(
            tenant="acme", key_id="key_acme_007", decision="block"
        ),
        "no filter (time index)": AuditQuery(tenant="acme"),
        "empty: allow + sexual, all 30 days": AuditQuery(
            tenant="acme", decision="allow", category="sexual"
        ),
    }
    print(f"first page (limit 50) of audit.search, median of {repeat} runs, tenant 'acme':")
    for name, query in queries.items():
        timings = []
        page = await search(client, query)
        for _ in range(repeat):
            started = time.perf_counter()
            page = await search(client, query)
            timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        p90 = timings[int(len(timings) * 0.9)]
        print(
            f"  {name:38s} median {statistics.median(timings):7.1f} ms  p90 {p90:7.1f} ms  "
            f"max {timings[-1]:7.1f} ms  ({len(page.records)} records)"
        )
        if page.next_cursor is not None:  # the second page, through the cursor
            second = query.model_copy(update={"cursor": page.next_cursor})
            started = time.perf_counter()
            await search(client, second)
            print(f"  {'':38s} second page {(time.perf_counter() - started) * 1000:7.1f} ms")
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=64, help="appenders per tenant")
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp), appendonly=False) as server:
        print(f"loading {args.records:,} records, {len(TENANTS)} tenants, {DAYS} days ...")
        elapsed = asyncio.run(load(server.url, args.records, args.concurrency))
        rate = args.records / elapsed
        print(f"loaded through RedisStreamAuditSink.append in {elapsed:,.0f} s ({rate:,.0f}/s)")
        asyncio.run(measure(server.url, args.repeat))


if __name__ == "__main__":
    main()
