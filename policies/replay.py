"""Replay: what a policy would have decided on requests already served, from their scores.

Audit records keep every classifier's scores per stage, so a candidate policy can be evaluated
on recorded traffic without running a model: ``evaluate_record`` rebuilds the stage decisions
from ``stages[].scores``. The gateway uses the same function to compute the shadow decision of
each live request from the stage records it is about to write, so a shadow report and a replay
of the same traffic agree by construction.

Limits, stated: a stage that did not run (the output stage of a request the enforced policy
blocked at the prompt) has no scores, so a candidate that would let such a request through is
judged on the scores that exist. Scores of classifiers the candidate does not run are ignored;
a classifier the candidate adds has no recorded scores.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from audit.record import AuditRecord, StageRecord
from classifiers.base import Scores
from classifiers.taxonomy import Category
from policies.combined import replay_uploads
from policies.decision import Decision, Reason, decide, from_reasons
from policies.loader import PolicyBundle
from policies.schema import Action, Policy, StageSection

__all__ = [
    "ChangedDecision",
    "ReplayReport",
    "evaluate_record",
    "replay_records",
    "shadow_report",
]

MODALITY_OF_ROUTE = {
    "images.generations": "image",
    "images.edits": "image",
    "images.variations": "image",
    "audio.speech": "audio",
}
MODERATION_ROUTE = "moderations"
UPLOAD_ROUTES = frozenset({"images.edits", "images.variations"})


@dataclass(frozen=True, slots=True)
class Outcome:
    action: str  # allow | flag | block | error
    reasons: tuple[Reason, ...] = ()


def evaluate_record(
    policy: Policy, route: str, stages: Sequence[StageRecord], enforced_action: str
) -> Outcome | None:
    """The outcome ``policy`` gives a request from its recorded stages (None: not a request
    a policy decides, e.g. an administrative record)."""
    if enforced_action == "error":
        return Outcome("error")
    if route == MODERATION_ROUTE:
        return _moderation(policy, stages)
    modality = MODALITY_OF_ROUTE.get(route)
    if modality is None:
        return None
    prompt = _stage_decision("prompt", policy.prompt, stages)
    if route in UPLOAD_ROUTES:  # edits and variations: the input stage and combined rules
        prompt = from_reasons([*prompt.reasons, *replay_uploads(policy, stages).reasons])
    if prompt.blocked:
        return Outcome(prompt.action.value, prompt.reasons)
    section = policy.output.image if modality == "image" else policy.output.audio
    output = _stage_decision("output", section, stages)
    merged = from_reasons([*prompt.reasons, *output.reasons])
    return Outcome(merged.action.value, merged.reasons)


def _stage_decision(stage: str, section: StageSection, stages: Sequence[StageRecord]) -> Decision:
    scores: list[Scores] = []
    failures: list[Reason] = []
    for record in stages:
        if record.stage != stage or record.classifier not in section.classifiers:
            continue
        if record.verdict == "error":
            failures.append(_failure(stage, record.classifier, section))
        elif record.scores:
            scores.append(_scores(record))
    return from_reasons([*decide(stage, section, scores).reasons, *failures])


def _scores(record: StageRecord) -> Scores:
    known = {c.value for c in Category}
    values = {Category(k): v for k, v in record.scores.items() if k in known}
    return Scores(classifier=record.classifier or "?", scores=values)


def _failure(stage: str, classifier: str, section: StageSection) -> Reason:
    return Reason(
        stage=stage,
        rule=f"on_error:{section.on_error}",
        category="classifier-error",
        classifier=classifier,
        score=1.0,
        threshold=0.0,
        action=Action.BLOCK if section.on_error == "block" else Action.FLAG,
    )


def _moderation(policy: Policy, stages: Sequence[StageRecord]) -> Outcome:
    """``/v1/moderations`` flags an input exactly when its prompt-stage decision blocks."""
    by_input: dict[str, list[StageRecord]] = {}
    for record in stages:
        by_input.setdefault(_input_label(record), []).append(record)
    flagged = False
    reasons: list[Reason] = []
    for records in by_input.values():
        decision = _stage_decision("prompt", policy.prompt, records)
        reasons.extend(decision.reasons)
        flagged = flagged or decision.blocked
    return Outcome("flag" if flagged else "allow", tuple(reasons))


def _input_label(record: StageRecord) -> str:
    for item in record.evidence:
        detail = item.get("detail")
        if isinstance(detail, dict) and isinstance(detail.get("input"), str):
            return str(detail["input"])
    return ""


# -- reports -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangedDecision:
    decision_id: str
    tenant: str
    route: str
    timestamp: str
    enforced: str
    candidate: str
    categories: tuple[str, ...]
    prompt: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "tenant": self.tenant,
            "route": self.route,
            "timestamp": self.timestamp,
            "enforced": self.enforced,
            "candidate": self.candidate,
            "categories": list(self.categories),
            "prompt": self.prompt,
        }


@dataclass(slots=True)
class ReplayReport:
    """How many decisions a candidate changes, by transition and category, with examples."""

    revision: str
    evaluated: int = 0
    changed: list[ChangedDecision] = field(default_factory=list)
    by_transition: Counter[str] = field(default_factory=Counter)
    by_category: Counter[str] = field(default_factory=Counter)

    def add(self, record: AuditRecord, candidate: Outcome) -> None:
        self.evaluated += 1
        enforced = record.decision.action
        if candidate.action == enforced:
            return
        before = {r.category for r in record.decision.reasons}
        after = {r.category for r in candidate.reasons}
        categories = tuple(sorted((before ^ after) or (before | after) or {"(none)"}))
        self.by_transition[f"{enforced}→{candidate.action}"] += 1
        self.by_category.update(categories)
        self.changed.append(
            ChangedDecision(
                decision_id=record.decision_id,
                tenant=record.tenant,
                route=record.route,
                timestamp=record.timestamp.isoformat(),
                enforced=enforced,
                candidate=candidate.action,
                categories=categories,
                prompt=record.input.prompt,
            )
        )

    def to_json(self, *, examples: int = 20) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "evaluated": self.evaluated,
            "changed": len(self.changed),
            "by_transition": dict(sorted(self.by_transition.items())),
            "by_category": dict(sorted(self.by_category.items())),
            "examples": [c.to_json() for c in self.changed[:examples]],
        }


Resolver = Callable[[str], PolicyBundle | None]
"""The candidate bundle for a tenant's records (None: the candidate does not apply to it)."""


