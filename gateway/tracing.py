"""Optional OpenTelemetry tracing: one server span per request, one child span per stage.

Off unless ``GENGUARD_OBSERVABILITY__OTEL_ENABLED=true`` or the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, and then only if ``opentelemetry-sdk`` is installed;
off costs one attribute check per request and nothing is imported. When on and no tracer
provider was installed by the host process, GenGuard installs the SDK's provider with an OTLP
exporter (``opentelemetry-exporter-otlp``, configured by the ``OTEL_EXPORTER_OTLP_*``
variables) in a batch processor.

Stage spans are written when the audit record is: the stage log knows when each stage ended and
how long it took, so the pipeline itself carries no tracing code. The request span's trace id
becomes the audit record's ``trace_id``, so a trace, its log lines and its audit record join
on one id; an incoming W3C ``traceparent`` header continues the caller's trace.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = ["StageTiming", "Tracing"]

logger = logging.getLogger(__name__)

_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"  # the OpenTelemetry standard variable


@dataclass(frozen=True, slots=True)
class StageTiming:
    stage: str
    classifier: str | None
    verdict: str
    ended_ns: int  # time.time_ns() when the stage ended
    latency_ms: float
    error: str | None = None


class Tracing:
    """Spans when enabled; every method is a no-op when ``tracer`` is None."""

    def __init__(self, tracer: Tracer | None = None) -> None:
        self.tracer = tracer

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    @classmethod
    def from_settings(cls, settings: Settings) -> Tracing:
        wanted = settings.observability.otel_enabled or bool(os.environ.get(_OTLP_ENDPOINT))
        if not wanted:
            return cls(None)
        try:
            from opentelemetry import trace
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
        except ImportError:
            logger.warning(
                "tracing requested but opentelemetry-sdk is not installed "
                "(pip install 'genguard[otel]'); continuing without spans"
            )
            return cls(None)
        if not isinstance(trace.get_tracer_provider(), TracerProvider):
            provider = TracerProvider(resource=Resource.create({"service.name": "genguard"}))
            _add_otlp_exporter(provider)
            trace.set_tracer_provider(provider)
        return cls(trace.get_tracer("genguard"))

    @contextmanager
    def request_span(
        self, method: str, path: str, headers: Mapping[str, str]
    ) -> Iterator[Span | None]:
        """The server span of one request (or None), current while the request runs; the
        caller ends it (when the last byte of the response is handed over)."""
        if self.tracer is None:
            yield None
            return
        from opentelemetry.propagate import extract
        from opentelemetry.trace import SpanKind, use_span

        span = self.tracer.start_span(
            f"{method} {path}",
            context=extract(dict(headers)),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        )
        with use_span(span, end_on_exit=False, record_exception=True):
            yield span

    @staticmethod
    def trace_id(span: Span | None) -> str | None:
        """The span's trace id as 32 hex digits (the audit record's ``trace_id``)."""
        if span is None:
            return None
        return f"{span.get_span_context().trace_id:032x}"

    def stage_spans(self, timings: Sequence[StageTiming], attributes: Mapping[str, Any]) -> None:
        """Children of the current request span, one per stage entry, at their real times."""
        if self.tracer is None:
            return
        from opentelemetry.trace import Status, StatusCode

        for timing in timings:
            latency_ns = int(max(timing.latency_ms, 0.0) * 1_000_000)
            name = f"genguard.{timing.stage}" + (
                f" {timing.classifier}" if timing.classifier else ""
            )
            span = self.tracer.start_span(
                name,
                start_time=timing.ended_ns - latency_ns,
                attributes={
                    **attributes,
                    "genguard.stage": timing.stage,
                    "genguard.classifier": timing.classifier or "",
                    "genguard.verdict": timing.verdict,
                },
            )
            if timing.error:
                span.set_status(Status(StatusCode.ERROR, timing.error))
            span.end(end_time=timing.ended_ns)


def _add_otlp_exporter(provider: Any) -> None:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found, unused-ignore]
            OTLPSpanExporter,
        )
    except ImportError:
        logger.warning(
            "tracing is on but no OTLP exporter is installed "
            "(pip install opentelemetry-exporter-otlp-proto-http); spans are not exported"
        )
        return
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
