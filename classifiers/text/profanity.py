"""Profanity and insults: the linear model shipped in the ``alt-profanity-check`` wheel.

The model was trained on insults and profanity, not on sexual or violent content ("nude woman
on a beach" scores 0.04, "kill all humans" 0.79), so it is mapped to ``harassment`` only: its
probability is the harassment score, and nothing else is claimed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from classifiers.base import ClassifierError, ClassifierUnavailable, Evidence, Scores
from classifiers.taxonomy import Category

__all__ = ["ProfanityClassifier"]


class ProfanityClassifier:
    """Scores ``harassment`` with alt-profanity-check's probability of offensive language."""

    name: ClassVar[str] = "profanity"
    category: ClassVar[Category] = Category.HARASSMENT

    def __init__(self) -> None:
        try:
            import profanity_check
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise ClassifierUnavailable(f"alt-profanity-check is not installed: {exc}") from exc
        self._model: Any = profanity_check

    def classify(self, texts: Sequence[str]) -> list[Scores]:
        if not texts:
            return []
        try:
            probabilities = self._model.predict_prob(list(texts))
        except ValueError as exc:
            raise ClassifierError(f"profanity model failed: {exc}") from exc
        results = []
        for value in probabilities:
            score = round(min(1.0, max(0.0, float(value))), 6)
            evidence = (
                (Evidence(self.category, f"offensive-language probability {score:.3f}", score),)
                if score >= 0.5
                else ()
            )
            results.append(
                Scores(classifier=self.name, scores={self.category: score}, evidence=evidence)
            )
        return results
