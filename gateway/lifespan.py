"""Start-up and shut-down: Redis, policy, models, worker pool, signer, audit sink, keys.

Everything is built once here and torn down in reverse order. Start-up fails with a clear
message (unknown classifier in the policy, bad signing credentials, Redis unreachable) rather
than at the first request.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from redis.asyncio import Redis

from audit.sink import RedisStreamAuditSink
from gateway.backends import ClassifierBackends, GeneratorRouter
from gateway.deps import Services
from gateway.embedded_redis import EmbeddedRedis
from gateway.keys import ApiKeyStore, Role
from gateway.pipeline import Pipeline
from gateway.recording import AuditRecorder
from gateway.settings import Settings
from gateway.workers import WorkerPool
from policies.store import FilePolicyStore
from provenance.credentials import SigningCredentials, ensure_dev_credentials, load_credentials
from provenance.signer import C2paSigner

__all__ = ["RUNTIME_REDIS_FILE", "open_services", "signing_credentials"]

RUNTIME_REDIS_FILE = "redis.url"  # written while an embedded Redis runs, for the CLI
BOOTSTRAP_KEY_FILE = "bootstrap.key"


def _say(message: str) -> None:
    print(f"genguard: {message}", file=sys.stderr, flush=True)


def signing_credentials(settings: Settings) -> SigningCredentials:
    p = settings.provenance
    if p.cert_chain_path is not None and p.private_key_path is not None:
        return load_credentials(p.cert_chain_path, p.private_key_path, p.trust_anchors_path)
    return ensure_dev_credentials(settings.data_dir / "dev-ca")


@asynccontextmanager
async def open_redis(settings: Settings) -> AsyncIterator[Redis]:
    if settings.redis_url is not None:
        client = Redis.from_url(settings.redis_url.get_secret_value(), socket_timeout=10)
        try:
            await client.ping()
            yield client
        finally:
            await client.aclose()
        return
    embedded = EmbeddedRedis(settings.data_dir / "redis", appendonly=True)
    await asyncio.to_thread(embedded.start)
    runtime = settings.data_dir / RUNTIME_REDIS_FILE
    runtime.write_text(embedded.url + "\n")
    _say(f"private Redis at {embedded.url} (append-only files in {embedded.data_dir})")
    client = Redis.from_url(embedded.url, socket_timeout=10)
    try:
        yield client
    finally:
        await client.aclose()
        runtime.unlink(missing_ok=True)
        await asyncio.to_thread(embedded.stop)


async def ensure_bootstrap_key(settings: Settings, keys: ApiKeyStore) -> None:
    """Development only: make sure an admin key exists and tell the operator how to use it."""
    roles = frozenset({Role.ADMIN, Role.CLIENT})
    if settings.bootstrap_key is not None:
        secret = settings.bootstrap_key.get_secret_value()
        try:
            await keys.authenticate(secret)
        except Exception:
            await keys.create(tenant="default", roles=roles, name="bootstrap", secret=secret)
        _say("bootstrap admin key: the one in GENGUARD_BOOTSTRAP_KEY")
        return
    if not settings.development:
        return
    path = settings.data_dir / BOOTSTRAP_KEY_FILE
    if await keys.count() == 0:
        key, _ = await keys.create(tenant="default", roles=roles, name="bootstrap")
        path.write_text(key + "\n")
        path.chmod(0o600)
        _say(f"bootstrap admin key (tenant 'default', also saved in {path}): {key}")
    elif path.exists():
        _say(f"bootstrap admin key: see {path}")


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    async with AsyncExitStack() as stack:
        redis = await stack.enter_async_context(open_redis(settings))
        pool = WorkerPool(settings.workers)
        stack.callback(pool.shutdown)

        policies = FilePolicyStore(settings.policy_file)
        bundle = policies.bundle
        classifiers = ClassifierBackends(settings)
        await pool.cpu(classifiers.prepare, bundle)
        _say(f"policy {bundle.id!r} revision {bundle.revision} from {bundle.source}")

        credentials = await pool.cpu(signing_credentials, settings)
        signer = C2paSigner(credentials, thumbnail=settings.provenance.thumbnail)
        if credentials.development:
            _say(
                f"C2PA signing with the development CA in {settings.data_dir / 'dev-ca'} "
                "(development, untrusted)"
            )

        sink = RedisStreamAuditSink(redis, spool_path=settings.data_dir / "audit-spool.jsonl")
        replayed = await sink.replay_spool()
        if replayed:
            _say(f"replayed {replayed} spooled audit records into Redis")
        recorder = AuditRecorder(sink, policies)

        generators = GeneratorRouter(settings, pool.cpu)
        stack.push_async_callback(generators.aclose)

        keys = ApiKeyStore(redis)
        await ensure_bootstrap_key(settings, keys)
        pipeline = Pipeline(
            pool=pool,
            policies=policies,
            classifiers=classifiers,
            generators=generators,
            signer=signer,
            recorder=recorder,
        )
        yield Services(
            settings=settings,
            redis=redis,
            keys=keys,
            pipeline=pipeline,
            recorder=recorder,
            generators=generators,
            signer_development=credentials.development,
        )


def read_runtime_redis_url(data_dir: Path) -> str | None:
    path = data_dir / RUNTIME_REDIS_FILE
    return path.read_text().strip() if path.exists() else None
