"""Load a policy from YAML, with every error located by line.

YAML is composed into nodes first (so each value keeps its position), then converted to Python
data and validated by pydantic; each pydantic error location is walked back through the node tree
to the line that holds the offending value. Duplicate keys are errors, not silent overrides.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import types
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from policies.errors import PolicyIssue, PolicyValidationError
from policies.schema import Policy

__all__ = [
    "PolicyBundle",
    "closest",
    "compose_mapping",
    "default_policy_text",
    "load_policy_file",
    "locate",
    "parse_policy",
    "revision_of",
]

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
    node, data = compose_mapping(text, source=source)
    return validate_data(data, node, text=text, source=source)


def compose_mapping(text: str, *, source: str = "<policy>") -> tuple[yaml.MappingNode, Any]:
    """The YAML node tree (positions) and plain data of a mapping document; syntax and
    duplicate-key problems raise ``PolicyValidationError`` with their line and column."""
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
    return node, yaml.SafeLoader(text).get_single_data()


def validate_data(data: Any, node: yaml.Node, *, text: str, source: str) -> PolicyBundle:
    """Validate already-parsed data; ``node`` is the tree the error lines are looked up in."""
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        issues = [_issue_for(node, error) for error in exc.errors(include_url=False)]
        raise PolicyValidationError(source, issues) from None
    return PolicyBundle(policy=policy, revision=revision_of(text), source=source, text=text)


def locate(node: yaml.Node, loc: typing.Sequence[str | int]) -> tuple[int, int]:
    """Line and column (1-based) of the value at ``loc``, or of its deepest existing parent."""
    found, _ = _walk(node, list(loc))
    return _line(found), int(found.start_mark.column) + 1


def closest(word: str, choices: typing.Iterable[str]) -> str | None:
    """The valid spelling ``word`` most likely meant, if any is close enough."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


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
    suggestion: str | None = None
    expected: tuple[str, ...] = ()
    if error["type"] == "extra_forbidden":
        key = str(loc[-1]) if loc else ""
        model = _model_at(loc[:-1])
        expected = tuple(model.model_fields) if model is not None else ()
        suggestion = closest(key, expected)
        message = f"unknown field {key!r}" if loc else "unknown field"
        if suggestion:
            message += f"; did you mean {suggestion!r}?"
        if expected:
            message += f" (expected one of: {', '.join(expected)})"
    elif error["type"] == "missing":
        message = "required field is missing"
    elif error["type"] in {"enum", "literal_error"} and "input" in error:
        expected = tuple(_QUOTED.findall(str(error.get("ctx", {}).get("expected", ""))))
        got = error["input"]
        suggestion = closest(str(got), expected) if isinstance(got, str) else None
        message = f"{message} (got {got!r})"
        if suggestion:
            choices = ", ".join(expected)
            message = f"unknown value {got!r}; did you mean {suggestion!r}? (expected: {choices})"
    if consumed < len(loc) and error["type"] != "missing":
        message += f" (at {_format_path(loc[consumed:])})"
    if error["type"] == "extra_forbidden" and consumed == len(loc):
        # point at the key itself, not at its value
        parent, _ = _walk(root, loc[:-1])
        if isinstance(parent, yaml.MappingNode):
            for key_node, value_node in parent.value:
                if value_node is node:
                    node = key_node
    return PolicyIssue(
        path, message, _line(node), int(node.start_mark.column) + 1, suggestion, expected
    )


_QUOTED = re.compile(r"'([^']*)'")


def _model_at(loc: typing.Sequence[Any]) -> type[BaseModel] | None:
    """The schema model that validates the mapping at ``loc`` (list indexes are skipped)."""
    model: type[BaseModel] = Policy
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        inner = _model_in(field.annotation)
        if inner is None:
            return None
        model = inner
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


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
