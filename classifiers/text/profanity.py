"""Profanity and insults: the linear model shipped in the ``alt-profanity-check`` wheel.

The model was trained on insults and profanity, not on sexual or violent content ("nude woman
on a beach" scores 0.04, "kill all humans" 0.79), so it is mapped to ``harassment`` only: its
probability is the harassment score, and nothing else is claimed.

The wheel's model is scikit-learn's ``CalibratedClassifierCV`` over five linear SVMs, each with a
sigmoid calibration; its ``predict_proba`` costs about 3 ms per call however short the text
(input validation per fold), a fifth of the prompt stage's budget. ``ProfanityClassifier`` reads
the fitted weights once and computes the same probability as one sparse product: the mean over
the folds of ``1 / (1 + exp(a * (w . x + c) + b))`` (tests check it against the wheel's own
``predict_prob``). A model of another shape falls back to ``predict_prob``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

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
        self._folds = _calibrated_folds(profanity_check.profanity_check.model)

    def classify(self, texts: Sequence[str]) -> list[Scores]:
        if not texts:
            return []
        try:
            probabilities = self.probabilities(texts)
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

    def probabilities(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """The wheel's probability of offensive language per text (``predict_prob``'s numbers)."""
        if self._folds is None:
            return np.asarray(self._model.predict_prob(list(texts)), dtype=np.float64)
        weights, intercepts, slopes, offsets = self._folds
        features = self._model.profanity_check.vectorizer.transform(list(texts))
        decisions = np.asarray(features @ weights) + intercepts  # (texts, folds)
        calibrated = 1.0 / (1.0 + np.exp(slopes * decisions + offsets))
        result: NDArray[np.float64] = calibrated.mean(axis=1)
        return result


def _calibrated_folds(
    model: Any,
) -> tuple[NDArray[np.float64], ...] | None:
    """(weights (features, folds), intercepts, sigmoid slopes, sigmoid offsets) of a binary
    ``CalibratedClassifierCV`` of linear models with sigmoid calibration; None otherwise."""
    try:
        folds = list(model.calibrated_classifiers_)
        if list(model.classes_) != [0, 1] or model.method != "sigmoid":
            return None
        weights, intercepts, slopes, offsets = [], [], [], []
        for fold in folds:
            [calibrator] = fold.calibrators
            weights.append(np.asarray(fold.estimator.coef_, dtype=np.float64).ravel())
            intercepts.append(float(np.ravel(fold.estimator.intercept_)[0]))
            slopes.append(float(calibrator.a_))
            offsets.append(float(calibrator.b_))
    except (AttributeError, TypeError, ValueError):
        return None
    return (
        np.stack(weights, axis=1),
        np.array(intercepts),
        np.array(slopes),
        np.array(offsets),
    )
