"""Semantic diff between two policies: what a change does, not which lines moved.

Rules are matched by ``id`` (so reordering is no change), term lists and classifier lists are
compared as sets (terms added / removed), and every other value by its field path. Each change
has a ``kind`` compliance staff can scan: ``threshold``, ``action``, ``terms``, ``classifiers``,
``rule-added``, ``rule-removed`` or ``setting``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies.schema import Policy

__all__ = ["PolicyChange", "diff_policies"]


@dataclass(frozen=True, slots=True)
class PolicyChange:
    path: str
    kind: str
    before: Any
    after: Any

    @property
    def summary(self) -> str:
        if self.kind == "rule-added":
            return f"{self.path}: new rule {_rule_text(self.after)}"
        if self.kind == "rule-removed":
            return f"{self.path}: rule removed (was {_rule_text(self.before)})"
        if self.kind in {"terms", "classifiers"}:
            added = sorted(set(self.after or ()) - set(self.before or ()))
            removed = sorted(set(self.before or ()) - set(self.after or ()))
            parts = [f"+{a}" for a in added] + [f"-{r}" for r in removed]
            return f"{self.path}: {', '.join(parts)}"
        return f"{self.path}: {self.before!r} → {self.after!r}"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "before": self.before,
            "after": self.after,
            "summary": self.summary,
        }


def _rule_text(rule: Any) -> str:
    if not isinstance(rule, dict):
        return repr(rule)
    return f"{rule.get('category')} ≥ {rule.get('threshold')} → {rule.get('action')}"


def diff_policies(before: Policy, after: Policy) -> list[PolicyChange]:
    """Every semantic difference from ``before`` to ``after`` (empty: they behave the same)."""
    return list(
        _diff(before.model_dump(mode="json"), after.model_dump(mode="json"), "", changes=[])
    )


def _diff(a: Any, b: Any, path: str, *, changes: list[PolicyChange]) -> list[PolicyChange]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            child = f"{path}.{key}" if path else str(key)
            if key not in a:
                kind = "terms" if path.endswith("terms") else "setting"
                changes.append(PolicyChange(child, kind, [] if kind == "terms" else None, b[key]))
            elif key not in b:
                kind = "terms" if path.endswith("terms") else "setting"
                changes.append(PolicyChange(child, kind, a[key], [] if kind == "terms" else None))
            else:
                _diff(a[key], b[key], child, changes=changes)
        return changes
    if _is_rule_list(a) and _is_rule_list(b):
        before = {r["id"]: r for r in a}
        after = {r["id"]: r for r in b}
        for rule_id in [*before, *(k for k in after if k not in before)]:
            child = f"{path}[{rule_id}]"
            if rule_id not in after:
                changes.append(PolicyChange(child, "rule-removed", before[rule_id], None))
            elif rule_id not in before:
                changes.append(PolicyChange(child, "rule-added", None, after[rule_id]))
            else:
                for key in sorted(set(before[rule_id]) | set(after[rule_id])):
                    old, new = before[rule_id].get(key), after[rule_id].get(key)
                    if old != new:
                        kind = key if key in {"threshold", "action", "classifiers"} else "setting"
                        changes.append(PolicyChange(f"{child}.{key}", kind, old, new))
        return changes
    if isinstance(a, list) and isinstance(b, list) and _scalars(a) and _scalars(b):
        if set(a) != set(b):
            kind = "terms" if ".terms." in f"{path}." or "terms." in path else "setting"
            if path.endswith("classifiers") or path.endswith("generators"):
                kind = "classifiers"
            changes.append(PolicyChange(path, kind, a, b))
        return changes
    if a != b:
        changes.append(PolicyChange(path, "setting", a, b))
    return changes


def _is_rule_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(r, dict) and "id" in r for r in value)


def _scalars(values: list[Any]) -> bool:
    return all(isinstance(v, str | int | float | bool) for v in values)