def replay_records(records: Sequence[AuditRecord], candidate: Resolver) -> ReplayReport:
    """Evaluate the candidate on each record's scores; report the decisions it changes."""
    report = ReplayReport(revision="")
    for record in records:
        bundle = candidate(record.tenant)
        if bundle is None:
            continue
        report.revision = report.revision or bundle.revision
        outcome = evaluate_record(
            bundle.policy, record.route, record.stages, record.decision.action
        )
        if outcome is not None:
            report.add(record, outcome)
    return report


def shadow_report(
    records: Sequence[AuditRecord], revision: str | None, candidate: Resolver | None = None
) -> ReplayReport:
    """Count the shadow decisions recorded beside the enforced ones (for ``revision``, or any).

    Counts come from the recorded ``shadow.action``; with ``candidate`` the categories are
    filled in by replaying the same records.
    """
    report = ReplayReport(revision=revision or "")
    for record in records:
        shadow = record.shadow
        if shadow is None or (revision is not None and shadow.revision != revision):
            continue
        reasons: tuple[Reason, ...] = ()
        bundle = candidate(record.tenant) if candidate is not None else None
        if bundle is not None:
            replayed = evaluate_record(
                bundle.policy, record.route, record.stages, record.decision.action
            )
            reasons = replayed.reasons if replayed is not None else ()
        report.revision = report.revision or shadow.revision
        report.add(record, Outcome(shadow.action, reasons))
    return report
