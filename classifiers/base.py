"""Classifier protocols and the values they return.

Classifiers only *score*; they never decide what happens (that is ``policies``). Every backend
declares a unique ``name`` and returns one ``Scores`` per input, in input order. ``classify`` is
synchronous because it is CPU-bound: the gateway's pipeline runs it in the worker pool, never on
the event loop.

Exception tree::

    GenGuardError (genguard_errors)
    └── ClassifierError           a classifier could not score its input
        ├── ClassifierUnavailable a backend's model or dependency is missing
        └── UnknownClassifierError no backend of that kind has that name (also a KeyError)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Protocol

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from classifiers.taxonomy import Category
from genguard_errors import GenGuardError

__all__ = [
    "AudioClassifier",
    "AudioClip",
    "ClassifierError",
    "ClassifierUnavailable",
    "Evidence",
    "ImageClassifier",
    "Scores",
    "TextClassifier",
    "UnknownClassifierError",
]


class ClassifierError(GenGuardError):
    """A classifier could not score its input."""


class ClassifierUnavailable(ClassifierError):
    """A backend's model file or optional dependency is missing."""


class UnknownClassifierError(ClassifierError, KeyError):
    """No registered backend of the requested kind has the requested name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why a category scored what it did: a matched term, a detector box, a transcript span.

    ``box``: for detections in an image, the region as (x, y, width, height) pixels.
    """

    category: Category
    detail: str
    score: float
    box: tuple[int, int, int, int] | None = None


@dataclass(frozen=True, slots=True)
class Scores:
    """Per-category scores in [0, 1] from one classifier for one input.

    Categories a classifier does not cover are absent (not zero): the evaluator treats absence
    as "no evidence" and ``/v1/moderations`` fills the rest of the taxonomy with 0.0.
    """

    classifier: str
    scores: Mapping[Category, float] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()

    def __post_init__(self) -> None:
        for category, value in self.scores.items():
            if not isinstance(category, Category):
                raise TypeError(f"{self.classifier}: score key {category!r} is not a Category")
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{self.classifier}: score {category}={value} outside [0, 1]")
        object.__setattr__(self, "scores", MappingProxyType(dict(self.scores)))

    def get(self, category: Category) -> float:
        return self.scores.get(category, 0.0)

    def to_json(self) -> dict[str, object]:
        return {
            "classifier": self.classifier,
            "scores": {c.value: round(v, 6) for c, v in self.scores.items()},
            "evidence": [
                {
                    "category": e.category.value,
                    "detail": e.detail,
                    "score": round(e.score, 6),
                    **({"box": list(e.box)} if e.box is not None else {}),
                }
                for e in self.evidence
            ],
        }


@dataclass(frozen=True, slots=True)
class AudioClip:
    """Mono PCM audio: float32 samples in [-1, 1] at ``sample_rate`` Hz."""

    samples: NDArray[np.float32]
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return float(len(self.samples)) / float(self.sample_rate)


class TextClassifier(Protocol):
    name: ClassVar[str]

    def classify(self, texts: Sequence[str]) -> list[Scores]:
        """CPU-bound; one ``Scores`` per text, in order. Raises ``ClassifierError``."""
        ...


class ImageClassifier(Protocol):
    name: ClassVar[str]

    def classify(self, images: Sequence[Image.Image]) -> list[Scores]:
        """CPU-bound; one ``Scores`` per image, in order. Raises ``ClassifierError``."""
        ...


class AudioClassifier(Protocol):
    name: ClassVar[str]

    def classify(self, clips: Sequence[AudioClip]) -> list[Scores]:
        """CPU-bound; one ``Scores`` per clip, in order. Raises ``ClassifierError``."""
        ...
