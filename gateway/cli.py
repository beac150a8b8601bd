"""``genguard`` command line: serve, keys, policy validate, audit tail / verify."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from pydantic import ValidationError
from redis.asyncio import Redis

from gateway.embedded_redis import EmbeddedRedis
from gateway.keys import ApiKeyStore, parse_roles
from gateway.lifespan import read_runtime_redis_url
from gateway.recording import admin_record
from gateway.settings import InsecureSettingsError, Settings
from policies.errors import PolicyValidationError
from policies.loader import load_policy_file

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

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create a key (printed once, stored hashed)")
    create.add_argument("--tenant", required=True)
    create.add_argument(
        "--roles",
        default="client",
        help="comma-separated: client, auditor, policy_editor, policy_approver, admin",
    )
    create.add_argument("--name", default="")
    keys.add_parser("list", help="list keys (never the secrets)")
    revoke = keys.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")

    policy = commands.add_parser("policy", help="policy files").add_subparsers(
        dest="policy_command", required=True
    )
    validate = policy.add_parser("validate", help="validate a policy file")
    validate.add_argument("file", type=Path)

    audit = commands.add_parser("audit", help="audit log").add_subparsers(
        dest="audit_command", required=True
    )
    tail = audit.add_parser("tail", help="newest audit records")
    tail.add_argument("--tenant", help="only this tenant (default: all)")
    tail.add_argument("-n", "--count", type=int, default=20)
    tail.add_argument("--json", action="store_true", help="one JSON record per line")
    verify = audit.add_parser("verify", help="verify the hash chain of a tenant (or all)")
    verify.add_argument("--tenant", help="only this tenant (default: all)")
    return parser


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
    if args.command == "policy":
        return _validate_policy(args.file)
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
        return _serve(settings)
    if args.command == "keys":
        return asyncio.run(_keys(settings, args))
    return asyncio.run(_audit(settings, args))


def _validate_policy(path: Path) -> int:
    try:
        bundle = load_policy_file(path)
    except PolicyValidationError as exc:
        print(exc, file=sys.stderr)
        return 1
    from gateway.backends import ClassifierBackends, UnknownBackend

    try:
        ClassifierBackends(Settings()).check(bundle.policy)
    except UnknownBackend as exc:
        print(f"invalid policy {path}:\n  {exc}", file=sys.stderr)
        return 1
    print(f"{path}: valid (policy {bundle.id!r}, revision {bundle.revision})")
    return 0


def _serve(settings: Settings) -> int:
    import uvicorn

    from gateway.app import create_app

    base = f"http://{settings.host}:{settings.port}"
    print(f"genguard: serving the OpenAI-compatible API at {base}/v1", file=sys.stderr)
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level
    )
    return 0


@asynccontextmanager
async def _redis(settings: Settings) -> AsyncIterator[Redis]:
    """The configured Redis, the running gateway's embedded one, or a temporary embedded one."""
    url = settings.redis_url.get_secret_value() if settings.redis_url else None
    url = url or read_runtime_redis_url(settings.data_dir)
    embedded: EmbeddedRedis | None = None
    if url is None:
        embedded = EmbeddedRedis(settings.data_dir / "redis", appendonly=True)
        await asyncio.to_thread(embedded.start)
        url = embedded.url
    client = Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


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
            else sorted(as_text(t) for t in await redis.smembers(AuditKeys().tenants))
        )
        status = 0
        for tenant in tenants:
            report = await verify_chain(redis, tenant)
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
