"""The evaluator: scores + rules → the most severe action, every fired rule kept as a reason."""

from __future__ import annotations

from classifiers.base import Evidence, Scores
from classifiers.taxonomy import Category
from policies.decision import decide, merge
from policies.schema import Action, Rule, StageSection

SECTION = StageSection(
    classifiers=("a", "b"),
    rules=(
        Rule(id="sexual", category=Category.SEXUAL, threshold=0.5, action=Action.BLOCK),
        Rule(id="attack", category=Category.PROMPT_ATTACK, threshold=0.5, action=Action.FLAG),
        Rule(id="only-b", category=Category.HATE, threshold=0.1, classifiers=("b",)),
    ),
)


def test_no_scores_allows() -> None:
    decision = decide("prompt", SECTION, [Scores("a", {})])
    assert decision.action is Action.ALLOW and decision.reasons == ()


def test_below_threshold_allows_at_threshold_fires() -> None:
    assert decide("prompt", SECTION, [Scores("a", {Category.SEXUAL: 0.49})]).action is Action.ALLOW
    decision = decide("prompt", SECTION, [Scores("a", {Category.SEXUAL: 0.5})])
    assert decision.action is Action.BLOCK
    assert decision.reasons[0].rule == "sexual" and decision.reasons[0].threshold == 0.5


def test_most_severe_action_wins_and_all_reasons_kept() -> None:
    scores = [
        Scores("a", {Category.PROMPT_ATTACK: 0.9}),
        Scores("b", {Category.SEXUAL: 0.7}, (Evidence(Category.SEXUAL, "term 'x'", 0.7),)),
    ]
    decision = decide("prompt", SECTION, scores)
    assert decision.action is Action.BLOCK
    assert {r.rule for r in decision.reasons} == {"sexual", "attack"}
    sexual = next(r for r in decision.reasons if r.rule == "sexual")
    assert sexual.classifier == "b" and sexual.detail == "term 'x'"


def test_highest_score_is_reported() -> None:
    scores = [Scores("a", {Category.SEXUAL: 0.6}), Scores("b", {Category.SEXUAL: 0.95})]
    (reason,) = decide("prompt", SECTION, scores).reasons
    assert (reason.classifier, reason.score) == ("b", 0.95)


def test_rule_limited_to_one_classifier() -> None:
    assert decide("prompt", SECTION, [Scores("a", {Category.HATE: 1.0})]).action is Action.ALLOW
    assert decide("prompt", SECTION, [Scores("b", {Category.HATE: 0.2})]).action is Action.BLOCK


def test_merge_across_stages() -> None:
    flag = decide("prompt", SECTION, [Scores("a", {Category.PROMPT_ATTACK: 1.0})])
    block = decide("output", SECTION, [Scores("a", {Category.SEXUAL: 1.0})])
    merged = merge([flag, block])
    assert merged.action is Action.BLOCK
    assert [r.stage for r in merged.reasons] == ["prompt", "output"]
