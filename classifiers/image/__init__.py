"""Image classifiers."""

from classifiers.image.nudenet import Detection, NudeNetClassifier

__all__ = ["Detection", "NudeNetClassifier"]
