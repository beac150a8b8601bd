"""Semantic concepts: MiniLM sentence embeddings compared with exemplars written in the policy.

Compliance staff describe what a category looks like in a few plain sentences ("a person being
stabbed, blood everywhere"); a prompt scores, per category, the cosine similarity of its
embedding to the nearest exemplar (clipped to [0, 1]). New concepts need no code and no
retraining: the exemplars are embedded once when the policy revision is loaded.

The prompt is embedded as written or, when normalisation had to undo obfuscation (homoglyphs,
leetspeak, spaced or repeated letters), de-obfuscated instead (``text_for_embedding``); the
evidence says which view and which exemplar the score came from. All texts of a call are
embedded in one batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from classifiers.base import Evidence, Scores
from classifiers.taxonomy import Category, concept_phrases
from classifiers.text.encoder import SentenceEncoder, shared_minilm_encoder
from classifiers.text.normalize import text_for_embedding

__all__ = ["SemanticConceptClassifier"]


class SemanticConceptClassifier:
    """Scores each configured category by similarity to its nearest policy exemplar."""

    name: ClassVar[str] = "semantic_concepts"

    def __init__(
        self,
        concepts: Mapping[Category, Sequence[str]],
        *,
        encoder: SentenceEncoder | None = None,
    ) -> None:
        self._encoder: SentenceEncoder = encoder if encoder is not None else shared_minilm_encoder()
        self._exemplars, owners = concept_phrases(concepts, "sentence")
        self._categories = tuple(dict.fromkeys(owners))
        self._owner_index = np.array(
            [self._categories.index(owner) for owner in owners], dtype=np.int64
        )
        self._matrix: NDArray[np.float64] = (
            self._encoder.encode(list(self._exemplars)).astype(np.float64)
            if self._exemplars
            else np.zeros((0, self._encoder.dimensions), dtype=np.float64)
        )

    @property
    def categories(self) -> tuple[Category, ...]:
        return self._categories

    def classify(self, texts: Sequence[str]) -> list[Scores]:
        if not texts:
            return []
        views = [[text_for_embedding(text)] for text in texts]
        flat = [view_text for candidates in views for _, view_text in candidates]
        # float64: a batch and a single prompt give the same scores to the last digit
        similarity = (
            self._encoder.encode(flat).astype(np.float64) @ self._matrix.T
            if self._exemplars
            else None
        )
        results: list[Scores] = []
        row = 0
        for candidates in views:
            scores = dict.fromkeys(self._categories, 0.0)
            best: dict[Category, tuple[float, str, str]] = {}
            for view, _ in candidates:
                if similarity is not None:
                    self._best_per_category(similarity[row], view, best)
                row += 1
            evidence = []
            for category, (value, view, exemplar) in best.items():
                scores[category] = value
                if value > 0.0:
                    detail = f"concept {exemplar!r} similarity {value:.3f} ({view} text)"
                    evidence.append(Evidence(category, detail, value))
            results.append(Scores(classifier=self.name, scores=scores, evidence=tuple(evidence)))
        return results

    def _best_per_category(
        self,
        similarities: NDArray[np.float64],
        view: str,
        best: dict[Category, tuple[float, str, str]],
    ) -> None:
        for position, category in enumerate(self._categories):
            members = np.flatnonzero(self._owner_index == position)
            top = int(members[int(np.argmax(similarities[members]))])
            value = float(min(1.0, max(0.0, float(similarities[top]))))
            if category not in best or value > best[category][0]:
                best[category] = (round(value, 6), view, self._exemplars[top])
