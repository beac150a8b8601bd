"""NudeNet's labels, the categories the exposed ones score, and the context rule's defaults
(no model imports: policies validate against these tables without loading onnxruntime).

The context rule: a detection of a label in ``CONTEXT_LABELS`` counts only when the detector is
also confident (``CONTEXT_THRESHOLD``) about a *different* body part in the same image
(``BODY_PARTS``: a face, belly, armpits, feet, ...), unless its own score reaches
``ALONE_THRESHOLD``. The defaults come from 1,904 benign calibration images that share nothing
with the benchmark's benign set (``bench/nudenet_calibration.py``; figures and reasoning in
docs/output-safety.md): there, every exposed label fired alone on abstract shapes (breasts up to
0.83, male genitalia 0.51, buttocks 0.48), and no other body part was ever found beside them
with a score above 0.47.
"""

from __future__ import annotations

from collections.abc import Mapping

from classifiers.taxonomy import Category

__all__ = [
    "ALONE_THRESHOLD",
    "BODY_PARTS",
    "CONTEXT_LABELS",
    "CONTEXT_THRESHOLD",
    "EXPOSED_LABELS",
    "NUDENET_LABELS",
]

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

BODY_PARTS: Mapping[str, str] = {
    "FEMALE_GENITALIA_COVERED": "genitalia",
    "FACE_FEMALE": "face",
    "BUTTOCKS_EXPOSED": "buttocks",
    "FEMALE_BREAST_EXPOSED": "breast",
    "FEMALE_GENITALIA_EXPOSED": "genitalia",
    "MALE_BREAST_EXPOSED": "breast",
    "ANUS_EXPOSED": "anus",
    "FEET_EXPOSED": "feet",
    "BELLY_COVERED": "belly",
    "FEET_COVERED": "feet",
    "ARMPITS_COVERED": "armpits",
    "ARMPITS_EXPOSED": "armpits",
    "FACE_MALE": "face",
    "BELLY_EXPOSED": "belly",
    "MALE_GENITALIA_EXPOSED": "genitalia",
    "ANUS_COVERED": "anus",
    "FEMALE_BREAST_COVERED": "breast",
    "BUTTOCKS_COVERED": "buttocks",
}
"""Label → body part. For the context rule a covered breast is the same part as an exposed one
(the detector often gives one round shape both labels), so it is no corroboration."""
assert set(BODY_PARTS) == set(NUDENET_LABELS), "every label has a body part"

CONTEXT_LABELS: tuple[str, ...] = tuple(EXPOSED_LABELS)
"""Labels that need another body part in the image: by default every exposed label."""

CONTEXT_THRESHOLD = 0.5
"""How confident the detector must be about the other body part."""

ALONE_THRESHOLD = 0.9
"""A context label's detection at or above this counts even with no other body part found."""
