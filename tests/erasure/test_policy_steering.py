"""The policy side of routing: validation of route-to-variant rules and what the harden stage
derives from a decision (pure values, no model)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from policies.decision import Decision, Reason, from_reasons
from policies.schema import Action, Policy
from policies.steering import speech_fallback, steering_for


def _policy(**sections: Any) -> Policy:
    return Policy.model_validate({"id": "p", **sections})


def _route(rule: str, **extra: str) -> dict[str, Any]:
    return {
        "id": rule,
        "category": "sexual",
        "threshold": 0.3,
        "action": "route-to-variant",
    } | extra


def _fired(*rules: str, action: Action = Action.ROUTE_TO_VARIANT) -> Decision:
    return from_reasons(
        [Reason("prompt", rule, "sexual", "term_list", 1.0, 0.3, action) for rule in rules]
    )


def test_rules_and_the_generate_section_combine() -> None:
    policy = _policy(
        prompt={
            "rules": [
                _route("first", safe_guidance="weak"),
                _route("second", variant="no-nudity", safe_guidance="strong"),
                _route("third", variant="no-violence"),
            ]
        },
        generate={"variant": "tenant-default", "safe_guidance": {"preset": "medium"}},
    )
    untouched = steering_for(policy, Decision(Action.ALLOW))
    assert untouched is not None and untouched.variant == "tenant-default"
    assert (untouched.safe_guidance, untouched.rules) == ("medium", ())
    steering = steering_for(policy, _fired("third", "first", "second"))
    assert steering is not None
    # the first fired rule in policy order that names a variant; the strongest preset
    assert (steering.variant, steering.safe_guidance) == ("no-nudity", "strong")
    assert steering.rules == ("first", "second", "third")
    assert steering_for(_policy(), _fired("first")) is None


def test_speech_turns_routing_into_a_block() -> None:
    decision = speech_fallback(_fired("first"))
    assert decision.action is Action.BLOCK
    assert decision.reasons[0].detail == "route-to-variant cannot be honoured for speech: blocked"
    flagged = _fired("x", action=Action.FLAG)
    assert speech_fallback(flagged) is flagged


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"prompt": {"rules": [_route("r")]}}, "needs 'variant'"),
        ({"prompt": {"rules": [_route("r", variant="Bad Name")]}}, "variant 'Bad Name'"),
        (
            {"prompt": {"rules": [{**_route("r", variant="v"), "action": "flag"}]}},
            "belong to action 'route-to-variant', not 'flag'",
        ),
        (
            {"output": {"image": {"rules": [_route("r", variant="v")]}}},
            "output.image rule 'r': action 'route-to-variant' applies only to prompt rules",
        ),
        ({"generate": {"safe_guidance": {"preset": "extreme"}}}, "generate.safe_guidance.preset"),
    ],
)
def test_invalid_routing_is_refused_precisely(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _policy(**sections)
