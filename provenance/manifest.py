"""What GenGuard asserts about a generated asset, and the c2pa manifest definition built from it.

The manifest says *that* the asset was generated (``c2pa.created`` with the IPTC
``trainedAlgorithmicMedia`` source type), *by what* (generator and model) and *under which
decision* (decision id, policy id and revision, in the ``org.genguard.decision`` assertion), so a
verifier can find the audit record. It never says *what was asked for*: ``ManifestSpec`` has no
prompt field by design, because a manifest travels with the asset to anyone who receives it.
Keep it that way.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from provenance.media import signable_mime_type

__all__ = [
    "ACTIONS_LABEL",
    "GENGUARD_ASSERTION_LABEL",
    "TRAINED_ALGORITHMIC_MEDIA",
    "ManifestSpec",
    "manifest_definition",
]

ACTIONS_LABEL = "c2pa.actions"
GENGUARD_ASSERTION_LABEL = "org.genguard.decision"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"

_REQUIRED = ("generator", "model", "decision_id", "policy_id", "policy_revision", "claim_generator")


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

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in _REQUIRED and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"ManifestSpec.{field.name} must be a non-empty string")


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
    definition: dict[str, Any] = {
        "claim_generator_info": [_claim_generator_info(spec.claim_generator)],
        "format": signable_mime_type(mime_type),
        "assertions": [
            {
                "label": ACTIONS_LABEL,
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": spec.digital_source_type,
                            "softwareAgent": {"name": spec.generator},
                            "parameters": {"model": spec.model},
                        }
                    ]
                },
            },
            {
                "label": GENGUARD_ASSERTION_LABEL,
                "data": {
                    "decision_id": spec.decision_id,
                    "policy_id": spec.policy_id,
                    "policy_revision": spec.policy_revision,
                    "generator": spec.generator,
                    "model": spec.model,
                },
            },
        ],
    }
    if spec.title is not None:
        definition["title"] = spec.title
    return definition
