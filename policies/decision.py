"""Decisions are values: what a stage decided and every rule that fired, with its evidence."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from classifiers.base import Scores
from policies.schema import Action, Rule, StageSection

__all__ = ["Decision", "Reason", "decide", "from_reasons", "merge"]


@dataclass(frozen=True, slots=True)
class Reason:
    """One rule that fired: which stage, category, classifier, score and threshold."""

    stage: str
    rule: str
    category: str
    classifier: str
    score: float
    threshold: float
    action: Action
    detail: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "stage": self.stage,
            "rule": self.rule,
            "category": self.category,
            "classifier": self.classifier,
            "score": round(self.score, 6),
            "threshold": self.threshold,
            "action": self.action.value,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reasons: tuple[Reason, ...] = ()

    @property
    def blocked(self) -> bool:
        return self.action is Action.BLOCK

    @classmethod
    def allow(cls) -> Decision:
        return cls(Action.ALLOW)


ALLOW = Decision(Action.ALLOW)


def decide(stage: str, section: StageSection, scores: Sequence[Scores]) -> Decision:
    """Apply a stage's rules to the scores of its classifiers (one ``Scores`` per classifier
    per input, flattened). The decision's action is the most severe action of the rules that
    fired; every fired rule is kept as a reason."""
    reasons: list[Reason] = []
    for rule in section.rules:
        best = _best_match(rule, scores)
        if best is None:
            continue
        score_value, classifier, detail = best
        reasons.append(
            Reason(
                stage=stage,
                rule=rule.id,
                category=rule.category.value,
                classifier=classifier,
                score=score_value,
                threshold=rule.threshold,
                action=rule.action,
                detail=detail,
            )
        )
    return from_reasons(reasons)


def merge(decisions: Iterable[Decision]) -> Decision:
    reasons = [reason for decision in decisions for reason in decision.reasons]
    return from_reasons(reasons)


def from_reasons(reasons: Sequence[Reason]) -> Decision:
    """The decision whose action is the most severe of ``reasons`` (allow when none)."""
    if not reasons:
        return ALLOW
    action = max((reason.action for reason in reasons), key=lambda a: a.severity)
    return Decision(action=action, reasons=tuple(reasons))


def _best_match(rule: Rule, scores: Sequence[Scores]) -> tuple[float, str, str | None] | None:
    best: tuple[float, str, str | None] | None = None
    for item in scores:
        if rule.classifiers is not None and item.classifier not in rule.classifiers:
            continue
        value = item.scores.get(rule.category)
        if value is None or value < rule.threshold:
            continue
        if best is None or value > best[0]:
            detail = next((e.detail for e in item.evidence if e.category == rule.category), None)
            best = (value, item.classifier, detail)
    return best
