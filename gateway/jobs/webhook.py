"""Signed completion webhooks: ``POST webhook_url`` with the job as ``GET /v1/jobs/{id}`` shows it.

Headers::

    x-genguard-job-id:     the job id (a receiver de-duplicates on it: delivery is at least once)
    x-genguard-timestamp:  Unix seconds when this attempt was signed
    x-genguard-signature:  v1=<hex HMAC-SHA256 over "<timestamp>." + body>

The key is the tenant's webhook secret: HMAC-SHA256 of the tenant name under the configured
``jobs.webhook_secret`` (``GET /v1/jobs/webhook-secret`` shows a tenant its own). Failed attempts
are retried with exponential backoff; the outcome is kept on the job, never the result lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from audit.checkpoint import ensure_key_file
from gateway.settings import Settings

__all__ = [
    "SIGNATURE_HEADER",
    "WebhookSender",
    "WebhooksUnconfigured",
    "sign",
    "tenant_secret",
    "verify_signature",
    "webhook_master_key",
]

SIGNATURE_HEADER = "x-genguard-signature"
TIMESTAMP_HEADER = "x-genguard-timestamp"
JOB_HEADER = "x-genguard-job-id"


class WebhooksUnconfigured(RuntimeError):
    """Production without ``GENGUARD_JOBS__WEBHOOK_SECRET``: webhooks are refused."""


def webhook_master_key(settings: Settings) -> bytes:
    """The configured webhook secret; in development, else a key in the data dir (made once).

    Raises ``WebhooksUnconfigured`` in production without a configured secret (gateway and
    workers on different machines would otherwise sign and publish different keys).
    """
    configured = settings.jobs.webhook_secret
    if configured is not None:
        return configured.get_secret_value().encode("utf-8")
    if not settings.development:
        raise WebhooksUnconfigured(
            "webhooks need GENGUARD_JOBS__WEBHOOK_SECRET in production (one value for the "
            "gateway and every worker)"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return ensure_key_file(settings.data_dir / "webhook.key")


def tenant_secret(master: bytes, tenant: str) -> str:
    return hmac.new(master, b"genguard-webhook\0" + tenant.encode(), hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("ascii"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """What a receiver does (constant-time); it should also refuse old timestamps."""
    if not timestamp.isdigit():
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), header)


@dataclass(frozen=True, slots=True)
class Delivery:
    delivered: bool
    attempts: int
    error: str | None


class WebhookSender:
    """Delivers one job's webhook: ``attempts`` tries, backoff ``backoff_s * 2**n`` (max 60 s)."""

    def __init__(
        self,
        master_key: bytes,
        *,
        attempts: int,
        backoff_s: float,
        timeout_s: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._master = master_key
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)
        self._sleep = sleep

    async def aclose(self) -> None:
        await self._client.aclose()

    async def deliver(
        self,
        url: str,
        *,
        job_id: str,
        tenant: str,
        payload: dict[str, Any],
        on_attempt: Callable[[int, str | None], Awaitable[None]] | None = None,
    ) -> Delivery:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        secret = tenant_secret(self._master, tenant)
        error: str | None = None
        for attempt in range(1, self._attempts + 1):
            timestamp = int(time.time())
            headers = {
                "content-type": "application/json",
                JOB_HEADER: job_id,
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(secret, timestamp, body),
            }
            try:
                response = await self._client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= response.status_code < 300:
                    return Delivery(True, attempt, None)
                error = f"HTTP {response.status_code}"
            if on_attempt is not None:
                await on_attempt(attempt, error)
            if attempt < self._attempts:
                await self._sleep(min(self._backoff_s * 2 ** (attempt - 1), 60.0))
        return Delivery(False, self._attempts, error)
