"""The ``blur`` action: obscure the regions the output rules fired on, then deliver.

Per image, the rules that decided ``blur`` name categories and thresholds; every piece of
evidence with a box (``Evidence.box``) in one of those categories at or above the rule's
threshold, from a classifier the rule covers, is obscured as ``output.image.blur`` says. The
image is re-encoded in its own format and carried on as a ``RedactedArtifact`` whose
``redaction`` note goes into the C2PA manifest (``c2pa.edited``) and the audit record.

A ``blur`` rule that fired without any box to obscure (a classifier that scores the whole image)
cannot be honoured, so the image is blocked instead: fail closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from PIL import Image

from classifiers.base import Scores
from classifiers.image.redaction import Redaction, encode_image, redact_regions
from generators.base import Artifact
from policies.decision import Decision, Reason
from policies.schema import Action, ImageOutputSection

__all__ = ["RedactedArtifact", "RedactionOutcome", "redact_artifacts"]


@dataclass(frozen=True, slots=True)
class RedactedArtifact(Artifact):
    """A generated image after the ``blur`` action; ``redaction`` says what was done."""

    redaction: str = ""


@dataclass(frozen=True, slots=True)
class RedactionOutcome:
    artifacts: list[Artifact]
    notes: list[dict[str, object]]  # per blurred image: index, method, regions, categories
    unblurrable: list[Reason]  # blur rules that had no region to obscure: now blocks


def redact_artifacts(
    section: ImageOutputSection,
    artifacts: Sequence[Artifact],
    images: Sequence[Image.Image],
    per_image_scores: Sequence[Sequence[Scores]],
    per_image_decisions: Sequence[Decision],
) -> RedactionOutcome:
    """Apply ``blur`` to every image whose own decision is ``blur``. CPU-bound (pool)."""
    spec = section.blur
    redaction = Redaction(spec.method, spec.blocks, spec.radius, spec.padding)
    rules = {rule.id: rule for rule in section.rules}
    out: list[Artifact] = []
    notes: list[dict[str, object]] = []
    unblurrable: list[Reason] = []
    for index, (artifact, image, scores, decision) in enumerate(
        zip(artifacts, images, per_image_scores, per_image_decisions, strict=True)
    ):
        if decision.action is not Action.BLUR:
            out.append(artifact)
            continue
        boxes: list[tuple[int, int, int, int]] = []
        categories: set[str] = set()
        for reason in decision.reasons:
            if reason.action is not Action.BLUR:
                continue
            rule = rules[reason.rule]
            found = [
                evidence.box
                for item in scores
                if rule.classifiers is None or item.classifier in rule.classifiers
                for evidence in item.evidence
                if evidence.box is not None
                and evidence.category is rule.category
                and evidence.score >= rule.threshold
            ]
            if not found:
                unblurrable.append(_unblurrable(reason, index))
                continue
            boxes.extend(b for b in found if b not in boxes)
            categories.add(rule.category.value)
        if not boxes:
            out.append(artifact)
            continue
        data = encode_image(redact_regions(image, boxes, redaction), artifact.mime_type)
        note = (
            f"{redaction.method} {len(boxes)} region{'s' if len(boxes) != 1 else ''} "
            f"({', '.join(sorted(categories))})"
        )
        values = {f.name: getattr(artifact, f.name) for f in fields(artifact)}
        values.update(data=data, redaction=note)
        out.append(RedactedArtifact(**values))
        notes.append(
            {
                "image": index,
                "method": redaction.method,
                "regions": [list(b) for b in boxes],
                "categories": sorted(categories),
            }
        )
    return RedactionOutcome(out, notes, unblurrable)


def _unblurrable(reason: Reason, index: int) -> Reason:
    return Reason(
        stage=reason.stage,
        rule=reason.rule,
        category=reason.category,
        classifier=reason.classifier,
        score=reason.score,
        threshold=reason.threshold,
        action=Action.BLOCK,
        detail=f"image {index}: blur rule fired with no region to obscure; blocked instead",
    )
