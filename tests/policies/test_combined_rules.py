"""Combined rules (``input.combined``): evidence of the prompt and input stages together, NudeNet
labels as input evidence, precise validation errors, and replays that agree with live decisions."""

from __future__ import annotations

import pytest

from audit.record import StageRecord
from classifiers.base import Scores
from classifiers.taxonomy import Category
from policies.combined import StageEvidence, decide_combined, replay_uploads
from policies.errors import PolicyValidationError
from policies.loader import default_policy_text, parse_policy
from policies.replay import evaluate_record
from policies.schema import Action

DEFAULT = parse_policy(default_policy_text()).policy
RULE = DEFAULT.input.combined[0]


def evidence(prompt_sexual: float, labels: dict[str, float]) -> dict[str, StageEvidence]:
    prompt = [Scores("prompt_head", {Category.SEXUAL: prompt_sexual})]
    return {"prompt": StageEvidence(prompt), "input": StageEvidence((), labels)}


def test_a_face_and_a_sexual_prompt_block_together_and_neither_alone() -> None:
    both = decide_combined([RULE], evidence(0.73, {"FACE_FEMALE": 0.81}))
    assert both.action is Action.BLOCK
    [reason] = both.reasons
    assert (reason.stage, reason.rule, reason.category) == ("combined", RULE.id, "sexual")
    assert reason.score == pytest.approx(0.73) and "FACE_FEMALE" in (reason.detail or "")
    assert decide_combined([RULE], evidence(0.73, {})).action is Action.ALLOW
    assert decide_combined([RULE], evidence(0.2, {"FACE_MALE": 0.9})).action is Action.ALLOW
    # a detection of a label the rule does not name is no evidence of a person
    assert decide_combined([RULE], evidence(0.9, {"FEET_EXPOSED": 0.9})).action is Action.ALLOW
    # a prompt classifier the condition does not name does not count
    other = {"prompt": StageEvidence([Scores("semantic_concepts", {Category.SEXUAL: 1.0})])}
    other["input"] = StageEvidence((), {"FACE_FEMALE": 0.9})
    assert decide_combined([RULE], other).action is Action.ALLOW


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        (
            "{stage: prompt, labels: [FACE_FEMALE], threshold: 0.5}",
            "labels' are evidence of the input stage only",
        ),
        ("{stage: input, labels: [FACE], threshold: 0.5}", "unknown NudeNet labels ['FACE']"),
        (
            "{stage: input, category: nudity, labels: [FACE_MALE], threshold: 0.5}",
            "either a 'category' or NudeNet 'labels'",
        ),
        (
            "{stage: prompt, category: sexual, threshold: 0.5, classifiers: [clip_concepts]}",
            "that the prompt stage does not run",
        ),
    ],
)
def test_bad_conditions_are_refused_with_the_reason(snippet: str, message: str) -> None:
    text = f"""
id: bad
input:
  classifiers: [nudenet]
  combined:
    - id: r
      when:
        - {{stage: input, category: nudity, threshold: 0.5}}
        - {snippet}
"""
    with pytest.raises(PolicyValidationError) as caught:
        parse_policy(text)
    assert message in str(caught.value)


def test_blur_and_review_do_not_apply_to_uploads() -> None:
    text = """
id: bad
input:
  rules:
    - {id: r, category: nudity, threshold: 0.5, action: blur}
"""
    with pytest.raises(PolicyValidationError) as caught:
        parse_policy(text)
    assert "does not apply to uploads" in str(caught.value)


def _below_the_prompt_stage() -> float:
    """A prompt_head ``sexual`` score the default combined rule counts but no prompt rule does."""
    [prompt_rule] = [
        r
        for r in DEFAULT.prompt.rules
        if r.category == "sexual" and r.classifiers == ("prompt_head",)
    ]
    [condition] = [c for c in RULE.when if c.stage == "prompt"]
    assert condition.threshold < prompt_rule.threshold
    return (condition.threshold + prompt_rule.threshold) / 2


def test_a_replay_decides_an_edit_as_the_live_pipeline_did() -> None:
    sexual = _below_the_prompt_stage()
    stages = [
        StageRecord(stage="prompt", classifier="prompt_head", scores={"sexual": sexual},
                    latency_ms=1.0, verdict="allow"),
        StageRecord(stage="input", classifier="nudenet", scores={"nudity": 0.0, "sexual": 0.0},
                    latency_ms=1.0, verdict="allow"),
        StageRecord(stage="combined", latency_ms=0.0, verdict="block",
                    evidence=[{"detail": {"labels": {"FACE_FEMALE": 0.81}, "fired": [RULE.id]}}]),
    ]  # fmt: skip
    assert replay_uploads(DEFAULT, stages).action is Action.BLOCK
    outcome = evaluate_record(DEFAULT, "images.edits", stages, "block")
    assert outcome is not None and outcome.action == "block"
    assert {r.rule for r in outcome.reasons} == {RULE.id}
    # a generation has no input stage: the same scores decide nothing more
    generation = evaluate_record(DEFAULT, "images.generations", stages[:1], "allow")
    assert generation is not None and generation.action == "allow"
