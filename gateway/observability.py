"""Metrics, logs and traces of each request, in one ASGI middleware and one recording hook.

``ObservabilityMiddleware`` is the outermost layer of the app (``gateway.app``): it gives the
request its decision id and trace id (``request.state``), opens the request's log fields and
server span, and when the response has gone counts it (``genguard_http_*``) and writes the
access line. ``Telemetry.observe_record`` is called once per audit record by
``gateway.recording``: decisions, rules and stage latencies go to the metrics, stages to spans.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audit.record import AuditRecord
from gateway.context import new_decision_id
from gateway.logging_setup import (
    RequestLogFields,
    current_log_fields,
    open_log_fields,
    reset_log_fields,
)
from gateway.metrics import GatewayMetrics
from gateway.settings import Settings
from gateway.tracing import StageTiming, Tracing

if TYPE_CHECKING:
    from gateway.deps import Services

__all__ = ["ObservabilityMiddleware", "Telemetry"]

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("genguard.access")

# polled every few seconds by load balancers and Prometheus: access lines at debug level only
_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


@dataclass(frozen=True, slots=True)
class Telemetry:
    """The metrics and the tracer of one app (built in the lifespan)."""

    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    tracing: Tracing = field(default_factory=Tracing)

    @classmethod
    def from_settings(cls, settings: Settings) -> Telemetry:
        return cls(GatewayMetrics.from_environment(), Tracing.from_settings(settings))

    def observe_record(self, record: AuditRecord, timings: Sequence[StageTiming]) -> None:
        """One audited request: metrics, the tenant of its log lines, its stage spans.

        Never raises: the record is already appended, and telemetry must not fail a request.
        """
        fields = current_log_fields()
        if fields is not None and fields.decision_id == record.decision_id:
            fields.tenant = record.tenant
        try:
            self.metrics.observe_record(record)
            self.tracing.stage_spans(
                timings,
                {
                    "genguard.decision_id": record.decision_id,
                    "genguard.tenant": record.tenant,
                    "genguard.route": record.route,
                },
            )
        except Exception:
            logger.exception("telemetry of %s failed", record.decision_id)


class ObservabilityMiddleware:
    """Decision id, log fields, span, HTTP metrics and access line of every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services: Services | None = getattr(scope["app"].state, "services", None)
        if services is None:  # the lifespan has not started (or failed): nothing to observe into
            await self.app(scope, receive, send)
            return
        telemetry = services.telemetry
        method: str = scope["method"]
        path: str = scope["path"]  # never the query string: signed links carry secrets there
        headers = (  # only a span reads them (an incoming traceparent)
            {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            if telemetry.tracing.enabled
            else {}
        )
        state = scope.setdefault("state", {})
        started = time.perf_counter()
        status = 500
        done = False

        with telemetry.tracing.request_span(method, path, headers) as span:
            decision_id = new_decision_id()
            trace_id = Tracing.trace_id(span) or secrets.token_hex(16)
            state["decision_id"] = decision_id
            state["trace_id"] = trace_id
            fields = RequestLogFields(decision_id=decision_id, trace_id=trace_id, route=path)

            def finish() -> None:
                """Count and log the request once, before its last byte leaves: a client
                that has the response can already see it in /metrics and the log."""
                nonlocal done
                if done:
                    return
                done = True
                seconds = time.perf_counter() - started
                template: str | None = getattr(scope.get("route"), "path", None)
                telemetry.metrics.observe_http(method, template, status, seconds)
                principal = state.get("principal")
                if fields.tenant is None and principal is not None:
                    fields.tenant = principal.tenant
                level = logging.DEBUG if path in _PROBES else logging.INFO
                if access_logger.isEnabledFor(level):  # no record's extras built for nothing
                    access_logger.log(
                        level,
                        "%s %s %d",
                        method,
                        path,
                        status,
                        extra={
                            "log_fields": fields,
                            "method": method,
                            "path": path,
                            "status": status,
                            "latency_ms": round(seconds * 1000, 3),
                        },
                    )
                if span is not None:
                    span.set_attribute("http.route", template or "unmatched")
                    span.set_attribute("http.response.status_code", status)
                    span.set_attribute("genguard.decision_id", decision_id)
                    if fields.tenant is not None:
                        span.set_attribute("genguard.tenant", fields.tenant)
                    span.end()

            async def send_and_observe(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                elif message["type"] == "http.response.body" and not message.get("more_body"):
                    finish()
                await send(message)

            token = open_log_fields(fields)
            try:
                await self.app(scope, receive, send_and_observe)
            finally:
                finish()
                reset_log_fields(token)
