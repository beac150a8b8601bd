"""Validation messages (did you mean, expected values, backend names), not-enforced actions,
the semantic diff, JSON Schema export, the generated reference page and replay from scores."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from audit.record import (
    AuditRecord,
    DecisionRecord,
    InputRecord,
    MetricsRecord,
    PolicyRef,
    ReasonRecord,
    ShadowRef,
    StageRecord,
)
from policies.diff import diff_policies
from policies.errors import PolicyValidationError
from policies.loader import default_policy_text, parse_policy
from policies.reference import GENERATED_BEGIN, GENERATED_END, json_schema, reference_markdown
from policies.replay import evaluate_record, replay_records, shadow_report
from policies.validate import KnownBackends, validate_policy_text

REPO = Path(__file__).resolve().parents[2]


def issues(text: str) -> list[str]:
    with pytest.raises(PolicyValidationError) as info:
        validate_policy_text(text, source="p.yaml")
    return [str(issue) for issue in info.value.issues]


def test_misspelt_key_and_category_get_suggestions_and_expected_values() -> None:
    with pytest.raises(PolicyValidationError) as info:
        validate_policy_text(
            "id: x\nprompt:\n  rules:\n    - {id: r, category: sexal, treshold: 0.5}\n",
            source="p.yaml",
        )
    by_path = {issue.path: issue for issue in info.value.issues}
    category = by_path["prompt.rules[0].category"]
    assert (category.line, category.suggestion) == (4, "sexual")
    assert "sexual/minors" in category.expected
    typo = by_path["prompt.rules[0].treshold"]
    assert (typo.line, typo.column, typo.suggestion) == (4, 32, "threshold")
    assert "p.yaml: line 4, column 32: prompt.rules[0].treshold" in str(info.value)


def test_unknown_classifier_and_generator_names_fail_validation_with_lines() -> None:
    text = (
        "id: x\n"
        "prompt:\n"
        "  classifiers: [term_list, term_lst]\n"
        "output:\n"
        "  image:\n"
        "    classifiers: [nudnet]\n"
        "generate:\n"
        "  generators: [procedual]\n"
    )
    found = issues(text)
    assert any(
        i.startswith("line 3") and "'term_lst'; did you mean 'term_list'?" in i for i in found
    )
    assert any(i.startswith("line 6") and "did you mean 'nudenet'?" in i for i in found)
    assert any(i.startswith("line 8") and "unknown generator 'procedual'" in i for i in found)
    known = KnownBackends(frozenset({"term_list"}), frozenset(), frozenset(), frozenset())
    with pytest.raises(PolicyValidationError, match="registered: none yet"):
        validate_policy_text("id: x\noutput:\n  image:\n    classifiers: [nudenet]\n", known=known)


def test_variant_names_are_checked_against_the_variants_the_gateway_serves() -> None:
    text = (
        "id: x\nprompt:\n  rules:\n"
        "    - {id: r, category: sexual, threshold: 0.5, action: route-to-variant,"
        " variant: no-nudty}\n"
        "generate:\n  variant: no-violence\n"
    )
    served = replace(KnownBackends.registered(), variants=frozenset({"no-nudity", "no-violence"}))
    with pytest.raises(PolicyValidationError) as refused:
        validate_policy_text(text, known=served)
    [issue] = refused.value.issues
    assert (issue.path, issue.line, issue.suggestion) == ("prompt.rules[0].variant", 4, "no-nudity")
    assert "unknown concept-erased variant 'no-nudty'" in issue.message
    # where the variants are not known (a file validated offline), names are not checked
    assert validate_policy_text(text).policy.generate.variant == "no-violence"
    none_served = replace(served, variants=frozenset())
    with pytest.raises(PolicyValidationError, match="registered: none yet"):
        validate_policy_text("id: x\ngenerate:\n  variant: no-violence\n", known=none_served)


def test_declared_actions_that_are_not_enforced_yet_are_refused_clearly() -> None:
    [issue] = issues(
        "id: x\nprompt:\n  rules:\n    - {id: r, category: sexual, threshold: 0.5, action: blur}\n"
    )
    assert "action 'blur' applies only to output.image rules" in issue


def test_semantic_diff_names_thresholds_terms_actions_and_classifiers() -> None:
    before = parse_policy(default_policy_text()).policy
    text = (
        default_policy_text()
        .replace("threshold: 0.6", "threshold: 0.8")
        .replace("      - gore\n", "      - gore\n      - splatter\n")
        .replace(
            "category: prompt-attack, threshold: 0.5, action: flag",
            "category: prompt-attack, threshold: 0.5, action: block",
        )
        .replace("    classifiers: [nudenet]\n", "    classifiers: []\n")
    )
    after = parse_policy(text).policy
    changes = {change.path: change for change in diff_policies(before, after)}
    assert changes["output.image.rules[output-nudity].threshold"].summary.endswith("0.6 → 0.8")
    assert changes["prompt.terms.violence/graphic"].summary.endswith("+splatter")
    assert changes["prompt.rules[prompt-obfuscation].action"].kind == "action"
    assert changes["output.image.classifiers"].summary.endswith("-nudenet")
    reordered = parse_policy(default_policy_text().replace("id: default", "id: default  # x"))
    assert diff_policies(before, reordered.policy) == []


def test_json_schema_export_and_the_reference_page_is_current() -> None:
    schema = json_schema()
    assert schema["title"] == "GenGuard policy" and "prompt" in schema["properties"]
    json.dumps(schema)  # serialisable for editors
    page = (REPO / "docs" / "policy-reference.md").read_text()
    generated = page.split(GENERATED_BEGIN)[1].split(GENERATED_END)[0]
    assert generated.strip() == reference_markdown().strip(), (
        "docs/policy-reference.md is out of date: run "
        "`.venv/bin/genguard policy reference --write docs/policy-reference.md`"
    )


def record(
    decision_id: str, action: str, stages: list[StageRecord], shadow: str | None = None
) -> AuditRecord:
    return AuditRecord(
        decision_id=decision_id,
        trace_id="t",
        timestamp=datetime.now(UTC),
        tenant="acme",
        route="images.generations",
        policy=PolicyRef(id="default", revision="sha256:0"),
        shadow=ShadowRef(revision="sha256:cand", action=shadow) if shadow else None,  # type: ignore[arg-type]
        input=InputRecord.from_prompt("p", mode="full"),
        stages=stages,
        decision=DecisionRecord(
            action=action,  # type: ignore[arg-type]
            reasons=[
                ReasonRecord(
                    stage="prompt",
                    category="sexual",
                    score=1.0,
                    threshold=0.5,
                    rule="prompt-sexual",
                )
            ]
            if action == "block"
            else [],
        ),
        metrics=MetricsRecord(total_ms=1, overhead_ms=1, upstream_ms=0),
    )


def test_replay_from_recorded_scores_matches_the_recorded_shadow() -> None:
    current = parse_policy(default_policy_text())
    stricter = parse_policy(
        default_policy_text().replace(
            "category: prompt-attack, threshold: 0.5, action: flag",
            "category: prompt-attack, threshold: 0.5, action: block",
        )
    )
    attack = [
        StageRecord(
            stage="prompt",
            classifier="term_list",
            latency_ms=1,
            verdict="flag",
            scores={"prompt-attack": 0.9},
        )
    ]
    clean = [
        StageRecord(stage="prompt", classifier="term_list", latency_ms=1, verdict="allow"),
        StageRecord(
            stage="output",
            classifier="nudenet",
            latency_ms=1,
            verdict="allow",
            scores={"nudity": 0.1},
        ),
    ]
    nude = [
        StageRecord(
            stage="prompt",
            classifier="term_list",
            latency_ms=1,
            verdict="block",
            scores={"sexual": 1.0},
        )
    ]
    outcome = evaluate_record(current.policy, "images.generations", attack, "flag")
    assert outcome is not None and outcome.action == "flag"  # the enforced decision replays
    records = [
        record("d1", "flag", attack, "block"),
        record("d2", "allow", clean, "allow"),
        record("d3", "block", nude, "block"),
    ]
    replay = replay_records(records, lambda tenant: stricter)
    shadow = shadow_report(records, "sha256:cand", lambda tenant: stricter)
    assert (
        (replay.evaluated, len(replay.changed)) == (shadow.evaluated, len(shadow.changed)) == (3, 1)
    )
    assert replay.by_transition == shadow.by_transition == {"flag→block": 1}
    assert replay.by_category == shadow.by_category == {"prompt-attack": 1}
    assert replay.changed[0].decision_id == "d1"
    assert evaluate_record(current.policy, "admin.keys.create", [], "allow") is None
