"""What GenGuard asserts about a generated asset, and the c2pa manifest definition built from it.

The manifest says *that* the asset was generated (``c2pa.created`` with the IPTC
``trainedAlgorithmicMedia`` source type), *by what* (generator and model) and *under which
decision* (decision id, policy id and revision, the per-stage verdicts, in the
``org.genguard.decision`` assertion), so a verifier can find the audit record. A
``c2pa.soft-binding`` assertion names the invisible watermark (its algorithm and id) and an
optional ``cawg.training-mining`` assertion states the policy's training and mining terms.
When the output stage obscured regions of the image (the ``blur`` action), a ``c2pa.edited``
action after ``c2pa.created`` says so (``redaction``: method and region count, never what was
detected beyond the policy categories), and the decision assertion repeats it.
It never says *what was asked for*: ``ManifestSpec`` has no prompt field by design, because a
manifest travels with the asset to anyone who receives it.
Keep it that way.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, fields
from typing import Any

from provenance.ingredients import Ingredient, edit_actions
from provenance.media import signable_mime_type

__all__ = [
    "ACTIONS_LABEL",
    "GENGUARD_ASSERTION_LABEL",
    "SOFT_BINDING_LABEL",
    "TRAINED_ALGORITHMIC_MEDIA",
    "TRAINING_MINING_LABEL",
    "ManifestSpec",
    "SoftBinding",
    "manifest_definition",
]

ACTIONS_LABEL = "c2pa.actions"
GENGUARD_ASSERTION_LABEL = "org.genguard.decision"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"

SOFT_BINDING_LABEL = "c2pa.soft-binding"
TRAINING_MINING_LABEL = "cawg.training-mining"
TRAINING_MINING_USES = ("allowed", "notAllowed", "constrained")
_TRAINING_MINING_ENTRIES = (
    "cawg.ai_training",
    "cawg.ai_generative_training",
    "cawg.ai_inference",
    "cawg.data_mining",
)

_REQUIRED = ("generator", "model", "decision_id", "policy_id", "policy_revision", "claim_generator")


@dataclass(frozen=True, slots=True)
class SoftBinding:
    """A watermark that binds the asset to its manifest: the algorithm and the value it carries
    (for GenGuard's watermarks, the 8-hex-digit watermark id)."""

    alg: str
    value: str


@dataclass(frozen=True, slots=True)
class ManifestSpec:
    """The facts GenGuard signs into a generated asset's C2PA manifest (never the prompt).

    ``title`` is a human label for the asset (e.g. a file name); do not put prompt text in it.
    ``claim_generator`` is ``"name/version"`` of the software that signs.
    """

    generator: str
    model: str
    decision_id: str
    policy_id: str
    policy_revision: str
    title: str | None = None
    digital_source_type: str = TRAINED_ALGORITHMIC_MEDIA
    claim_generator: str = "GenGuard/0.1.0"
    watermark: SoftBinding | None = None
    stage_verdicts: tuple[tuple[str, str], ...] = ()
    training_mining: str | None = None
    redaction: str | None = None  # e.g. "pixelate 2 regions (nudity)": the blur action applied
    # edits and variations: the uploaded inputs (provenance.ingredients); the actions become
    # c2pa.opened + c2pa.edited (compositeWithTrainedAlgorithmicMedia) instead of c2pa.created
    ingredients: tuple[Ingredient, ...] = ()

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in _REQUIRED and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"ManifestSpec.{field.name} must be a non-empty string")
        if self.training_mining is not None and self.training_mining not in TRAINING_MINING_USES:
            allowed = ", ".join(TRAINING_MINING_USES)
            raise ValueError(f"ManifestSpec.training_mining must be one of {allowed}")


def _claim_generator_info(claim_generator: str) -> dict[str, str]:
    name, _, version = claim_generator.partition("/")
    info = {"name": name}
    if version:
        info["version"] = version
    return info


def manifest_definition(spec: ManifestSpec, mime_type: str) -> dict[str, Any]:
    """The c2pa-rs manifest definition (JSON object) for an asset of ``mime_type``.

    Raises ``UnsupportedMedia`` for a media type we do not sign.
    """
    genguard: dict[str, Any] = {
        "decision_id": spec.decision_id,
        "policy_id": spec.policy_id,
        "policy_revision": spec.policy_revision,
        "generator": spec.generator,
        "model": spec.model,
    }
    if spec.stage_verdicts:
        genguard["stages"] = [{"stage": s, "verdict": v} for s, v in spec.stage_verdicts]
    if spec.watermark is not None:
        genguard["watermark_id"] = spec.watermark.value
    actions: list[dict[str, Any]] = [
        {
            "action": "c2pa.created",
            "digitalSourceType": spec.digital_source_type,
            "softwareAgent": {"name": spec.generator},
            "parameters": {"model": spec.model},
        }
    ]
    if spec.ingredients:
        actions = edit_actions(spec.ingredients, spec.generator, {"model": spec.model})
    if spec.redaction is not None:
        genguard["redaction"] = spec.redaction
        actions.append(
            {
                "action": "c2pa.edited",
                "description": f"regions obscured by policy: {spec.redaction}",
                "softwareAgent": _claim_generator_info(spec.claim_generator),
                "parameters": {"redaction": spec.redaction},
            }
        )
    definition: dict[str, Any] = {
        "claim_generator_info": [_claim_generator_info(spec.claim_generator)],
        "format": signable_mime_type(mime_type),
        "assertions": [
            {"label": ACTIONS_LABEL, "data": {"actions": actions}},
            {"label": GENGUARD_ASSERTION_LABEL, "data": genguard},
        ],
    }
    if spec.watermark is not None:
        value = base64.b64encode(spec.watermark.value.encode("ascii")).decode("ascii")
        definition["assertions"].append(
            {
                "label": SOFT_BINDING_LABEL,
                "data": {"alg": spec.watermark.alg, "blocks": [{"scope": {}, "value": value}]},
            }
        )
    if spec.training_mining is not None:
        use = {"use": spec.training_mining}
        definition["assertions"].append(
            {
                "label": TRAINING_MINING_LABEL,
                "data": {"entries": {entry: dict(use) for entry in _TRAINING_MINING_ENTRIES}},
            }
        )
    if spec.title is not None:
        definition["title"] = spec.title
    return definition
