"""``genguard`` command line: serve, keys, policy validate, audit tail / verify, eval prompts."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis

from gateway.embedded_redis import EmbeddedRedis
from gateway.erasure_commands import add_erasure_commands, run_erasure
from gateway.hashbank_commands import add_hashbank_commands, run_hashbank_command
from gateway.keys import ApiKeyStore, parse_roles
from gateway.lifespan import audit_checkpoint_key, read_runtime_redis_url
from gateway.policy_commands import OFFLINE, add_policy_commands, run_offline, run_online
from gateway.recording import admin_record
from gateway.redis_connect import connect_redis
from gateway.settings import InsecureSettingsError, Settings
from gateway.voice_commands import add_voice_commands, run_voice_command

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genguard", description="GenGuard content-safety and provenance gateway"
    )
    parser.add_argument("--data-dir", type=Path, help="state directory (default ./.genguard)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run the gateway (embedded Redis unless GENGUARD_REDIS_URL is set)"
    )
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument("--data-dir", type=Path, dest="serve_data_dir", help="state directory")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing one Redis (default 1; GENGUARD_WORKERS sizes the "
        "thread pool inside each)",
    )

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create a key (printed once, stored hashed)")
    create.add_argument("--tenant", required=True)
    create.add_argument(
        "--roles",
        default="client",
        help="comma-separated: client, auditor, policy_editor, policy_approver, reviewer, metrics, "
        "admin",
    )
    create.add_argument("--name", default="")
    keys.add_parser("list", help="list keys (never the secrets)")
    revoke = keys.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")

    policy = commands.add_parser(
        "policy", help="policies: validate, versions, review"
    ).add_subparsers(dest="policy_command", required=True)
    add_policy_commands(policy)

    hashbank = commands.add_parser("hashbank", help="PDQ image hash banks").add_subparsers(
        dest="hashbank_command", required=True
    )
    add_hashbank_commands(hashbank)

    voices = commands.add_parser("voices", help="protected voices").add_subparsers(
        dest="voices_command", required=True
    )
    add_voice_commands(voices)

    audit = commands.add_parser("audit", help="audit log").add_subparsers(
        dest="audit_command", required=True
    )
    tail = audit.add_parser("tail", help="newest audit records")
    tail.add_argument("--tenant", help="only this tenant (default: all)")
    tail.add_argument("-n", "--count", type=int, default=20)
    tail.add_argument("--json", action="store_true", help="one JSON record per line")
    verify = audit.add_parser("verify", help="verify the hash chain of a tenant (or all)")
    verify.add_argument("--tenant", help="only this tenant (default: all)")
    _add_audit_search_commands(audit)

    evaluate = commands.add_parser("eval", help="evaluate a policy").add_subparsers(
        dest="eval_command", required=True
    )
    from gateway.evaluation import add_eval_prompts_arguments

    add_eval_prompts_arguments(
        evaluate.add_parser("prompts", help="run the prompt stage over a labelled data set")
    )
    provenance = commands.add_parser("provenance", help="content credentials").add_subparsers(
        dest="provenance_command", required=True
    )
    check = provenance.add_parser("verify", help="C2PA report, watermark, recovered manifest")
    check.add_argument("file", type=Path)
    check.add_argument("--trust-anchors", type=Path, help="PEM roots (default: the signer's)")
    check.add_argument("--offline", action="store_true", help="no manifest repository lookup")
    add_erasure_commands(commands)
    worker = commands.add_parser(
        "worker", help="run asynchronous jobs (POST /v1/jobs) through the pipeline (RQ)"
    )
    worker.add_argument(
        "--queue",
        action="append",
        help="queue to listen on, repeatable (default: the image and the speech queue)",
    )
    worker.add_argument("--name", help="worker name (default genguard-<host>-<pid>)")
    worker.add_argument(
        "--metrics-port",
        type=int,
        help="serve this worker's Prometheus metrics on this port (docs/operations.md)",
    )
    worker.add_argument(
        "--metrics-host", default="127.0.0.1", help="address of --metrics-port (127.0.0.1)"
    )
    return parser


def _add_audit_search_commands(audit: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--tenant", required=True)
    for name in (
        "since", "until", "decision", "category", "stage", "classifier", "key-id", "route",
        "policy-revision", "error-code", "decision-id", "output-sha256", "output-pdq",
        "output-watermark",
    ):  # fmt: skip
        filters.add_argument(f"--{name}")
    query = audit.add_parser("query", parents=[filters], help="filtered records, newest first")
    query.add_argument("--limit", type=int, default=50)
    query.add_argument("--cursor")
    export = audit.add_parser("export", parents=[filters], help="every matching record")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    stats = audit.add_parser("stats", help="counts per decision and category")
    stats.add_argument("--tenant", required=True)
    stats.add_argument("--since")
    stats.add_argument("--until")
    stats.add_argument("--bucket", choices=("hour", "day"), default="hour")
    trim = audit.add_parser("trim", help="retention: remove old records, leave a signed checkpoint")
    trim.add_argument("--tenant", help="only this tenant (default: all)")
    trim.add_argument("--older-than-days", type=int, required=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides: dict[str, object] = {}
    data_dir = getattr(args, "serve_data_dir", None) or args.data_dir
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if args.command == "serve":
        if args.host:
            overrides["host"] = args.host
        if args.port is not None:
            overrides["port"] = args.port
    if args.command in ("erase", "variants"):
        return run_erasure(args)
    if args.command == "policy" and args.policy_command in OFFLINE:
        status = run_offline(args)
        if status >= 0:
            return status
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        # never print the input values: they may hold secrets (keys, Redis passwords)
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(p) for p in error["loc"]) or "settings"
            print(f"genguard: invalid setting {where}: {error['msg']}", file=sys.stderr)
        return 2
    except InsecureSettingsError as exc:
        print(f"genguard: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        if not 1 <= args.workers <= 64:
            print("genguard: --workers must be between 1 and 64", file=sys.stderr)
            return 2
        from gateway.serving import serve

        return serve(settings, args.workers)
    if args.command == "worker":
        from gateway.jobs.worker import run_worker

        return run_worker(
            settings,
            args.queue,
            name=args.name,
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
        )
    if args.command == "eval":
        from gateway.evaluation import run_eval_prompts

        return run_eval_prompts(settings, args)
    if args.command == "keys":
        return asyncio.run(_keys(settings, args))
    if args.command == "policy":
        return asyncio.run(_policy(settings, args))
    if args.command == "provenance":
        return asyncio.run(_provenance_verify(settings, args))
    if args.command == "hashbank":
        return asyncio.run(_hashbank(settings, args))
    if args.command == "voices":
        return asyncio.run(_voices(settings, args))
    return asyncio.run(_audit(settings, args))


@asynccontextmanager
async def _redis(settings: Settings) -> AsyncIterator[Redis]:
    """The configured Redis, the running gateway's embedded one, or a temporary embedded one."""
    if settings.redis_configured:  # one node, Sentinel or Cluster (gateway/redis_connect.py)
        async with connect_redis(settings, socket_timeout=None) as client:
            yield client
        return
    url = read_runtime_redis_url(settings.data_dir)
    embedded: EmbeddedRedis | None = None
    if url is None:
        embedded = EmbeddedRedis(settings.data_dir / "redis", appendonly=True)
        await asyncio.to_thread(embedded.start)
        url = embedded.url
    try:
        async with connect_redis(settings, url=url, socket_timeout=None) as client:
            yield client
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def _provenance_verify(settings: Settings, args: argparse.Namespace) -> int:
    """``genguard provenance verify FILE``: the same JSON report as POST /v1/provenance/verify."""
    import json

    from gateway.lifespan import signing_credentials, watermark_key
    from provenance.errors import ProvenanceError
    from provenance.repository import ManifestRepository
    from provenance.verifier import verify_asset

    async def cpu(fn: Callable[..., Any], /, *a: Any, **kw: Any) -> Any:
        return await asyncio.to_thread(fn, *a, **kw)

    try:
        data = args.file.read_bytes()
        credentials = signing_credentials(settings)
        anchors = (
            args.trust_anchors.read_bytes() if args.trust_anchors else credentials.trust_anchor_pem
        )
        key = watermark_key(settings, credentials)
        if args.offline:
            report = await verify_asset(
                data, cpu=cpu, repository=None, trust_anchors_pem=anchors, audio_key=key
            )
        else:
            async with _redis(settings) as redis:
                report = await verify_asset(
                    data,
                    cpu=cpu,
                    repository=ManifestRepository(redis),
                    trust_anchors_pem=anchors,
                    audio_key=key,
                )
    except (OSError, ProvenanceError) as exc:
        print(f"genguard: cannot verify {args.file}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    found = report["c2pa"]["present"] or report["watermark"]["found"]
    return 0 if found else 3


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


async def _policy(settings: Settings, args: argparse.Namespace) -> int:
    from audit.sink import RedisStreamAuditSink
    from gateway.lifespan import policy_event_recorder
    from policies.versions import PolicyVersions

    async with _redis(settings) as redis:
        events = policy_event_recorder(RedisStreamAuditSink(redis))
        args.actor = _actor()
        versions = PolicyVersions(redis, on_event=events)
        return await run_online(args, versions, seed=settings.policy_file, settings=settings)


async def _hashbank(settings: Settings, args: argparse.Namespace) -> int:
    async with _redis(settings) as redis:
        return await run_hashbank_command(redis, args, _actor())


async def _voices(settings: Settings, args: argparse.Namespace) -> int:
    async with _redis(settings) as redis:
        return await run_voice_command(redis, args, _actor())


async def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from audit.sink import RedisStreamAuditSink

    async with _redis(settings) as redis:
        store = ApiKeyStore(redis)
        sink = RedisStreamAuditSink(redis)
        if args.keys_command == "create":
            try:
                roles = parse_roles(args.roles)
                key, info = await store.create(tenant=args.tenant, roles=roles, name=args.name)
            except ValueError as exc:
                print(f"genguard: {exc}", file=sys.stderr)
                return 2
            await sink.append(
                admin_record(
                    "admin.keys.create",
                    info.tenant,
                    _actor(),
                    {"key_id": info.key_id, "roles": sorted(roles)},
                )
            )
            print(
                f"created key {info.key_id} for tenant {info.tenant!r} "
                f"(roles: {', '.join(sorted(roles))}); it is shown only now:",
                file=sys.stderr,
            )
            print(key)
            return 0
        if args.keys_command == "list":
            for info in await store.list():
                state = f"revoked {info.revoked_at}" if info.revoked_at else "active"
                role_names = ",".join(sorted(info.roles))
                print(
                    f"{info.key_id}  tenant={info.tenant}  roles={role_names}  "
                    f"name={info.name or '-'}  created={info.created_at}  {state}"
                )
            return 0
        try:
            info = await store.revoke(args.key_id)
        except KeyError as exc:
            print(f"genguard: {exc.args[0]}", file=sys.stderr)
            return 1
        await sink.append(
            admin_record("admin.keys.revoke", info.tenant, _actor(), {"key_id": info.key_id})
        )
        print(f"revoked key {info.key_id} (tenant {info.tenant!r})")
        return 0


async def _audit(settings: Settings, args: argparse.Namespace) -> int:
    from audit.query import tail
    from audit.stream import AuditKeys, as_text
    from audit.verify import verify_chain

    if args.audit_command in ("query", "export", "stats", "trim"):
        from gateway.audit_commands import run_audit_command

        async with _redis(settings) as redis:
            return await run_audit_command(redis, settings, args, _actor())
    async with _redis(settings) as redis:
        if args.audit_command == "tail":
            records = await tail(redis, tenant=args.tenant, count=args.count)
            for record in reversed(records):
                if args.json:
                    print(record.to_stored_json())
                    continue
                reasons = ", ".join(
                    f"{r.rule}({r.category}={r.score:g})" for r in record.decision.reasons
                )
                error = f" error={record.error.code}" if record.error else ""
                print(
                    f"{record.timestamp:%Y-%m-%dT%H:%M:%SZ} {record.tenant} {record.route} "
                    f"{record.decision.action}{error} {record.decision_id} "
                    f"policy={record.policy.revision} {reasons}".rstrip()
                )
            return 0
        tenants = (
            [args.tenant]
            if args.tenant
            else sorted(
                as_text(t) for t in await redis.smembers(AuditKeys.for_client(redis).tenants)
            )
        )
        status = 0
        for tenant in tenants:
            report = await verify_chain(
                redis, tenant, checkpoint_key=audit_checkpoint_key(settings)
            )
            verdict = "ok" if report.ok else "BROKEN"
            print(f"{tenant}: {verdict} ({report.records_checked} records)")
            for problem in report.problems:
                print(f"  {problem.kind} at {problem.entry_id}: {problem.detail}")
            status = status or (0 if report.ok else 1)
        if not tenants:
            print("no audit records yet")
        return status


if __name__ == "__main__":
    raise SystemExit(main())
