"""A trained classifier head over MiniLM, shipped as a small weights file.

``classifiers/models/prompt_head.npz`` holds two parts whose per-category logits are averaged
(``mix`` weighs the second):

- a **linear** part: logistic regression over the MiniLM sentence embedding plus hashed word and
  character n-grams of the prompt (``classifiers.text.ngrams``; no vocabulary file), so the words
  that decide harm are not blurred away ("kill a *process*" / "kill a *person*");
- **fine-tuned top layers**: copies of MiniLM's top ``depth`` layers (three in the packaged
  head), fine-tuned on the head's data (``classifiers.text.finetuned.TopStack``) and run on the
  token vectors that enter the lowest of the originals, mean- and max-pooled, then a linear layer
  over that and the sentence embedding.
  Its attention reads phrases in context ("I don't hate X", "how do I kill a Python process"),
  which a frozen mean-pooled embedding loses.

Both read the one MiniLM forward pass that the semantic concepts use too (the original layers stay
frozen and keep running, so the concepts' embeddings do not change). The file also names its
categories, the SHA-256 of the MiniLM weights it was trained on (other weights are refused), the
n-gram settings and a decision threshold per category, chosen by cross-validation on the training
split; the packaged file's own SHA-256 is pinned here (``PROMPT_HEAD_SHA256``) and checked on
loading, like the MiniLM weights. It is trained by ``bench/train_prompt_head.py``; sources, splits
and held-out figures are in ``classifiers/models/PROMPT_HEAD.md``. Scores are the per-category
probabilities; an obfuscated prompt is read de-obfuscated (``text_for_embedding``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from numpy.typing import NDArray

from classifiers.base import ClassifierUnavailable, Evidence, Scores
from classifiers.taxonomy import Category, parse_category
from classifiers.text.encoder import (
    EMBEDDING_DIMENSIONS,
    MINILM_SHA256,
    LayeredTokenEncoder,
    _sha256,
    shared_minilm_encoder,
)
from classifiers.text.ngrams import NgramSpec, hashed_ngrams
from classifiers.text.normalize import text_for_embedding

if TYPE_CHECKING:
    from classifiers.text.finetuned import TopStack

__all__ = ["PROMPT_HEAD_FILE", "PROMPT_HEAD_SHA256", "PromptHeadClassifier", "PromptHeadWeights"]

PROMPT_HEAD_FILE = "prompt_head.npz"
# SHA-256 of the packaged classifiers/models/prompt_head.npz (bench/train_prompt_head.py prints it)
PROMPT_HEAD_SHA256 = "fec8ec95b17f28295d2b6ebc31d4b36ab89af45462350a0f365b920c8a2047a9"
FORMAT_VERSION = 4  # 4: ``block{i}_*`` arrays per fine-tuned layer (3: one layer, ``block_*``)
READABLE_FORMATS = (3, 4)
POOLED = 2 * EMBEDDING_DIMENSIONS  # the block's mean and max pooling

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
    # per fine-tuned layer, bottom first: classifiers.text.finetuned.block_shapes()
    blocks: tuple[Mapping[str, NDArray[np.float32]], ...]
    block_out: Array  # (POOLED + 384, categories)
    block_out_bias: Array  # (categories,)
    mix: float  # logit = (1 - mix) * linear + mix * block
    _module: TopStack = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from classifiers.text.finetuned import TopStack

        n, d = len(self.categories), EMBEDDING_DIMENSIONS
        expected = {
            "thresholds": (self.thresholds, (n,)),
            "linear_embedding": (self.linear_embedding, (n, d)),
            "linear_ngrams": (self.linear_ngrams, (n, self.ngram_spec.buckets)),
            "linear_bias": (self.linear_bias, (n,)),
            "block_out": (self.block_out, (POOLED + d, n)),
            "block_out_bias": (self.block_out_bias, (n,)),
        }
        for name, (array, shape) in expected.items():
            if array.shape != shape:
                raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"mix must lie in [0, 1], got {self.mix}")
        module = TopStack(self.blocks)  # checks every layer's arrays and shapes
        module.eval()
        object.__setattr__(self, "_module", module)

    @classmethod
    def load(cls, path: Path) -> PromptHeadWeights:
        with np.load(path, allow_pickle=False) as data:
            version = int(data["format"])
            if version not in READABLE_FORMATS:
                readable = " and ".join(str(v) for v in READABLE_FORMATS)
                raise ValueError(f"format {version}, this code reads formats {readable}")

            def f64(name: str) -> Array:
                return np.asarray(data[name], dtype=np.float64)

            layers: dict[int, dict[str, NDArray[np.float32]]] = {}
            for name in data.files:
                found = re.fullmatch(r"block(\d*)_(.+)", name)
                if found is None or name in ("block_out", "block_out_bias"):
                    continue
                if (found.group(1) == "") != (version == 3):
                    raise ValueError(f"array {name} does not belong in format {version}")
                index = int(found.group(1) or 0)
                layers.setdefault(index, {})[found.group(2)] = np.asarray(
                    data[name], dtype=np.float32
                )
            if sorted(layers) != list(range(len(layers))):
                raise ValueError(f"fine-tuned layers {sorted(layers)} are not numbered 0, 1, …")
            return cls(
                categories=tuple(str(n) for n in data["categories"]),
                encoder_sha256=str(data["encoder_sha256"]),
                thresholds=f64("thresholds"),
                ngram_spec=NgramSpec.from_array(f64("ngram_spec")),
                linear_embedding=f64("linear_embedding"),
                linear_ngrams=f64("linear_ngrams"),
                linear_bias=f64("linear_bias"),
                blocks=tuple(layers[index] for index in range(len(layers))),
                block_out=f64("block_out"),
                block_out_bias=f64("block_out_bias"),
                mix=float(data["mix"]),
            )

    def save(self, path: Path) -> None:
        """Write the weights (float16 for the n-gram table and the block, float32 for the rest)."""
        arrays: dict[str, NDArray[np.generic]] = {
            "format": np.array(FORMAT_VERSION),
            "categories": np.array(self.categories),
            "encoder_sha256": np.array(self.encoder_sha256),
            "thresholds": self.thresholds.astype(np.float32),
            "ngram_spec": self.ngram_spec.as_array(),
            "linear_embedding": self.linear_embedding.astype(np.float32),
            "linear_ngrams": self.linear_ngrams.astype(np.float16),
            "linear_bias": self.linear_bias.astype(np.float32),
            "block_out": self.block_out.astype(np.float32),
            "block_out_bias": self.block_out_bias.astype(np.float32),
            "mix": np.array(self.mix),
        }
        for index, layer in enumerate(self.blocks):
            for name, value in layer.items():
                arrays[f"block{index}_{name}"] = value.astype(np.float16)
        np.savez_compressed(path, allow_pickle=False, **arrays)

    @property
    def depth(self) -> int:
        """How many of MiniLM's top layers the head runs fine-tuned copies of."""
        return len(self.blocks)

    def logits(
        self, texts: Sequence[str], embeddings: Array, tokens: Sequence[NDArray[np.floating]]
    ) -> Array:
        """Per-category logits, ``(len(texts), categories)``. ``texts`` are what the n-grams
        read, ``embeddings`` the L2-normalised sentence vectors, ``tokens`` the token vectors
        that enter the lowest fine-tuned layer (``encode_layer_input(texts, self.depth)``)."""
        linear = embeddings @ self.linear_embedding.T + self.linear_bias
        for row, text in enumerate(texts):
            indices, values = hashed_ngrams(text, self.ngram_spec)
            linear[row] += self.linear_ngrams[:, indices] @ values
        pooled = self.block_features(tokens)
        block = np.hstack([pooled, embeddings]) @ self.block_out + self.block_out_bias
        result: Array = (1.0 - self.mix) * linear + self.mix * block
        return result

    def block_features(self, tokens: Sequence[NDArray[np.floating]]) -> Array:
        """The fine-tuned layers' pooled output per prompt, ``(len(tokens), 768)``.

        Each prompt runs on its own (no padding), so a batch scores exactly like single prompts
        (the classifier contract; grouping prompts of similar length, padded and masked, cut a
        batch of 16 from a mean 5.5 to 3 ms a prompt but moved scores by float rounding).
        It runs in torch, whose thread pool MiniLM already uses: numpy's BLAS would start
        threads of its own that keep spinning after the call and slow the next MiniLM pass on a
        small machine (measured: twice the prompt-stage latency on 2 cores)."""
        import torch

        block = self._module
        pooled = np.zeros((len(tokens), POOLED))
        with torch.inference_mode():
            for row, vectors in enumerate(tokens):
                x = torch.from_numpy(np.asarray(vectors, dtype=np.float32))[None]
                valid = torch.ones((1, x.shape[1]), dtype=torch.bool)
                pooled[row] = block(x, valid)[0].numpy()
        return pooled


