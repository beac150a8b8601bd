"""Image classifiers.

The names below are imported on first access (PEP 562): importing one image classifier module
(the PDQ hash banks, say) does not import NudeNet's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genguard_lazy import lazy_exports

if TYPE_CHECKING:
    from classifiers.image.nudenet import Detection, NudeNetClassifier

_WHERE = {
    "Detection": "classifiers.image.nudenet",
    "NudeNetClassifier": "classifiers.image.nudenet",
}

__all__ = ["Detection", "NudeNetClassifier"]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
