"""Load a policy from YAML, with every error located by line.

YAML is composed into nodes first (so each value keeps its position), then converted to Python
data and validated by pydantic; each pydantic error location is walked back through the node tree
to the line that holds the offending value. Duplicate keys are errors, not silent overrides.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from policies.errors import PolicyIssue, PolicyValidationError
from policies.schema import Policy

__all__ = ["PolicyBundle", "default_policy_text", "load_policy_file", "parse_policy"]

DEFAULT_POLICY_RESOURCE = "default.yaml"


@dataclass(frozen=True, slots=True)
class PolicyBundle:
    """An immutable, validated policy with its revision (content hash) and where it came from."""

    policy: Policy
    revision: str
    source: str
    text: str

    @property
    def id(self) -> str:
        return self.policy.id


def revision_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def default_policy_text() -> str:
    return resources.files("policies").joinpath(DEFAULT_POLICY_RESOURCE).read_text("utf-8")


def load_policy_file(path: Path) -> PolicyBundle:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise PolicyValidationError(str(path), [PolicyIssue("", "file not found")]) from None
    except UnicodeDecodeError as exc:
        issue = PolicyIssue("", f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        raise PolicyValidationError(str(path), [issue]) from None
    except OSError as exc:
        raise PolicyValidationError(
            str(path), [PolicyIssue("", exc.strerror or str(exc))]
        ) from None
    return parse_policy(text, source=str(path))


def parse_policy(text: str, *, source: str = "<policy>") -> PolicyBundle:
    """Parse and validate policy YAML; raise ``PolicyValidationError`` listing every problem."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        message = f"YAML syntax error: {exc.problem or exc.context}"
        raise PolicyValidationError(source, [PolicyIssue("", message, line, column)]) from None
    except yaml.YAMLError as exc:
        raise PolicyValidationError(source, [PolicyIssue("", f"YAML error: {exc}")]) from None
    if node is None:
        raise PolicyValidationError(source, [PolicyIssue("", "the policy file is empty", 1)])
    if not isinstance(node, yaml.MappingNode):
        issue = PolicyIssue("", "the top level must be a mapping (id:, prompt:, …)", _line(node))
        raise PolicyValidationError(source, [issue])
    duplicates = list(_duplicate_keys(node, ""))
    if duplicates:
        raise PolicyValidationError(source, duplicates)
    data = yaml.SafeLoader(text).get_single_data()
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        issues = [_issue_for(node, error) for error in exc.errors(include_url=False)]
        raise PolicyValidationError(source, issues) from None
    return PolicyBundle(policy=policy, revision=revision_of(text), source=source, text=text)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _duplicate_keys(node: yaml.Node, path: str) -> list[PolicyIssue]:
    issues: list[PolicyIssue] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            if key in seen:
                message = f"duplicate key {key!r} (first defined on line {seen[key]})"
                issues.append(PolicyIssue(child, message, _line(key_node)))
            else:
                seen[key] = _line(key_node)
            issues.extend(_duplicate_keys(value_node, child))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            issues.extend(_duplicate_keys(item, f"{path}[{index}]"))
    return issues


def _issue_for(root: yaml.Node, error: Any) -> PolicyIssue:
    loc = [part for part in error["loc"] if not _is_validator_tag(part)]
    node, consumed = _walk(root, loc)
    path = _format_path(loc)
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        message = f"unknown field {loc[-1]!r}" if loc else "unknown field"
    elif error["type"] == "missing":
        message = "required field is missing"
    elif error["type"] in {"enum", "literal_error"} and "input" in error:
        message = f"{message} (got {error['input']!r})"
    if consumed < len(loc) and error["type"] != "missing":
        message += f" (at {_format_path(loc[consumed:])})"
    if error["type"] == "extra_forbidden" and consumed == len(loc):
        # point at the key itself, not at its value
        parent, _ = _walk(root, loc[:-1])
        if isinstance(parent, yaml.MappingNode):
            for key_node, value_node in parent.value:
                if value_node is node:
                    node = key_node
    return PolicyIssue(path, message, _line(node), int(node.start_mark.column) + 1)


def _is_validator_tag(part: object) -> bool:
    # pydantic adds e.g. "function-after[...]" to locations of validator errors
    return isinstance(part, str) and ("[" in part and part.endswith("]"))


def _walk(node: yaml.Node, loc: list[Any]) -> tuple[yaml.Node, int]:
    """Follow ``loc`` through the node tree as far as it goes; return the deepest node."""
    consumed = 0
    for part in loc:
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == str(part):
                    nxt = value_node
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            nxt = node.value[part]
        if nxt is None:
            break
        node = nxt
        consumed += 1
    return node, consumed


def _format_path(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
