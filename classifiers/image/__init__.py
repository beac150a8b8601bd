"""Image classifiers.

The names below are imported on first access (PEP 562): importing one image classifier module
(the PDQ hash banks, say) does not import NudeNet's.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from classifiers.image.nudenet import Detection, NudeNetClassifier

_WHERE = {
    "Detection": "classifiers.image.nudenet",
    "NudeNetClassifier": "classifiers.image.nudenet",
}

__all__ = ["Detection", "NudeNetClassifier"]


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'classifiers.image' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value
