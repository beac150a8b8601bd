"""Audit sink append throughput on a private redis-server (not a test; prints figures).

.venv/bin/python bench/audit_append.py --records 20000 --concurrency 1 64 256
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis

from audit import (
    AuditRecord,
    DecisionRecord,
    InputRecord,
    MetricsRecord,
    PolicyRef,
    ReasonRecord,
    RedisStreamAuditSink,
    StageRecord,
    verify_chain,
)
from gateway.embedded_redis import EmbeddedRedis

ACTIONS = ("allow", "allow", "allow", "flag", "block")
CATEGORIES = ("sexual", "violence", "hate", "self-harm", "illicit")


def record(n: int, start: datetime) -> AuditRecord:
    action = ACTIONS[n % len(ACTIONS)]
    reasons = (
        [
            ReasonRecord(
                stage="prompt", category=CATEGORIES[n % 5], score=0.9, threshold=0.5, rule="t"
            )
        ]
        if action != "allow"
        else []
    )
    return AuditRecord(
        decision_id=f"dec_{uuid.uuid4().hex}",
        trace_id=uuid.uuid4().hex,
        timestamp=start + timedelta(seconds=n * 2.6),
        tenant="acme",
        key_id=f"key{n % 20:09d}",
        route="images.generations",
        policy=PolicyRef(id="default", revision="sha256:0123456789ab"),
        input=InputRecord.from_prompt(f"prompt {n}", mode="omitted", params={"n": 1}),
        stages=[
            StageRecord(
                stage="prompt",
                classifier="term_list",
                scores={"sexual": 0.1},
                latency_ms=0.2,
                verdict="allow",
            ),
            StageRecord(
                stage="output",
                classifier="nudenet",
                scores={"nudity": 0.0},
                latency_ms=25.0,
                verdict="allow",
            ),
        ],
        decision=DecisionRecord(action=action, reasons=reasons),
        metrics=MetricsRecord(total_ms=80.0, overhead_ms=40.0, upstream_ms=40.0),
    )


async def run(url: str, records: list[AuditRecord], concurrency: int) -> float:
    client = Redis.from_url(url)
    await client.flushall()
    sink = RedisStreamAuditSink(client)
    queue = iter(records)

    async def worker() -> None:
        for item in queue:
            await sink.append(item)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    report = await verify_chain(client, "acme", batch_size=2000)
    assert report.ok and report.records_checked == len(records), report.problems[:3]
    await client.aclose()
    return len(records) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64, 256])
    args = parser.parse_args()
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp), appendonly=False) as server:
        for concurrency in args.concurrency:
            records = [record(n, start) for n in range(args.records)]
            rate = asyncio.run(run(server.url, records, concurrency))
            print(f"concurrency {concurrency:4d}: {rate:8.0f} records/s (chain verified)")


if __name__ == "__main__":
    main()
