"""Full validation of a policy text: the schema (``loader``) plus the backends it names.

The schema cannot know which classifiers and generators this installation has registered, so
a second pass checks every name against ``KnownBackends`` and reports unknown ones with the line,
the valid names and the closest spelling. Unknown names fail here — when a version is proposed
or a file validated — never at request time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import yaml

from policies.errors import PolicyIssue, PolicyValidationError
from policies.loader import PolicyBundle, closest, compose_mapping, locate, validate_data
from policies.schema import Policy

__all__ = ["KnownBackends", "validate_policy_text"]


@dataclass(frozen=True, slots=True)
class KnownBackends:
    """Registered backend names by kind (what a policy may refer to)."""

    text: frozenset[str]
    image: frozenset[str]
    audio: frozenset[str]
    generators: frozenset[str]
    # concept-erased variants the gateway's image generator serves; None: not known here (a
    # policy file validated offline), so variant names are not checked
    variants: frozenset[str] | None = None

    @classmethod
    def registered(cls) -> KnownBackends:
        from classifiers.registry import AUDIO_CLASSIFIERS, IMAGE_CLASSIFIERS, TEXT_CLASSIFIERS
        from generators.registry import GENERATORS

        return cls(
            text=frozenset(TEXT_CLASSIFIERS),
            image=frozenset(IMAGE_CLASSIFIERS),
            audio=frozenset(AUDIO_CLASSIFIERS),
            generators=frozenset(GENERATORS),
        )


def validate_policy_text(
    text: str,
    *,
    source: str = "<policy>",
    known: KnownBackends | None = None,
    base: PolicyBundle | None = None,
) -> PolicyBundle:
    """Validate ``text`` completely; raise ``PolicyValidationError`` listing every problem.

    With ``base``, a document that says ``extends: base`` is merged over it first (see
    ``policies.inherit``); lines still point into ``text``.
    """
    from policies.inherit import merged_data

    node, data = compose_mapping(text, source=source)
    if isinstance(data, dict) and data.get("extends") == "base":
        if base is None:
            issue = PolicyIssue("extends", "there is no active base policy to extend", 1)
            raise PolicyValidationError(source, [issue])
        data = merged_data(base, data)
    bundle = validate_data(data, node, text=text, source=source)
    if base is not None and bundle.policy.extends == "base":
        from policies.inherit import inherited_revision

        bundle = PolicyBundle(bundle.policy, inherited_revision(base, text), source, text)
    issues = list(_backend_issues(bundle.policy, node, known or KnownBackends.registered()))
    if issues:
        raise PolicyValidationError(source, issues)
    return bundle


def _backend_issues(policy: Policy, node: yaml.Node, known: KnownBackends) -> Iterator[PolicyIssue]:
    checks: list[tuple[tuple[str | int, ...], tuple[str, ...], frozenset[str], str]] = [
        (("prompt", "classifiers"), policy.prompt.classifiers, known.text, "text classifier"),
        (
            ("output", "image", "classifiers"),
            policy.output.image.classifiers,
            known.image,
            "image classifier",
        ),
        (
            ("input", "classifiers"),
            policy.input.classifiers,
            known.image,
            "image classifier",
        ),
        (
            ("output", "audio", "classifiers"),
            policy.output.audio.classifiers,
            known.audio,
            "audio classifier",
        ),
        (
            ("generate", "generators"),
            policy.generate.generators or (),
            known.generators,
            "generator",
        ),
    ]
    for loc, names, valid, kind in checks:
        for index, name in enumerate(names):
            if name in valid:
                continue
            yield _unknown(node, (*loc, index), name, valid, kind)
    if known.variants is not None:
        yield from _variant_issues(policy, node, known.variants)


def _variant_issues(
    policy: Policy, node: yaml.Node, variants: frozenset[str]
) -> Iterator[PolicyIssue]:
    """A variant the image generator does not serve would fail every routed request (503):
    refuse it when the policy is proposed instead."""
    named: list[tuple[tuple[str | int, ...], str]] = []
    if policy.generate.variant is not None:
        named.append((("generate", "variant"), policy.generate.variant))
    for index, rule in enumerate(policy.prompt.rules):
        if rule.variant is not None:
            named.append((("prompt", "rules", index, "variant"), rule.variant))
    for loc, name in named:
        if name not in variants:
            yield _unknown(node, loc, name, variants, "concept-erased variant")


def _unknown(
    node: yaml.Node, loc: tuple[str | int, ...], name: str, valid: frozenset[str], kind: str
) -> PolicyIssue:
    line, column = locate(node, loc)
    expected = tuple(sorted(valid))
    suggestion = closest(name, expected)
    message = f"unknown {kind} {name!r}"
    if suggestion:
        message += f"; did you mean {suggestion!r}?"
    message += f" (registered: {', '.join(expected) or 'none yet'})"
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return PolicyIssue(path, message, line, column, suggestion, expected)
