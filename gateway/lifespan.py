"""Start-up and shut-down: Redis, policy, models, worker pool, signer, audit sink, keys.

Everything is built once here and torn down in reverse order. Start-up fails with a clear
message (unknown classifier in the policy, bad signing credentials) rather than at the first
request. A configured Redis that does not answer is not fatal when a last good policy was
persisted locally: the gateway starts on that copy, spools audit records, answers API-key checks
with 503 ``auth_unavailable`` and ``/readyz`` with 503, and catches up once Redis is back (the
policy follower reloads, the audit maintenance replays the spool).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path

from redis.asyncio import Redis

from audit.checkpoint import ensure_key_file
from audit.errors import AuditError
from audit.maintenance import run_audit_maintenance
from audit.sink import AuditSink, RedisStreamAuditSink
from classifiers.audio.voice_bank import RedisVoiceBank
from classifiers.image.hash_banks import RedisHashBanks
from gateway.backends import ClassifierBackends, GeneratorRouter
from gateway.deps import Services
from gateway.embedded_redis import EmbeddedRedis
from gateway.keys import ApiKeyStore, InvalidKey, KeyStoreUnavailable, Role
from gateway.metrics import rq_queue_depth
from gateway.observability import Telemetry
from gateway.pipeline import Pipeline
from gateway.recording import AuditRecorder, admin_record
from gateway.redis_connect import connect_redis, describe_redis
from gateway.review import RedisReviewQueue
from gateway.settings import Settings
from gateway.storage import file_delivery_from_settings
from gateway.workers import WorkerPool
from genguard_keyspace import REDIS_UNAVAILABLE
from policies.loader import PolicyBundle, default_policy_text
from policies.redis_store import RedisPolicyStore
from policies.store import FilePolicyStore
from policies.validate import KnownBackends, validate_policy_text
from policies.versions import BASE_SCOPE, PolicyEvent, PolicyVersions
from provenance.credentials import (
    SigningCredentials,
    ensure_dev_credentials,
    load_certificate_chain,
    load_credentials,
)
from provenance.errors import CredentialsError
from provenance.external_signer import ExternalSigner, HttpExternalSigner
from provenance.repository import ManifestRepository
from provenance.signer import C2paSigner
from provenance.stamp import ContentCredentials

__all__ = ["RUNTIME_REDIS_FILE", "open_services", "signing_credentials"]

RUNTIME_REDIS_FILE = "redis.url"  # written while an embedded Redis runs, for the CLI
BOOTSTRAP_KEY_FILE = "bootstrap.key"


def _say(message: str) -> None:
    print(f"genguard: {message}", file=sys.stderr, flush=True)


def signing_credentials(settings: Settings) -> SigningCredentials:
    p = settings.provenance
    if p.external_signer_url is not None and p.cert_chain_path is not None:
        return load_certificate_chain(p.cert_chain_path, p.trust_anchors_path)
    if p.cert_chain_path is not None and p.private_key_path is not None:
        return load_credentials(p.cert_chain_path, p.private_key_path, p.trust_anchors_path)
    return ensure_dev_credentials(settings.data_dir / "dev-ca")


def external_signer(settings: Settings, credentials: SigningCredentials) -> ExternalSigner | None:
    """The configured signing service, checked to be up and to match the chain's algorithm."""
    p = settings.provenance
    if p.external_signer_url is None:
        return None
    signer = HttpExternalSigner(p.external_signer_url, timeout_s=p.external_signer_timeout_s)
    signer.check_algorithm(credentials.algorithm)
    return signer


def watermark_key(settings: Settings, credentials: SigningCredentials) -> bytes:
    """The audio watermark key: configured, else derived from the signing key (stable)."""
    configured = settings.provenance.watermark_key
    if configured is not None:
        return configured.get_secret_value().encode()
    if credentials.private_key_pem is None:  # settings require a watermark key in this case
        raise CredentialsError("GENGUARD_PROVENANCE__WATERMARK_KEY is required")
    return hashlib.sha256(b"genguard-audio-watermark\0" + credentials.private_key_pem).digest()


