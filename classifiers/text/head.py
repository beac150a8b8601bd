"""A trained classifier head over MiniLM embeddings, shipped as a small weights file.

``classifiers/models/prompt_head.npz`` holds one logistic-regression row per category (weights
over the 384 MiniLM dimensions and a bias), the categories' names, the SHA-256 of the MiniLM
weights it was trained on, and the decision threshold chosen on the training split. It is
trained by ``bench/train_prompt_head.py``; sources, splits and held-out figures are in
``classifiers/models/PROMPT_HEAD.md``. Scores are the per-category probabilities; like the
semantic concepts, an obfuscated prompt is read de-obfuscated (``text_for_embedding``).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from classifiers.base import ClassifierUnavailable, Evidence, Scores
from classifiers.taxonomy import Category, parse_category
from classifiers.text.encoder import MINILM_SHA256, SentenceEncoder, shared_minilm_encoder
from classifiers.text.normalize import text_for_embedding

__all__ = ["PROMPT_HEAD_FILE", "PromptHeadClassifier"]

PROMPT_HEAD_FILE = "prompt_head.npz"


class PromptHeadClassifier:
    """Per-category probabilities from a logistic-regression head on MiniLM embeddings."""

    name: ClassVar[str] = "prompt_head"

    def __init__(
        self, *, weights_path: str | Path | None = None, encoder: SentenceEncoder | None = None
    ) -> None:
        path = Path(weights_path) if weights_path is not None else _packaged_weights()
        try:
            with np.load(path, allow_pickle=False) as data:
                weights = np.asarray(data["weights"], dtype=np.float64)
                bias = np.asarray(data["bias"], dtype=np.float64)
                names = [str(n) for n in data["categories"]]
                encoder_sha = str(data["encoder_sha256"])
                self.threshold = float(data["threshold"])
        except (OSError, KeyError, ValueError) as exc:
            raise ClassifierUnavailable(f"prompt head weights unreadable at {path}: {exc}") from exc
        if encoder_sha != MINILM_SHA256:
            raise ClassifierUnavailable(
                f"prompt head at {path} was trained on MiniLM weights {encoder_sha[:12]}…, "
                f"not the verified {MINILM_SHA256[:12]}…"
            )
        if weights.shape != (len(names), 384) or bias.shape != (len(names),):
            raise ClassifierUnavailable(f"prompt head at {path} has inconsistent shapes")
        self._categories = tuple(parse_category(n) for n in names)
        self._weights: NDArray[np.float64] = weights
        self._bias: NDArray[np.float64] = bias
        self._encoder = encoder if encoder is not None else shared_minilm_encoder()

    @property
    def categories(self) -> tuple[Category, ...]:
        return self._categories

    def classify(self, texts: Sequence[str]) -> list[Scores]:
        if not texts:
            return []
        flat = [text_for_embedding(text)[1] for text in texts]
        # float64: a batch and a single prompt give the same scores to the last digit
        logits = self._encoder.encode(flat).astype(np.float64) @ self._weights.T + self._bias
        probabilities = 1.0 / (1.0 + np.exp(-logits))
        results = []
        for values in probabilities:
            scores = {c: round(float(v), 6) for c, v in zip(self._categories, values, strict=True)}
            evidence = tuple(
                Evidence(c, f"head probability {v:.3f}", v)
                for c, v in scores.items()
                if v >= self.threshold
            )
            results.append(Scores(classifier=self.name, scores=scores, evidence=evidence))
        return results


def _packaged_weights() -> Path:
    return Path(str(resources.files("classifiers").joinpath("models", PROMPT_HEAD_FILE)))
