"""NudeNet's exposed-body-part labels and the categories each one scores (no model imports).

Policies validate their per-label thresholds against this table without loading onnxruntime.
"""

from __future__ import annotations

from collections.abc import Mapping

from classifiers.taxonomy import Category

__all__ = ["EXPOSED_LABELS", "NUDENET_LABELS"]

NUDENET_LABELS = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
"""Every label of the ``320n.onnx`` detector, in output order."""

EXPOSED_LABELS: Mapping[str, tuple[Category, ...]] = {
    "FEMALE_BREAST_EXPOSED": (Category.NUDITY,),
    "BUTTOCKS_EXPOSED": (Category.NUDITY,),
    "FEMALE_GENITALIA_EXPOSED": (Category.NUDITY, Category.SEXUAL),
    "MALE_GENITALIA_EXPOSED": (Category.NUDITY, Category.SEXUAL),
    "ANUS_EXPOSED": (Category.NUDITY, Category.SEXUAL),
}