class PromptHeadClassifier:
    """Per-category probabilities from the trained head (linear n-gram + fine-tuned layer).

    ``expected_sha256`` is the digest the weights file must have: the packaged file's pinned
    digest by default; pass the digest of a file you trained yourself, or ``None`` to skip the
    check for a file you trust by other means."""

    name: ClassVar[str] = "prompt_head"

    def __init__(
        self,
        *,
        weights_path: str | Path | None = None,
        encoder: LayeredTokenEncoder | None = None,
        expected_sha256: str | None = PROMPT_HEAD_SHA256,
    ) -> None:
        path = Path(weights_path) if weights_path is not None else _packaged_weights()
        if expected_sha256 is not None:
            try:
                digest = _sha256(path)
            except OSError as exc:
                raise ClassifierUnavailable(
                    f"prompt head weights unreadable at {path}: {exc}"
                ) from exc
            if digest != expected_sha256:
                raise ClassifierUnavailable(
                    f"prompt head weights at {path} have sha256 {digest[:12]}…, expected "
                    f"{expected_sha256[:12]}…; refusing unverified weights"
                )
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
    def depth(self) -> int:
        """How many of MiniLM's top layers the head runs fine-tuned copies of."""
        return self._weights.depth

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
        tokens = self._encoder.encode_layer_input(flat, self._weights.depth)
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
