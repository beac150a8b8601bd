"""Policy YAML: the default is valid; every kind of mistake is reported with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifiers.taxonomy import Category
from policies.errors import PolicyValidationError
from policies.loader import default_policy_text, load_policy_file, parse_policy
from policies.schema import Action


def issues_of(text: str) -> list[str]:
    with pytest.raises(PolicyValidationError) as info:
        parse_policy(text, source="p.yaml")
    return [str(issue) for issue in info.value.issues]


def test_default_policy_is_valid_and_has_a_content_revision() -> None:
    bundle = parse_policy(default_policy_text())
    assert bundle.id == "default"
    assert bundle.revision.startswith("sha256:") and len(bundle.revision) == 23
    assert parse_policy(default_policy_text()).revision == bundle.revision
    assert parse_policy(default_policy_text() + "\n# edit\n").revision != bundle.revision
    assert bundle.policy.prompt.on_error == "block"  # fail closed by default
    assert Category.SEXUAL_MINORS in bundle.policy.prompt.terms


def test_minimal_policy_gets_safe_defaults() -> None:
    policy = parse_policy("id: minimal\n").policy
    assert policy.output.image.classifiers == ("nudenet",)
    assert policy.provenance.c2pa is True
    assert policy.output.image.on_error == "block"


def test_unknown_field_reported_on_its_key_line() -> None:
    [issue] = issues_of("id: x\nprompt:\n  on_eror: allow\n")
    assert issue.startswith(
        "line 3, column 3: prompt.on_eror: unknown field 'on_eror'; did you mean 'on_error'?"
    )


def test_bad_values_each_with_line() -> None:
    issues = issues_of(
        "id: x\n"
        "prompt:\n"
        "  rules:\n"
        "    - id: r1\n"
        "      category: sexual\n"
        "      threshold: 1.5\n"
        "    - {id: r2, category: nope, threshold: 0.5, action: explode}\n"
        "harden:\n"
        "  max_n: 99\n"
    )
    assert any(i.startswith("line 6") and "prompt.rules[0].threshold" in i for i in issues)
    assert any(i.startswith("line 7") and "prompt.rules[1].category" in i and "'nope'" in i
               for i in issues)  # fmt: skip
    assert any(i.startswith("line 7") and "prompt.rules[1].action" in i for i in issues)
    assert any(i.startswith("line 9") and "harden.max_n" in i for i in issues)


def test_missing_id() -> None:
    assert any("id: required field is missing" in i for i in issues_of("description: x\n"))


def test_duplicate_keys_are_errors_not_overrides() -> None:
    issues = issues_of("id: x\nprompt:\n  max_chars: 10\n  max_chars: 20\n")
    assert issues == [
        "line 4: prompt.max_chars: duplicate key 'max_chars' (first defined on line 3)"
    ]


def test_duplicate_rule_ids() -> None:
    issues = issues_of(
        "id: x\nprompt:\n  rules:\n"
        "    - {id: same, category: hate, threshold: 0.5}\n"
        "    - {id: same, category: sexual, threshold: 0.5}\n"
    )
    assert any("duplicate rule id 'same'" in i for i in issues)


def test_rule_naming_a_classifier_the_stage_does_not_run() -> None:
    issues = issues_of(
        "id: x\nprompt:\n  classifiers: [term_list]\n  rules:\n"
        "    - {id: r, category: hate, threshold: 0.5, classifiers: [llm]}\n"
    )
    assert any("['llm']" in i and "does not run" in i for i in issues)


def test_empty_term() -> None:
    issues = issues_of("id: x\nprompt:\n  terms:\n    sexual: [porn, '  ']\n")
    assert any("terms[sexual][1] is empty" in i for i in issues)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the policy file is empty"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("id: [x\n", "YAML syntax error"),
        ("id: x\n\tprompt: 1\n", "YAML syntax error"),
    ],
)
def test_structural_errors(text: str, expected: str) -> None:
    assert any(expected in i for i in issues_of(text))


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyValidationError, match="file not found"):
        load_policy_file(tmp_path / "missing.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"id: \xff\xfe\n")
    with pytest.raises(PolicyValidationError, match="not UTF-8"):
        load_policy_file(binary)


def test_actions_order_by_severity() -> None:
    assert Action.BLOCK.severity > Action.FLAG.severity > Action.ALLOW.severity