@asynccontextmanager
async def open_redis(settings: Settings) -> AsyncIterator[Redis]:
    if settings.redis_configured:  # one node, Sentinel or Cluster (gateway/redis_connect.py)
        async with connect_redis(settings) as client:
            try:
                await client.ping()
            except REDIS_UNAVAILABLE as exc:  # incl. no cluster node answered
                _say(
                    f"{describe_redis(settings)} unreachable ({exc}); starting on the locally "
                    "persisted policy, spooling audit records, not ready until Redis answers"
                )
            yield client
        return
    embedded = EmbeddedRedis(settings.data_dir / "redis", appendonly=True)
    await asyncio.to_thread(embedded.start)
    runtime = settings.data_dir / RUNTIME_REDIS_FILE
    runtime.write_text(embedded.url + "\n")
    _say(f"private Redis at {embedded.url} (append-only files in {embedded.data_dir})")
    try:
        async with connect_redis(settings, url=embedded.url) as client:
            yield client
    finally:
        runtime.unlink(missing_ok=True)
        await asyncio.to_thread(embedded.stop)


async def ensure_bootstrap_key(settings: Settings, keys: ApiKeyStore) -> None:
    """Development only: make sure an admin key exists and tell the operator how to use it."""
    roles = frozenset({Role.ADMIN, Role.CLIENT})
    if settings.bootstrap_key is not None:
        secret = settings.bootstrap_key.get_secret_value()
        try:
            await keys.authenticate(secret)
        except InvalidKey:
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


def audit_checkpoint_key(settings: Settings) -> bytes:
    """The key that signs retention checkpoints: configured, else a generated development one."""
    if settings.audit.checkpoint_key is not None:
        return bytes.fromhex(settings.audit.checkpoint_key.get_secret_value())
    return ensure_key_file(settings.data_dir / "audit-checkpoint.key")


async def _stop_maintenance(task: asyncio.Task[None], sink: RedisStreamAuditSink) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if sink.degraded:  # a last chance to empty the spool; otherwise the next start replays it
        with contextlib.suppress(AuditError):
            await sink.replay_spool()


def policy_event_recorder(sink: RedisStreamAuditSink) -> Callable[[PolicyEvent], Awaitable[None]]:
    """Every policy action (proposed, approved, activated, rolled back, shadow) is audited."""

    async def record(event: PolicyEvent) -> None:
        params: dict[str, object] = {
            "scope": event.scope,
            "version": event.version,
            "revision": event.revision,
            "reason": event.reason,
            "previous": event.previous,
        }
        await sink.append(
            admin_record(f"admin.policies.{event.action}", event.scope, event.actor, params)
        )

    return record


async def open_policy_store(
    settings: Settings,
    redis: Redis,
    sink: RedisStreamAuditSink,
    pool: WorkerPool,
    classifiers: ClassifierBackends,
    *,
    variants: frozenset[str] = frozenset(),
) -> FilePolicyStore | RedisPolicyStore:
    """The versioned Redis store (seeded from the policy file), or the file itself."""
    known = replace(KnownBackends.registered(), variants=variants)
    if settings.policy_store == "file":
        file_store = FilePolicyStore(settings.policy_file)
        # the variant names, which only this gateway's generator knows (line numbers kept)
        validate_policy_text(file_store.bundle.text, source=file_store.bundle.source, known=known)
        await pool.cpu(classifiers.prepare, file_store.bundle)
        bundle = file_store.bundle
        _say(f"policy {bundle.id!r} revision {bundle.revision} from {bundle.source} (fixed)")
        return file_store

    async def prepare(bundle: PolicyBundle) -> None:
        await pool.cpu(classifiers.prepare, bundle)

    versions = PolicyVersions(redis, known=known, on_event=policy_event_recorder(sink))
    store = RedisPolicyStore(versions, cache_dir=settings.data_dir / "policies", prepare=prepare)
    if settings.policy_file is not None:
        seed_text, seed_source = settings.policy_file.read_text("utf-8"), str(settings.policy_file)
    else:
        seed_text, seed_source = default_policy_text(), "policies/default.yaml"
    snapshot = await store.open(seed_text, seed_source=seed_source)
    bundle = snapshot.active[BASE_SCOPE]
    origin = "the local copy (Redis unreachable)" if snapshot.from_cache else "Redis"
    _say(
        f"policy {bundle.id!r} base v{snapshot.versions[BASE_SCOPE]} revision {bundle.revision} "
        f"from {origin}; {len(snapshot.active) - 1} tenant policies"
    )
    store.start()
    return store


@asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    request_sink: Callable[[RedisStreamAuditSink], AuditSink] | None = None,
) -> AsyncIterator[Services]:
    """``request_sink`` wraps the sink that the pipeline's per-request records go to (the job
    worker captures them to commit each with its job's result, ``gateway.jobs.runner``)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    async with AsyncExitStack() as stack:
        redis = await stack.enter_async_context(open_redis(settings))
        pool = WorkerPool(settings.workers)
        stack.callback(pool.shutdown)

        classifiers = ClassifierBackends(settings)

        credentials = await pool.cpu(signing_credentials, settings)
        signer = ContentCredentials(
            C2paSigner(
                credentials,
                thumbnail=settings.provenance.thumbnail,
                tsa_url=settings.provenance.tsa_url,
                external=await pool.cpu(external_signer, settings, credentials),
            ),
            audio_key=watermark_key(settings, credentials),
            repository=ManifestRepository(redis),
            trust_anchors_pem=credentials.trust_anchor_pem,
        )
        if credentials.development:
            _say(
                f"C2PA signing with the development CA in {settings.data_dir / 'dev-ca'} "
                "(development, untrusted)"
            )

        sink = RedisStreamAuditSink(
            redis,
            spool_path=settings.data_dir / "audit-spool.jsonl",
            write_timeout_s=settings.audit.write_timeout_s,
        )
        try:
            replayed = await sink.replay_spool()
        except AuditError as exc:  # Redis down: the maintenance task replays it later
            _say(f"spooled audit records kept for later: {exc}")
        else:
            if replayed:
                _say(f"replayed {replayed} spooled audit records into Redis")
        # before the policies: a policy may only route to a variant the generator serves
        generators = GeneratorRouter(settings, pool.cpu)
        stack.push_async_callback(generators.aclose)
        policies = await open_policy_store(
            settings, redis, sink, pool, classifiers, variants=generators.variants()
        )
        if isinstance(policies, RedisPolicyStore):
            stack.push_async_callback(policies.stop)
        telemetry = Telemetry.from_settings(settings)  # metrics and tracing (gateway.observability)
        for queue in (settings.jobs.image_queue, settings.jobs.speech_queue):
            telemetry.metrics.register_queue_depth(queue, rq_queue_depth(redis, queue))
        recorder = AuditRecorder(
            request_sink(sink) if request_sink else sink, policies, telemetry=telemetry
        )
        checkpoint_key = audit_checkpoint_key(settings)
        maintenance = asyncio.create_task(
            run_audit_maintenance(
                redis,
                sink,
                interval_s=settings.audit.replay_interval_s,
                retention_days=settings.audit.retention_days,
                checkpoint_key=checkpoint_key,
            ),
            name="genguard-audit-maintenance",
        )
        stack.push_async_callback(_stop_maintenance, maintenance, sink)

        keys = ApiKeyStore(
            redis, outage_grace_s=settings.key_outage_grace_s, cache_s=settings.key_cache_s
        )
        try:
            await ensure_bootstrap_key(settings, keys)
        except KeyStoreUnavailable as exc:
            _say(f"bootstrap admin key not checked: {exc}")
        files = file_delivery_from_settings(settings, pool.cpu)
        sweep = asyncio.create_task(
            files.sweep_forever(settings.storage.sweep_interval_s), name="genguard-storage-sweep"
        )
        stack.push_async_callback(_stop_task, sweep)
        pipeline = Pipeline(
            pool=pool,
            policies=policies,
            classifiers=classifiers,
            generators=generators,
            signer=signer,
            recorder=recorder,
            voices=RedisVoiceBank(redis),
            hash_banks=RedisHashBanks(redis),
            reviews=RedisReviewQueue(redis),
            files=files,
            max_input_pixels=settings.limits.max_input_pixels,
            batching=settings.batching,
        )
        yield Services(
            settings=settings,
            redis=redis,
            keys=keys,
            pipeline=pipeline,
            recorder=recorder,
            audit_sink=sink,
            checkpoint_key=checkpoint_key,
            generators=generators,
            signer_development=credentials.development,
            policies=policies,
            files=files,
            telemetry=telemetry,
        )


async def _stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def read_runtime_redis_url(data_dir: Path) -> str | None:
    path = data_dir / RUNTIME_REDIS_FILE
    return path.read_text().strip() if path.exists() else None
