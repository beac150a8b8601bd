"""Audit completeness under faults (not a test; prints counts, exits 1 on a violation).

Runs ``genguard serve`` (a subprocess) against a redis-server this script owns (AOF on), under a
steady load from the official ``openai`` client (loopback, bounded number of requests), and:

(a) SIGKILLs the redis-server, keeps it down ``--redis-down-s`` seconds, restarts it on the same
    port with the same AOF directory;
(b) SIGKILLs the gateway mid-load and starts it again on the same data dir;
(c) SIGKILLs the redis-server, then the gateway while records wait in its spool, and restarts
    both (the spool is replayed at start-up).

Then it checks that every request that got an HTTP response (its decision id taken from the
``x-genguard-decision-id`` header) has exactly one audit record, that no decision id is recorded
twice, and that ``genguard audit verify`` passes.

.venv/bin/python bench/audit_faults.py --requests 900 --clients 4 --rate 15
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import redis

from gateway.embedded_redis import EmbeddedRedis, free_port

ADMIN_KEY = "gg_faultbench01_" + "s" * 43
PREFIX = "genguard:audit"
PROMPTS = ("a red kite over a hill", "a bowl of fruit", "a quiet harbour at dawn")


@dataclass
class Tally:
    answered: dict[str, int] = field(default_factory=dict)  # decision id -> HTTP status
    no_response: int = 0  # attempts without an answer (gateway down); retried
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, decision_id: str | None, status: int, code: str | None = None) -> None:
        with self.lock:
            self.statuses[f"{status} {code}" if code else str(status)] += 1
            if decision_id is None:
                raise SystemExit(f"a response with status {status} carries no decision id")
            if decision_id in self.answered:
                raise SystemExit(f"decision id {decision_id} answered twice")
            self.answered[decision_id] = status


class Gateway:
    """``genguard serve`` in a subprocess."""

    def __init__(self, data_dir: Path, port: int, redis_url: str) -> None:
        self.data_dir, self.port = data_dir, port
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GENGUARD_")}
        self.env |= {"GENGUARD_REDIS_URL": redis_url, "GENGUARD_BOOTSTRAP_KEY": ADMIN_KEY}
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / "gateway.log"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port),
                 "--data-dir", str(self.data_dir)],
                stdout=log, stderr=subprocess.STDOUT, env=self.env,
            )  # fmt: skip
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"genguard serve exited; see {self.log}")
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise SystemExit("genguard serve did not start in 180 s")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", "--data-dir", str(self.data_dir), *args],
            capture_output=True, text=True, timeout=300, env=self.env,
        )  # fmt: skip


def client_loop(port: int, todo: collections.deque[int], tally: Tally, pause_s: float) -> None:
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{port}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=60
    )
    while True:
        try:
            n = todo.popleft()
        except IndexError:
            return
        prompt = PROMPTS[n % len(PROMPTS)] + f" #{n}"
        try:
            if n % 4 == 0:
                image = client.images.with_raw_response.generate(prompt=prompt, size="64x64")
                headers, status = image.headers, image.status_code
            else:
                moderation = client.moderations.with_raw_response.create(input=prompt)
                headers, status = moderation.headers, moderation.status_code
            tally.answer(headers.get("x-genguard-decision-id"), status)
        except openai.APIStatusError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            decision_id = exc.response.headers.get("x-genguard-decision-id")
            from_body = body.get("decision_id") or (body.get("error") or {}).get("decision_id")
            if from_body and decision_id and from_body != decision_id:
                raise SystemExit(f"header {decision_id} and body {from_body} disagree") from exc
            code = (body.get("error") or {}).get("code") or body.get("code")
            tally.answer(decision_id or from_body, exc.status_code, code)
        except (openai.APIConnectionError, openai.APITimeoutError):
            with tally.lock:
                tally.no_response += 1
            todo.appendleft(n)  # no answer (the gateway is down): send it again later
        time.sleep(pause_s)


def audited_ids(url: str) -> collections.Counter[str]:
    client = redis.Redis.from_url(url, decode_responses=True)
    ids: collections.Counter[str] = collections.Counter()
    tenants: set[str] = client.smembers(f"{PREFIX}:tenants")  # type: ignore[assignment]
    for tenant in tenants:
        entries: list[tuple[str, dict[str, str]]] = client.xrange(f"{PREFIX}:stream:{tenant}")  # type: ignore[assignment]
        for _, fields in entries:
            ids[json.loads(fields["record"])["decision_id"]] += 1
    return ids


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rate", type=float, default=15.0, help="requests/s, all clients")
    parser.add_argument("--redis-down-s", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = EmbeddedRedis(root / "redis", appendonly=True).start()
        gateway = Gateway(root / "state", free_port(), server.url)
        gateway.start()
        tally = Tally()
        todo = collections.deque(range(args.requests))
        workers = [
            threading.Thread(
                target=client_loop,
                args=(gateway.port, todo, tally, args.clients / args.rate),
                daemon=True,
            )
            for _ in range(args.clients)
        ]
        started = time.monotonic()
        for worker in workers:
            worker.start()

        time.sleep(5)
        print(f"[{time.monotonic() - started:5.1f} s] (a) SIGKILL redis-server", flush=True)
        assert server._process is not None
        server._process.send_signal(signal.SIGKILL)
        server._process.wait()
        before = len(tally.answered)
        time.sleep(args.redis_down_s)
        print(
            f"[{time.monotonic() - started:5.1f} s] restart redis-server on port {server.port} "
            f"({len(tally.answered) - before} answers while it was down)",
            flush=True,
        )
        server.start()
        time.sleep(5)
        print(f"[{time.monotonic() - started:5.1f} s] (b) SIGKILL the gateway", flush=True)
        gateway.kill()
        gateway.start()
        print(f"[{time.monotonic() - started:5.1f} s] gateway restarted", flush=True)
        time.sleep(5)
        print(
            f"[{time.monotonic() - started:5.1f} s] (c) SIGKILL redis-server, 3 s later SIGKILL "
            "the gateway (records still in its spool), restart both",
            flush=True,
        )
        server._process.send_signal(signal.SIGKILL)
        server._process.wait()
        time.sleep(3)
        spooled = gateway.data_dir / "audit-spool.jsonl"
        gateway.kill()
        pending = spooled.read_bytes().count(b"\n") if spooled.exists() else 0
        print(f"  {pending} records in the spool of the killed gateway", flush=True)
        time.sleep(max(0.0, args.redis_down_s - 3))
        server.start()
        gateway.start()
        print(f"[{time.monotonic() - started:5.1f} s] both restarted", flush=True)
        for worker in workers:
            worker.join()
        elapsed = time.monotonic() - started
        spool = gateway.data_dir / "audit-spool.jsonl"
        deadline = time.monotonic() + 60
        while spool.exists() and spool.stat().st_size and time.monotonic() < deadline:
            time.sleep(0.5)  # the gateway's maintenance task replays what is left
        gateway.stop()

        audited = audited_ids(server.url)
        verify = gateway.cli("audit", "verify")
        log = gateway.log.read_text(errors="replace")
        server.stop()
    missing = [d for d in tally.answered if audited[d] == 0]
    duplicated = [d for d, n in audited.items() if n > 1]
    print(f"requests: {args.requests} in {elapsed:.1f} s, {args.clients} clients")
    print(f"answered: {len(tally.answered)} (status {dict(sorted(tally.statuses.items()))})")
    print(f"attempts without an answer (gateway down, retried): {tally.no_response}")
    print(f"audit records: {sum(audited.values())} ({len(audited)} decision ids)")
    for line in log.splitlines():
        if "spool" in line or "replayed" in line:
            print(f"  gateway log: {line.strip()[:150]}")
    print(f"answered without a record: {len(missing)}  duplicated decision ids: {len(duplicated)}")
    print(f"genguard audit verify: rc {verify.returncode}")
    print("  " + (verify.stdout + verify.stderr).strip().replace("\n", "\n  "))
    ok = not missing and not duplicated and verify.returncode == 0
    print("OK" if ok else f"FAILED; e.g. missing {missing[:3]} duplicated {duplicated[:3]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
