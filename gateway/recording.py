"""Turns what the pipeline did into one audit record, and appends it.

``StageLog`` collects each stage's scores, timings, verdicts and errors as the request runs;
``AuditRecorder`` writes exactly one ``AuditRecord`` per request from it (also for requests that
failed before reaching the pipeline: bad JSON, a missing key, an unknown model).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import JsonValue

from audit.privacy import private_input, redact
from audit.record import (
    AuditRecord,
    DecisionRecord,
    ErrorRecord,
    InputRecord,
    MetricsRecord,
    OutputRecord,
    PolicyRef,
    ReasonRecord,
    ShadowRef,
    StageRecord,
)
from audit.sink import SPOOLED_PREFIX, AuditSink
from classifiers.base import Scores
from gateway.context import RequestContext
from gateway.errors import ApiError
from gateway.observability import Telemetry
from gateway.tracing import StageTiming
from policies.decision import Decision
from policies.loader import PolicyBundle
from policies.replay import evaluate_record
from policies.store import PolicyStore

if TYPE_CHECKING:
    from gateway.media import DeliveredAsset

__all__ = ["AuditRecorder", "StageLog", "admin_record", "redact_prompt"]

logger = logging.getLogger(__name__)


@dataclass
class _Entry:
    stage: str
    classifier: str | None
    latency_ms: float
    verdict: str
    scores: list[Scores] = field(default_factory=list)
    error: str | None = None
    detail: dict[str, Any] | None = None
    ended_ns: int = field(default_factory=time.time_ns)  # entries are added as stages end


class StageLog:
    """What each stage did, in order. Not shared between requests."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []

    def add(
        self,
        stage: str,
        classifier: str | None,
        *,
        latency_ms: float,
        verdict: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self._entries.append(_Entry(stage, classifier, latency_ms, verdict, detail=detail))

    def add_scores(
        self, stage: str, classifier: str, scores: list[Scores], *, latency_ms: float
    ) -> None:
        self._entries.append(_Entry(stage, classifier, latency_ms, "scored", scores=scores))

    def add_error(
        self, stage: str, classifier: str | None, exc: BaseException, started: float | None = None
    ) -> None:
        latency = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        message = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        self._entries.append(_Entry(stage, classifier, latency, "error", error=message))

    def set_verdict(self, stage: str, verdict: str) -> None:
        for entry in self._entries:
            if entry.stage == stage and entry.verdict == "scored":
                entry.verdict = verdict

    def scores(self) -> list[Scores]:
        return [s for entry in self._entries for s in entry.scores]

    def extend(self, other: StageLog, *, label: str) -> None:
        for entry in other._entries:
            entry.detail = {**(entry.detail or {}), "input": label}
            self._entries.append(entry)

    def records(self) -> list[StageRecord]:
        return [_stage_record(entry) for entry in self._entries]

    def timings(self) -> list[StageTiming]:
        """When each entry ended and how long it took (for tracing spans)."""
        return [
            StageTiming(e.stage, e.classifier, e.verdict, e.ended_ns, e.latency_ms, e.error)
            for e in self._entries
        ]


def _stage_record(entry: _Entry) -> StageRecord:
    merged: dict[str, float] = {}
    evidence: list[dict[str, JsonValue]] = []
    for index, scores in enumerate(entry.scores):
        for category, value in scores.scores.items():
            merged[category.value] = max(merged.get(category.value, 0.0), round(value, 6))
        evidence.extend(
            {
                "input": index,
                "category": e.category.value,
                "detail": e.detail,
                "score": round(e.score, 6),
            }
            for e in scores.evidence
        )
    if entry.detail:
        evidence.append({"detail": entry.detail})
    return StageRecord(
        stage=entry.stage,
        classifier=entry.classifier,
        scores=merged,
        evidence=evidence,
        latency_ms=round(max(entry.latency_ms, 0.0), 3),
        verdict=entry.verdict,
        error=entry.error,
    )


def redact_prompt(prompt: str, names: Sequence[str] = ()) -> str:
    """Mask personal data (e-mails, URLs, card and phone numbers, listed names)."""
    return redact(prompt, names).text


class AuditRecorder:
    """Builds and appends the one audit record of each request."""

    def __init__(
        self, sink: AuditSink, policies: PolicyStore, telemetry: Telemetry | None = None
    ) -> None:
        self._sink = sink
        self._policies = policies
        self._telemetry = telemetry or Telemetry()

    async def refuses_while_degraded(self, tenant: str) -> bool:
        """Whether the sink is spooling and ``tenant``'s policy says to refuse meanwhile."""
        if not getattr(self._sink, "degraded", False):
            return False
        bundle = await self._policies.current(tenant)
        return bundle.policy.audit.when_unavailable == "refuse"

    async def record(
        self,
        ctx: RequestContext,
        *,
        bundle: PolicyBundle,
        prompt: str | None,
        params: dict[str, object],
        log: StageLog,
        decision: Decision,
        action: str,
        assets: Sequence[DeliveredAsset],
        error: ApiError | None,
        upstream_ms: float,
    ) -> float:
        """Append the record; return GenGuard's overhead in ms (total minus the generator)."""
        audit_policy = bundle.policy.audit
        private = private_input(
            prompt or "",
            mode=audit_policy.prompt,
            params=_json_params(params),
            names=audit_policy.redact_names,
        )
        stages = log.records()
        shadow = await self._shadow(ctx, stages, action)
        total_ms = (time.perf_counter() - ctx.started) * 1000
        record = AuditRecord(
            decision_id=ctx.decision_id,
            trace_id=ctx.trace_id,
            timestamp=datetime.now(UTC),
            tenant=ctx.tenant,
            key_id=ctx.key_id,
            route=ctx.route,
            policy=PolicyRef(id=bundle.id, revision=bundle.revision),
            input=private.input,
            shadow=shadow,
            stages=stages,
            decision=DecisionRecord(
                action=action,
                reasons=[
                    ReasonRecord(
                        stage=r.stage,
                        category=r.category,
                        score=round(r.score, 6),
                        threshold=r.threshold,
                        rule=r.rule,
                    )
                    for r in decision.reasons
                ],
            ),
            outputs=[
                OutputRecord(
                    sha256=a.sha256,
                    mime_type=a.mime_type,
                    c2pa_manifest_id=a.manifest_id,
                    watermark_id=a.watermark_id,
                )
                for a in assets
            ],
            error=(
                ErrorRecord(
                    type=error.type, code=error.code, message=error.message, status=error.status
                )
                if error
                else None
            ),
            metrics=MetricsRecord(
                total_ms=round(total_ms, 3),
                overhead_ms=round(max(total_ms - upstream_ms, 0.0), 3),
                upstream_ms=round(upstream_ms, 3),
            ),
            erased=private.erased,
        )
        try:
            where = await self._sink.append(record)
        except Exception:
            self._telemetry.metrics.observe_audit("failed")
            raise
        self._telemetry.metrics.observe_audit(
            "spool" if where.startswith(SPOOLED_PREFIX) else "redis"
        )
        self._telemetry.observe_record(record, log.timings())
        return max((time.perf_counter() - ctx.started) * 1000 - upstream_ms, 0.0)

    async def _shadow(
        self, ctx: RequestContext, stages: list[StageRecord], action: str
    ) -> ShadowRef | None:
        """The shadow policy's decision on the same scores (never enforced, never fatal)."""
        try:
            candidate = await self._policies.shadow(ctx.tenant)
            if candidate is None:
                return None
            outcome = evaluate_record(candidate.policy, ctx.route, stages, action)
        except Exception:
            logger.exception("shadow evaluation failed for %s", ctx.decision_id)
            return None
        if outcome is None:
            return None
        return ShadowRef(revision=candidate.revision, action=outcome.action)

    async def record_failure(
        self,
        ctx: RequestContext,
        error: ApiError,
        *,
        prompt: str | None = None,
        params: dict[str, object] | None = None,
    ) -> None:
        """Audit a request that failed before the pipeline ran (auth, validation, routing)."""
        bundle = await self._policies.current(ctx.tenant)
        log = StageLog()
        log.add("request", None, latency_ms=0.0, verdict="error", detail={"code": error.code})
        await self.record(
            ctx,
            bundle=bundle,
            prompt=prompt,
            params=params or {},
            log=log,
            decision=Decision.allow(),
            action="error",
            assets=(),
            error=error,
            upstream_ms=0.0,
        )


def _json_params(params: dict[str, object]) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {}
    for key, value in params.items():
        if value is None or isinstance(value, str | int | float | bool):
            out[key] = value
        elif isinstance(value, list | tuple):
            out[key] = [v if isinstance(v, str | int | float | bool) else str(v) for v in value]
        else:
            out[key] = str(value)
    return out


def admin_record(route: str, tenant: str, actor: str, params: dict[str, object]) -> AuditRecord:
    """An audit record of an administrative action (key created or revoked, …)."""
    return AuditRecord(
        decision_id=f"adm_{uuid.uuid4().hex}",
        trace_id=uuid.uuid4().hex,
        timestamp=datetime.now(UTC),
        tenant=tenant,
        key_id=None,
        route=route,
        policy=PolicyRef(id="-", revision="-"),
        input=InputRecord.from_prompt(
            "", mode="omitted", params=_json_params({"actor": actor, **params})
        ),
        stages=[],
        decision=DecisionRecord(action="allow"),
        metrics=MetricsRecord(total_ms=0.0, overhead_ms=0.0, upstream_ms=0.0),
    )
