"""``genguard serve``: one process, or ``--workers N`` uvicorn worker processes sharing one Redis.

With several workers the parent process does, once and before any worker starts, everything that
must not race between workers:

- it starts the embedded Redis (unless ``GENGUARD_REDIS_URL`` is set) and hands its URL to the
  workers through ``GENGUARD_REDIS_URL``, so every worker uses that one Redis and none starts its
  own; ``<data dir>/redis.url`` is written for the CLI while it runs;
- it creates the development files of the data dir (the C2PA development CA, the audit
  checkpoint key, the file-link key) when they are missing;
- it creates the development bootstrap admin key when Redis holds no key yet.

The workers then build their services in their own lifespan (``gateway.lifespan``) from the same
settings, passed through the environment (``GENGUARD_DATA_DIR``, ``GENGUARD_HOST``,
``GENGUARD_PORT``, ``GENGUARD_REDIS_URL``). Seeding the first policy version is an atomic Lua
script, audit appends are compare-and-set on the chain head, and the audit spool is shared under
``flock``, so those are safe with any number of workers. uvicorn's supervisor restarts a worker
that dies and stops them all on SIGINT / SIGTERM, after which the parent stops the embedded Redis.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI

from audit.checkpoint import ensure_key_file
from gateway.embedded_redis import EmbeddedRedis
from gateway.keys import ApiKeyStore, KeyStoreUnavailable
from gateway.lifespan import (
    RUNTIME_REDIS_FILE,
    audit_checkpoint_key,
    ensure_bootstrap_key,
    signing_credentials,
)
from gateway.logging_setup import log_config
from gateway.metrics import prepare_multiprocess_dir
from gateway.redis_connect import connect_redis
from gateway.settings import Settings

__all__ = ["serve", "worker_app"]


def _say(message: str) -> None:
    print(f"genguard: {message}", file=sys.stderr, flush=True)


def serve(settings: Settings, processes: int = 1) -> int:
    """Run the gateway in the foreground until SIGINT / SIGTERM; the exit status."""
    import uvicorn

    base = f"http://{settings.host}:{settings.port}"
    # observability: /metrics sums every worker's samples (fresh each run), and GenGuard and
    # uvicorn log in one format (gateway.metrics, gateway.logging_setup)
    prepare_multiprocess_dir(settings.data_dir.resolve() / "metrics")
    logging_config = log_config(settings)
    if processes <= 1:
        from gateway.app import create_app

        _say(f"serving the OpenAI-compatible API at {base}/v1")
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            log_config=logging_config,
            access_log=False,  # genguard.access writes one line per request, with its ids
        )
        return 0
    with _shared_state(settings) as environment:
        os.environ.update(environment)
        _say(f"serving the OpenAI-compatible API at {base}/v1 with {processes} worker processes")
        uvicorn.run(
            "gateway.serving:worker_app",
            factory=True,
            workers=processes,
            # a worker imports torch and the models before it answers uvicorn's health check;
            # uvicorn's 5 s default kills and restarts workers on a loaded machine
            timeout_worker_healthcheck=120,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            log_config=logging_config,
            access_log=False,
        )
    return 0


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn's factory): settings from the environment the
    parent prepared."""
    from gateway.app import create_app

    return create_app(Settings())


@contextmanager
def _shared_state(settings: Settings) -> Iterator[dict[str, str]]:
    """Start what the workers share; yield the environment that points them at it."""
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    settings = settings.model_copy(update={"data_dir": data_dir})
    environment = {
        "GENGUARD_DATA_DIR": str(data_dir),
        "GENGUARD_HOST": settings.host,
        "GENGUARD_PORT": str(settings.port),
    }
    embedded: EmbeddedRedis | None = None
    runtime = data_dir / RUNTIME_REDIS_FILE
    url: str | None = None  # None: the configured Redis (one node, Sentinel or Cluster)
    if not settings.redis_configured:
        embedded = EmbeddedRedis(data_dir / "redis", appendonly=True).start()
        url = embedded.url
        runtime.write_text(url + "\n")
        environment["GENGUARD_REDIS_URL"] = url
        _say(f"private Redis at {url} shared by the workers (files in {embedded.data_dir})")
    try:
        _create_development_files(settings)
        asyncio.run(_bootstrap_key(settings, url))
        yield environment
    finally:
        if embedded is not None:
            runtime.unlink(missing_ok=True)
            embedded.stop()


def _create_development_files(settings: Settings) -> None:
    """Key files that each worker would otherwise race to create (``O_EXCL`` in one of them)."""
    signing_credentials(settings)  # the development CA, unless credentials are configured
    audit_checkpoint_key(settings)
    if settings.storage.url_secret is None:
        ensure_key_file(settings.data_dir / "file-urls.key")


async def _bootstrap_key(settings: Settings, url: str | None) -> None:
    async with connect_redis(settings, url=url) as redis:
        try:
            await ensure_bootstrap_key(settings, ApiKeyStore(redis))
        except KeyStoreUnavailable as exc:  # the workers start on the local policy copy
            _say(f"bootstrap admin key not checked: {exc}")
