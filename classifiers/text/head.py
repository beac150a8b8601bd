"""A trained classifier head over MiniLM, shipped as a small weights file.

``classifiers/models/prompt_head.npz`` holds two parts whose per-category logits are averaged
(``mix`` weighs the second):

- a **linear** part: logistic regression over the MiniLM sentence embedding plus hashed word and
  character n-grams of the prompt (``classifiers.text.ngrams``; no vocabulary file), so the words
  that decide harm are not blurred away ("kill a *process*" / "kill a *person*");
- a **convolutional** part: one 1-D convolution (width 3) over MiniLM's contextual token vectors,
  max-pooled over the prompt, then a linear layer over that and the sentence embedding. It reads
  phrases in context ("I don't hate X", "saying X are vermin is vile"), which mean pooling loses.

Both come from the one MiniLM forward pass that the semantic concepts use too. The file also
names its categories, the SHA-256 of the MiniLM weights it was trained on (other weights are
refused), the n-gram settings and a decision threshold per category, chosen by cross-validation
on the training split. It is trained by ``bench/train_prompt_head.py``; sources, splits and
held-out figures are in ``classifiers/models/PROMPT_HEAD.md``. Scores are the per-category
probabilities; an obfuscated prompt is read de-obfuscated (``text_for_embedding``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from classifiers.base import ClassifierUnavailable, Evidence, Scores
from classifiers.taxonomy import Category, parse_category
from classifiers.text.encoder import (
    EMBEDDING_DIMENSIONS,
    MINILM_SHA256,
    TokenEncoder,
    shared_minilm_encoder,
)
from classifiers.text.ngrams import NgramSpec, hashed_ngrams
from classifiers.text.normalize import text_for_embedding

__all__ = ["PROMPT_HEAD_FILE", "PromptHeadClassifier", "PromptHeadWeights"]

PROMPT_HEAD_FILE = "prompt_head.npz"
FORMAT_VERSION = 2
CONV_WIDTH = 3

Array = NDArray[np.float64]


@dataclass(frozen=True)
class PromptHeadWeights:
    """The arrays of a trained head and the arithmetic that turns a prompt into logits."""

    categories: tuple[str, ...]
    encoder_sha256: str
    thresholds: Array  # (categories,)
    ngram_spec: NgramSpec
    linear_embedding: Array  # (categories, 384)
    linear_ngrams: Array  # (categories, buckets)
    linear_bias: Array  # (categories,)
    conv_weight: Array  # (CONV_WIDTH * 384, channels): window [t-1, t, t+1] -> channels
    conv_bias: Array  # (channels,)
    conv_out: Array  # (channels + 384, categories)
    conv_out_bias: Array  # (categories,)
    mix: float  # logit = (1 - mix) * linear + mix * convolutional

    def __post_init__(self) -> None:
        n, d = len(self.categories), EMBEDDING_DIMENSIONS
        channels = self.conv_bias.shape[0] if self.conv_bias.ndim == 1 else -1
        expected = {
            "thresholds": (self.thresholds, (n,)),
            "linear_embedding": (self.linear_embedding, (n, d)),
            "linear_ngrams": (self.linear_ngrams, (n, self.ngram_spec.buckets)),
            "linear_bias": (self.linear_bias, (n,)),
            "conv_weight": (self.conv_weight, (CONV_WIDTH * d, channels)),
            "conv_out": (self.conv_out, (channels + d, n)),
            "conv_out_bias": (self.conv_out_bias, (n,)),
        }
        for name, (array, shape) in expected.items():
            if array.shape != shape:
                raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"mix must lie in [0, 1], got {self.mix}")

    @classmethod
    def load(cls, path: Path) -> PromptHeadWeights:
        with np.load(path, allow_pickle=False) as data:
            version = int(data["format"])
            if version != FORMAT_VERSION:
                raise ValueError(f"format {version}, this code reads {FORMAT_VERSION}")

            def f64(name: str) -> Array:
                return np.asarray(data[name], dtype=np.float64)

            return cls(
                categories=tuple(str(n) for n in data["categories"]),
                encoder_sha256=str(data["encoder_sha256"]),
                thresholds=f64("thresholds"),
                ngram_spec=NgramSpec.from_array(f64("ngram_spec")),
                linear_embedding=f64("linear_embedding"),
                linear_ngrams=f64("linear_ngrams"),
                linear_bias=f64("linear_bias"),
                conv_weight=f64("conv_weight"),
                conv_bias=f64("conv_bias"),
                conv_out=f64("conv_out"),
                conv_out_bias=f64("conv_out_bias"),
                mix=float(data["mix"]),
            )

    def save(self, path: Path) -> None:
        """Write the weights (float16 for the large n-gram table, float32 for the rest)."""
        np.savez_compressed(
            path,
            format=np.array(FORMAT_VERSION),
            categories=np.array(self.categories),
            encoder_sha256=np.array(self.encoder_sha256),
            thresholds=self.thresholds.astype(np.float32),
            ngram_spec=self.ngram_spec.as_array(),
            linear_embedding=self.linear_embedding.astype(np.float32),
            linear_ngrams=self.linear_ngrams.astype(np.float16),
            linear_bias=self.linear_bias.astype(np.float32),
            conv_weight=self.conv_weight.astype(np.float32),
            conv_bias=self.conv_bias.astype(np.float32),
            conv_out=self.conv_out.astype(np.float32),
            conv_out_bias=self.conv_out_bias.astype(np.float32),
            mix=np.array(self.mix),
        )

    def logits(
        self, texts: Sequence[str], embeddings: Array, tokens: Sequence[NDArray[np.floating]]
    ) -> Array:
        """Per-category logits, ``(len(texts), categories)``. ``texts`` are what the n-grams
        read, ``embeddings`` the L2-normalised sentence vectors, ``tokens`` the token vectors."""
        linear = embeddings @ self.linear_embedding.T + self.linear_bias
        pooled = np.zeros((len(texts), self.conv_bias.shape[0]))
        for row, (text, vectors) in enumerate(zip(texts, tokens, strict=True)):
            indices, values = hashed_ngrams(text, self.ngram_spec)
            linear[row] += self.linear_ngrams[:, indices] @ values
            pooled[row] = self.conv_features(np.asarray(vectors, dtype=np.float64))
        conv = np.hstack([pooled, embeddings]) @ self.conv_out + self.conv_out_bias
        result: Array = (1.0 - self.mix) * linear + self.mix * conv
        return result

    def conv_features(self, vectors: Array) -> Array:
        """Max over the prompt of ReLU(convolution) of its token vectors (zero-padded ends).

        The one sizeable product runs in torch, whose thread pool MiniLM already uses: numpy's
        BLAS would start threads of its own that keep spinning after the call and slow the next
        MiniLM pass on a small machine (measured: twice the prompt-stage latency on 2 cores)."""
        import torch

        pad = CONV_WIDTH // 2
        padded = np.vstack(
            [np.zeros((pad, vectors.shape[1])), vectors, np.zeros((pad, vectors.shape[1]))]
        )
        windows = np.hstack([padded[i : i + len(vectors)] for i in range(CONV_WIDTH)])
        with torch.inference_mode():
            product = torch.from_numpy(windows) @ torch.from_numpy(self.conv_weight)
            activations = torch.relu(product + torch.from_numpy(self.conv_bias))
            pooled: Array = activations.amax(dim=0).numpy()
        return pooled


class PromptHeadClassifier:
    """Per-category probabilities from the trained head (linear n-gram + token convolution)."""

    name: ClassVar[str] = "prompt_head"

    def __init__(
        self, *, weights_path: str | Path | None = None, encoder: TokenEncoder | None = None
    ) -> None:
        path = Path(weights_path) if weights_path is not None else _packaged_weights()
        try:
            weights = PromptHeadWeights.load(path)
        except (OSError, KeyError, ValueError) as exc:
            raise ClassifierUnavailable(f"prompt head weights unreadable at {path}: {exc}") from exc
        if weights.encoder_sha256 != MINILM_SHA256:
            raise ClassifierUnavailable(
                f"prompt head at {path} was trained on MiniLM weights "
                f"{weights.encoder_sha256[:12]}…, not the verified {MINILM_SHA256[:12]}…"
            )
        self._weights = weights
        self._categories = tuple(parse_category(n) for n in weights.categories)
        self._encoder = encoder if encoder is not None else shared_minilm_encoder()

    @property
    def categories(self) -> tuple[Category, ...]:
        return self._categories

    @property
    def thresholds(self) -> Mapping[Category, float]:
        """The operating point per category chosen in training (the default policy's rules)."""
        return {
            c: round(float(t), 4)
            for c, t in zip(self._categories, self._weights.thresholds, strict=True)
        }

    def classify(self, texts: Sequence[str]) -> list[Scores]:
        if not texts:
            return []
        flat = [text_for_embedding(text)[1] for text in texts]
        # float64: a batch and a single prompt give the same scores to the last digit
        embeddings = self._encoder.encode(flat).astype(np.float64)
        tokens = self._encoder.encode_tokens(flat)
        probabilities = 1.0 / (1.0 + np.exp(-self._weights.logits(texts, embeddings, tokens)))
        thresholds = self.thresholds
        results = []
        for values in probabilities:
            scores = {c: round(float(v), 6) for c, v in zip(self._categories, values, strict=True)}
            evidence = tuple(
                Evidence(c, f"head probability {v:.3f}", v)
                for c, v in scores.items()
                if v >= thresholds[c]
            )
            results.append(Scores(classifier=self.name, scores=scores, evidence=evidence))
        return results


def _packaged_weights() -> Path:
    return Path(str(resources.files("classifiers").joinpath("models", PROMPT_HEAD_FILE)))
