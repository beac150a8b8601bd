"""The synchronous Redis client RQ needs, for the same Redis the gateway uses.

RQ is synchronous, so the job queue has its own ``redis.Redis`` beside the gateway's asyncio
client: one node (``GENGUARD_REDIS_URL``, or the embedded Redis a local ``genguard serve`` runs)
or the master that Sentinel names. RQ does not run on Redis Cluster (its queue operations span
keys in many slots): with ``GENGUARD_REDIS_CLUSTER`` jobs are refused at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.sentinel import Sentinel

from gateway.jobs.store import JobQueue
from gateway.lifespan import read_runtime_redis_url
from gateway.settings import Settings, sentinel_addresses

__all__ = ["JobsUnavailable", "open_job_queue", "sync_redis"]

logger = logging.getLogger(__name__)


class JobsUnavailable(RuntimeError):
    """Jobs cannot run with this Redis configuration."""


def sync_redis(settings: Settings) -> redis.Redis:
    """A client for the configured Redis; nothing is sent until it is used."""
    options: dict[str, Any] = {"socket_timeout": 30.0}
    if settings.redis_sentinels is not None:
        assert settings.redis_sentinel_master is not None  # settings validation
        sentinel_password = settings.redis_sentinel_password
        password = settings.redis_password
        sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            sentinel_addresses(settings.redis_sentinels),
            sentinel_kwargs={
                "socket_timeout": 10.0,
                "password": sentinel_password.get_secret_value() if sentinel_password else None,
            },
            password=password.get_secret_value() if password else None,
            **options,
        )
        client: redis.Redis = sentinel.master_for(settings.redis_sentinel_master)  # type: ignore[no-untyped-call]
        return client
    if settings.redis_cluster:
        raise JobsUnavailable(
            "asynchronous jobs need a single Redis or Sentinel: RQ does not run on Redis Cluster"
        )
    url = settings.redis_url.get_secret_value() if settings.redis_url else None
    url = url or read_runtime_redis_url(settings.data_dir)
    if url is None:
        raise JobsUnavailable(
            "no Redis for jobs: set GENGUARD_REDIS_URL (or start 'genguard serve' with this "
            "data dir first, to share its embedded Redis)"
        )
    return redis.Redis.from_url(url, **options)


@contextmanager
def open_job_queue(settings: Settings) -> Iterator[JobQueue | None]:
    """The gateway's submit side; None (``POST /v1/jobs`` answers 503) where jobs cannot run."""
    try:
        connection = sync_redis(settings)
    except JobsUnavailable as exc:
        logger.warning("asynchronous jobs disabled: %s", exc)
        yield None
        return
    queue = JobQueue(connection, settings.jobs)
    try:
        yield queue
    finally:
        queue.close()
