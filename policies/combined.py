"""Combined rules: one decision from evidence of several stages (``input.combined``).

A rule fires when every one of its conditions holds for the same request. A condition names a
stage (``prompt`` or ``input``) and either a category scored at or above its threshold (by the
classifiers it lists, or any) or, at the input stage, a NudeNet label detected at or above its
threshold (the detector's evidence that an upload shows a person, a face, a body part). The
stage's evidence is everything scored for any of its inputs (every uploaded image and the mask).

A fired rule is one ``Reason`` of stage ``combined``: its category lists the categories of the
conditions (``sexual``, ``protected-person+sexual``; ``person`` when only labels matched), its
score is the weakest matched score, its detail says what each condition matched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from audit.record import StageRecord
from classifiers.base import Scores
from classifiers.taxonomy import Category
from policies.decision import Decision, Reason, decide, from_reasons
from policies.schema import Action, CombinedRule, Condition, Policy

__all__ = ["COMBINED_STAGE", "StageEvidence", "decide_combined", "replay_uploads"]

COMBINED_STAGE = "combined"


@dataclass(frozen=True, slots=True)
class StageEvidence:
    """What one stage saw: every ``Scores`` (all classifiers, all inputs) and, for the input
    stage, the best NudeNet detection score per label across the uploads."""

    scores: Sequence[Scores] = ()
    labels: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Match:
    score: float
    classifier: str
    detail: str


def decide_combined(
    rules: Sequence[CombinedRule], evidence: Mapping[str, StageEvidence]
) -> Decision:
    """The decision of ``rules`` on ``evidence`` by stage name (a missing stage matches none)."""
    reasons: list[Reason] = []
    for rule in rules:
        matches: list[_Match] = []
        for condition in rule.when:
            found = _match(condition, evidence.get(condition.stage))
            if found is None:
                break
            matches.append(found)
        else:
            categories = sorted({c.category.value for c in rule.when if c.category is not None})
            weakest = min(matches, key=lambda m: m.score)
            reasons.append(
                Reason(
                    stage=COMBINED_STAGE,
                    rule=rule.id,
                    category="+".join(categories) or "person",
                    classifier="+".join(dict.fromkeys(m.classifier for m in matches)),
                    score=weakest.score,
                    threshold=min(c.threshold for c in rule.when),
                    action=rule.action,
                    detail="; ".join(m.detail for m in matches),
                )
            )
    return from_reasons(reasons)


def _match(condition: Condition, stage: StageEvidence | None) -> _Match | None:
    if stage is None:
        return None
    if condition.labels:
        best = max(
            ((stage.labels.get(label, 0.0), label) for label in condition.labels),
            default=(0.0, ""),
        )
        if best[0] < condition.threshold or not best[1]:
            return None
        return _Match(best[0], "nudenet", f"input: {best[1]} {best[0]:.3f}")
    assert condition.category is not None  # the schema requires a category or labels
    found: _Match | None = None
    for item in stage.scores:
        if condition.classifiers is not None and item.classifier not in condition.classifiers:
            continue
        value = item.scores.get(condition.category)
        if value is None or value < condition.threshold:
            continue
        if found is None or value > found.score:
            detail = f"{condition.stage}: {condition.category.value} {value:.3f}"
            found = _Match(value, item.classifier, detail)
    return found


def replay_uploads(policy: Policy, stages: Sequence[StageRecord]) -> Decision:
    """The input stage and combined rules of ``policy`` on a recorded edit or variation
    (``policies.replay``): scores from the ``prompt`` and ``input`` stage records, NudeNet
    labels from the ``combined`` record. A failed input classifier counts per ``on_error``."""
    section = policy.input
    by_stage: dict[str, list[Scores]] = {"prompt": [], "input": []}
    labels: dict[str, float] = {}
    failures: list[Reason] = []
    for record in stages:
        if record.stage == COMBINED_STAGE:
            for item in record.evidence:
                detail = item.get("detail")
                found = detail.get("labels") if isinstance(detail, dict) else None
                if isinstance(found, dict):
                    labels.update({str(k): float(v) for k, v in found.items()})  # type: ignore[arg-type]
            continue
        if record.stage not in by_stage or record.classifier is None:
            continue
        if record.stage == "input" and record.classifier not in section.classifiers:
            continue
        if record.verdict == "error" and record.stage == "input":
            failures.append(
                Reason(
                    stage="input",
                    rule=f"on_error:{section.on_error}",
                    category="classifier-error",
                    classifier=record.classifier,
                    score=1.0,
                    threshold=0.0,
                    action=Action.BLOCK if section.on_error == "block" else Action.FLAG,
                )
            )
        elif record.scores:
            known = {c.value for c in Category}
            values = {Category(k): v for k, v in record.scores.items() if k in known}
            by_stage[record.stage].append(Scores(record.classifier, values))
    upload = decide("input", section, by_stage["input"])
    evidence = {
        "prompt": StageEvidence(by_stage["prompt"]),
        "input": StageEvidence(by_stage["input"], labels),
    }
    combined = decide_combined(section.combined, evidence)
    return from_reasons([*upload.reasons, *combined.reasons, *failures])
