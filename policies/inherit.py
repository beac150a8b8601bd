"""Tenant policies that inherit from the base policy and override parts of it.

A tenant's document that says ``extends: base`` holds only what differs. It is merged over the
*active* base policy key by key: mappings merge recursively, anything else (numbers, strings,
lists such as ``rules`` or a category's terms) replaces the base's value. The merged document is
validated as a whole; its revision covers both the base revision and the tenant's text, so a new
base version changes every inheriting tenant's revision.
"""

from __future__ import annotations

from typing import Any

import yaml

from policies.loader import PolicyBundle, revision_of

__all__ = ["deep_merge", "inherited_revision", "merged_data"]


def deep_merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return override


def merged_data(base: PolicyBundle, override: dict[str, Any]) -> dict[str, Any]:
    """The tenant document ``override`` merged over ``base`` (plain YAML data)."""
    base_data = yaml.safe_load(base.text) or {}
    base_data.pop("extends", None)
    merged = deep_merge(base_data, override)
    assert isinstance(merged, dict)
    return merged


def inherited_revision(base: PolicyBundle, text: str) -> str:
    return revision_of(f"{base.revision}\n{text}")
