"""Per-stage latency of the default policy through the real pipeline (issue #9).

Starts a real GenGuard (``create_app`` under uvicorn in this process, embedded Redis, the offline
procedural image generator and espeak-ng speech) in a temporary data dir, sends requests with
the official ``openai`` client one at a time, and reads each request's audit record
(``GET /admin/audit/records/{id}``): every stage entry carries its ``latency_ms``. Printed per
stage: p50 / p95 over the measured requests; the generator's time is reported but is not part
of the safety stack.

- ``image``: ``POST /v1/images/generations`` 1024x1024, n=1, with the default policy
  (``policies/default.yaml``) and with ``default+pdq`` (the same policy with ``pdq_bank`` added
  to the output image classifiers: the stack the issue's target names, prompt + NudeNet + PDQ
  + watermark + C2PA + audit). Before the ``default+pdq`` run a bank of ``--bank-hashes``
  (500) random PDQ hashes is created, so the PDQ hash of every output is really computed.
- ``speech``: ``POST /v1/audio/speech`` (espeak-ng, WAV, about 10 s of speech), default policy.

"audit" is the append of the record (the overhead header, taken after the append, minus the
record's own total); "safety stack" is the ``x-genguard-overhead-ms`` header: everything the
gateway added to the request except the generator. The prompts are all different (no
embedding-cache hits).

Plus a micro-batching line: ``--concurrency`` simultaneous prompt-stage embeddings through the
gateway's ``MicroBatcher`` against the same calls made one by one (``--batching-only`` runs just
that part).

    OMP_NUM_THREADS=1 .venv/bin/python bench/stage_latency.py [--requests 30] [--only image]

Profile the same run with py-spy (all threads: event loop and worker pool):

    OMP_NUM_THREADS=1 .venv/bin/py-spy record --format raw -o profile.txt -- \
        .venv/bin/python bench/stage_latency.py --only image
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import openai
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.app import create_app  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from tests.serving import serve_in_thread  # noqa: E402

SPEECH = (
    "The lighthouse keeper climbed the spiral stairs each evening, trimmed the wick, wound the "
    "clockwork, and watched the beam sweep across the grey water until the first fishing boats "
    "came home before dawn."
)


def serve(settings: Settings) -> AbstractContextManager[str]:
    """The gateway in a thread of this process (the test suite's ``serve_in_thread``)."""
    return serve_in_thread(create_app(settings), startup_timeout_s=300)


def policy_file(directory: Path, variant: str) -> Path:
    policy = yaml.safe_load((ROOT / "policies" / "default.yaml").read_text(encoding="utf-8"))
    if variant == "default+pdq":
        policy["output"]["image"]["classifiers"] = [
            *policy["output"]["image"]["classifiers"],
            "pdq_bank",
        ]
    path = directory / f"policy-{variant.replace('+', '-')}.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False), encoding="utf-8")
    return path


def fill_hash_bank(base_url: str, key: str, count: int) -> None:
    """A bank of ``count`` random PDQ hashes (through the admin API), so ``pdq_bank`` really
    hashes each output (with an empty bank it returns at once) and searches the index. Random
    hashes lie at distance ~128 from any image: nothing matches, the request is allowed."""
    if count <= 0:
        return
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as admin:
        admin.post("/admin/hashbanks", json={"name": "bench-known"}).raise_for_status()
        hashes = [secrets.token_hex(32) for _ in range(count)]
        response = admin.post("/admin/hashbanks/bench-known/hashes", json={"hashes": hashes})
        response.raise_for_status()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def stage_key(stage: dict[str, Any]) -> str:
    classifier = stage.get("classifier")
    return f"{stage['stage']}/{classifier}" if classifier else stage["stage"]


def split_provenance(stage: dict[str, Any]) -> dict[str, float]:
    """The watermark and C2PA parts of the provenance entry (its detail lists per-asset ms)."""
    for item in stage.get("evidence", []):
        detail = item.get("detail") if isinstance(item, dict) else None
        if isinstance(detail, dict) and "watermark_ms" in detail:
            return {
                "provenance/watermark": sum(detail["watermark_ms"]),
                "provenance/c2pa sign": sum(detail["sign_ms"]),
            }
    return {}


def run_requests(
    base_url: str, key: str, kind: str, count: int, warmup: int
) -> tuple[dict[str, list[float]], list[float]]:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=300)
    admin = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    per_stage: dict[str, list[float]] = defaultdict(list)
    stack: list[float] = []
    cpu_started = 0.0
    for index in range(warmup + count):
        if index == warmup:
            cpu_started = time.process_time()
        tag = secrets.token_hex(3)
        raw: Any
        if kind == "image":
            raw = client.images.with_raw_response.generate(
                prompt=f"a lighthouse on a cliff at dawn, watercolour study {index} {tag}",
                size="1024x1024",
                response_format="b64_json",
            )
        else:
            raw = client.audio.speech.with_raw_response.create(
                model="genguard-espeak-tts",
                voice="alloy",
                input=f"{SPEECH} Take {index}.",
                response_format="wav",
            )
        overhead = float(raw.headers["x-genguard-overhead-ms"])
        decision_id = raw.headers["x-genguard-decision-id"]
        if raw.headers.get("x-genguard-decision") != "allow":
            raise SystemExit(f"request {index} was not allowed: {raw.headers}")
        if index < warmup:
            continue
        response = admin.get(f"/admin/audit/records/{decision_id}")
        response.raise_for_status()
        record = response.json()
        record = record.get("record", record)
        stack.append(overhead)
        for stage in record["stages"]:
            per_stage[stage_key(stage)].append(float(stage["latency_ms"]))
            for name, value in split_provenance(stage).items():
                per_stage[name].append(value)
        metrics = record["metrics"]
        per_stage["audit (append)"].append(
            max(0.0, overhead + metrics["upstream_ms"] - metrics["total_ms"])
        )
    # all threads of this process (client, gateway, generator, audit reads), per request: the
    # CPU the work costs, which a loaded machine does not inflate the way it does wall time
    cpu_ms = (time.process_time() - cpu_started) * 1000 / max(1, count)
    per_stage["process CPU per request (all threads, generator included)"].append(cpu_ms)
    return per_stage, stack


