"""How a policy steers image generation: which concept-erased variant, which safe guidance.

Two sources, both data in the policy:

- ``generate.variant`` / ``generate.safe_guidance``: every image request of the policy (a
  tenant's policy routes that tenant's requests);
- prompt rules with action ``route-to-variant`` that fired on this request: the first such rule
  (in policy order) that names a ``variant`` replaces ``generate.variant``; the strongest
  ``safe_guidance`` preset among them and ``generate.safe_guidance`` wins.

Speech cannot be steered: on a speech request a fired ``route-to-variant`` rule blocks instead
(fail closed: the policy asked for a safer generation than the request can get).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import get_args

from policies.decision import Decision, from_reasons
from policies.schema import Action, Policy, SafeGuidancePreset

__all__ = ["Steering", "speech_fallback", "steering_for"]

_PRESET_ORDER = get_args(SafeGuidancePreset)  # weakest first


@dataclass(frozen=True, slots=True)
class Steering:
    """What the harden stage sets on an image request (``None`` fields: leave as requested)."""

    variant: str | None
    safe_guidance: SafeGuidancePreset | None
    concept: str | None  # the safety concept for ``safe_guidance`` (None: the generator's)
    rules: tuple[str, ...]  # ids of the route-to-variant rules that fired

    def to_json(self) -> dict[str, object]:
        return {
            "variant": self.variant,
            "safe_guidance": self.safe_guidance,
            "routed_by": list(self.rules),
        }


def steering_for(policy: Policy, decision: Decision) -> Steering | None:
    """The steering of an image request whose prompt stage decided ``decision``."""
    fired = {r.rule for r in decision.reasons if r.action is Action.ROUTE_TO_VARIANT}
    rules = [rule for rule in policy.prompt.rules if rule.id in fired]
    section = policy.generate
    variant = next((r.variant for r in rules if r.variant is not None), section.variant)
    presets = [r.safe_guidance for r in rules if r.safe_guidance is not None]
    guidance = section.safe_guidance
    if guidance is not None:
        presets.append(guidance.preset)
    preset = max(presets, key=_PRESET_ORDER.index) if presets else None
    if variant is None and preset is None:
        return None
    concept = guidance.concept if guidance is not None else None
    return Steering(variant, preset, concept, tuple(r.id for r in rules))


def speech_fallback(decision: Decision) -> Decision:
    """A speech request's prompt decision: ``route-to-variant`` reasons become ``block``."""
    if not any(r.action is Action.ROUTE_TO_VARIANT for r in decision.reasons):
        return decision
    return from_reasons(
        [
            replace(
                r,
                action=Action.BLOCK,
                detail="route-to-variant cannot be honoured for speech: blocked",
            )
            if r.action is Action.ROUTE_TO_VARIANT
            else r
            for r in decision.reasons
        ]
    )