def report(title: str, per_stage: dict[str, list[float]], stack: list[float]) -> None:
    print(f"\n## {title} ({len(stack)} requests)\n")
    print("| stage | p50 ms | p95 ms |")
    print("|---|---:|---:|")
    for name, values in per_stage.items():
        note = " (generator, not counted)" if name.startswith("generate") else ""
        print(f"| {name}{note} | {percentile(values, 0.5):.1f} | {percentile(values, 0.95):.1f} |")
    print(
        f"| **safety stack (x-genguard-overhead-ms)** | **{statistics.median(stack):.1f}** "
        f"| **{percentile(stack, 0.95):.1f}** |"
    )


async def batching_line(concurrency: int, rounds: int, max_wait_ms: float) -> None:
    """N concurrent prompt embeddings: through the MicroBatcher vs one pool call each."""
    from classifiers.text.encoder import shared_minilm_encoder
    from gateway.batching import MicroBatcher
    from gateway.workers import WorkerPool

    encoder = shared_minilm_encoder()
    pool = WorkerPool(2)
    batcher: MicroBatcher[str, object] = MicroBatcher(
        encoder.encode_tokens, pool=pool, max_wait_ms=max_wait_ms, max_batch=64
    )
    prompts = [
        f"prompt {i}: a {secrets.token_hex(2)} harbour at night"
        for i in range(concurrency * rounds)
    ]
    await pool.cpu(encoder.encode_tokens, ["warm-up"])

    async def direct(text: str) -> object:
        return (await pool.cpu(encoder.encode_tokens, [text]))[0]

    results: dict[str, float] = {}
    for label, call in (("one call each", direct), ("micro-batched", batcher.submit)):
        encoder.clear_cache()
        started = time.perf_counter()
        for r in range(rounds):
            chunk = prompts[r * concurrency : (r + 1) * concurrency]
            await asyncio.gather(*(call(p) for p in chunk))
        results[label] = len(prompts) / (time.perf_counter() - started)
    pool.shutdown()
    ratio = results["micro-batched"] / results["one call each"]
    print(
        f"\n## prompt embeddings, {concurrency} concurrent x {rounds} rounds (MiniLM, pool of 2)\n"
        f"\none call each: {results['one call each']:.1f}/s; micro-batched "
        f"(max wait {max_wait_ms:g} ms): {results['micro-batched']:.1f}/s; "
        f"ratio {ratio:.2f}x; model calls {batcher.calls}, mean batch {batcher.mean_batch:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--only", choices=["image", "image-default", "image-pdq", "speech", "all"], default="all"
    )
    parser.add_argument("--batching-only", action="store_true")
    parser.add_argument(
        "--bank-hashes",
        type=int,
        default=500,
        help="random PDQ hashes in the bank of the image-pdq run (0: empty bank)",
    )
    parser.add_argument("--no-batching", action="store_true", help="gateway without batching")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="of the batching line (0: skip it)"
    )
    args = parser.parse_args()
    print(
        f"# stage latency: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    if not args.batching_only:
        runs = []
        if args.only in ("image", "image-default", "all"):
            runs += [("image", "default")]
        if args.only in ("image", "image-pdq", "all"):
            runs += [("image", "default+pdq")]
        if args.only in ("speech", "all"):
            runs += [("speech", "default")]
        for kind, variant in runs:
            with tempfile.TemporaryDirectory() as tmp:
                key = f"gg_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
                options: dict[str, Any] = {}
                if "batching" in Settings.model_fields:  # absent before issue #9 (A/B runs)
                    options["batching"] = {"enabled": not args.no_batching}
                settings = Settings(
                    data_dir=Path(tmp),
                    bootstrap_key=key,
                    policy_file=policy_file(Path(tmp), variant),
                    **options,
                )
                with serve(settings) as base_url:
                    if variant == "default+pdq":
                        fill_hash_bank(base_url, key, args.bank_hashes)
                    per_stage, stack = run_requests(base_url, key, kind, args.requests, args.warmup)
                size = "1024x1024 image" if kind == "image" else "10 s speech clip"
                report(f"{size}, policy {variant}", per_stage, stack)
    if args.concurrency > 0:
        asyncio.run(batching_line(args.concurrency, 4, 5.0))


if __name__ == "__main__":
    main()
