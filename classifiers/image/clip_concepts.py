"""CLIP concepts: image embeddings compared with text concepts written in the policy.

Compliance staff describe per category what an image looks like in a few plain phrases
(``output.image.concepts: {violence: ["a photo of a man being stabbed"]}``). An image scores, per
category, the cosine similarity of its CLIP embedding to the nearest concept's text embedding:

    score = min(1, max(0, cos(image, concept)))    rounded to 4 decimals

so an unrelated concept scores 0 and the score is the raw cosine otherwise. CLIP cosines are
small (ViT-B-32: matching captions ~0.25-0.35, unrelated ~0.1-0.2), so thresholds for this
classifier are set in that range through the normal rules. Rounding to 4 decimals makes a
batch and one image at a time give the same scores (float32 batches differ by ~1e-7).

Optionally a LAION-style MLP head (the CLIP-based NSFW detector shape) scores one category
from the same image embedding: ``Linear`` layers read from a torch state dict in key order,
ReLU between them, a sigmoid on the single output.

The model is an open_clip architecture with weights from a local checkpoint (never
downloaded); concept texts are embedded once per policy revision; images are embedded in one
batch per call.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from classifiers.base import ClassifierUnavailable, Evidence, Scores
from classifiers.taxonomy import Category, concept_phrases, parse_category

__all__ = ["ClipConceptClassifier", "ClipHead", "ClipModel"]

_DECIMALS = 4


class ClipModel:
    """An open_clip model with local weights; encodes images and texts to unit vectors.

    Read-only after construction, so one instance is shared by every policy revision.
    """

    def __init__(self, architecture: str, weights: Path | str) -> None:
        try:
            import open_clip
            import torch
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise ClassifierUnavailable(f"clip_concepts needs open_clip_torch: {exc}") from exc
        weights = Path(weights)
        if architecture not in open_clip.list_models():
            raise ClassifierUnavailable(
                f"unknown open_clip architecture {architecture!r} "
                "(GENGUARD_CLASSIFIERS__CLIP_MODEL), e.g. ViT-B-32"
            )
        if not weights.is_file():
            raise ClassifierUnavailable(
                f"CLIP weights {str(weights)!r} (GENGUARD_CLASSIFIERS__CLIP_WEIGHTS) not found"
            )
        model, _, preprocess = open_clip.create_model_and_transforms(architecture, pretrained=None)
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
                state = state["state_dict"]
            state = {str(k).removeprefix("module."): v for k, v in state.items()}
            model.load_state_dict(state, strict=True)
        except (RuntimeError, OSError, ValueError, AttributeError, pickle.UnpicklingError) as exc:
            raise ClassifierUnavailable(
                f"CLIP weights {str(weights)!r} do not fit architecture {architecture!r}: {exc}"
            ) from exc
        model.eval()
        self._torch = torch
        self._model = model
        self._preprocess = preprocess
        self._tokenizer = open_clip.get_tokenizer(architecture)
        self.architecture = architecture
        self.dimensions = int(model.text_projection.shape[-1])

    def encode_images(self, images: Sequence[Image.Image]) -> NDArray[np.float32]:
        """One unit row per image, all in one batch."""
        torch = self._torch
        batch = torch.stack([self._preprocess(image.convert("RGB")) for image in images])
        with torch.inference_mode():
            features = self._model.encode_image(batch, normalize=True)
        return np.asarray(features.float().numpy(), dtype=np.float32)

    def encode_texts(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One unit row per text, all in one batch."""
        torch = self._torch
        with torch.inference_mode():
            features = self._model.encode_text(self._tokenizer(list(texts)), normalize=True)
        return np.asarray(features.float().numpy(), dtype=np.float32)


class ClipHead:
    """A small MLP on the unit CLIP image embedding giving one probability (LAION-style).

    The state dict holds ``<prefix><index>.weight`` / ``.bias`` of ``Linear`` layers (other
    modules such as dropout have no parameters and are skipped); layers run in index order with
    ReLU between them and a sigmoid on the single output.
    """

    def __init__(self, path: Path | str, *, dimensions: int) -> None:
        import torch

        path = Path(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, OSError, ValueError, pickle.UnpicklingError) as exc:
            raise ClassifierUnavailable(f"CLIP head {str(path)!r} cannot be read: {exc}") from exc
        if not isinstance(state, dict):
            raise ClassifierUnavailable(f"CLIP head {str(path)!r} is not a state dict")
        weights = sorted(
            (k for k in state if k.endswith(".weight") and state[k].ndim == 2), key=_layer_index
        )
        layers: list[tuple[NDArray[np.float64], NDArray[np.float64]]] = []
        width = dimensions
        for key in weights:
            matrix = state[key].double().numpy()
            bias_key = key.removesuffix("weight") + "bias"
            bias = state[bias_key].double().numpy() if bias_key in state else None
            if matrix.shape[1] != width:
                raise ClassifierUnavailable(
                    f"CLIP head {str(path)!r}: layer {key!r} takes {matrix.shape[1]} inputs, "
                    f"expected {width}"
                )
            width = matrix.shape[0]
            layers.append((matrix, bias if bias is not None else np.zeros(width)))
        if not layers or width != 1:
            raise ClassifierUnavailable(
                f"CLIP head {str(path)!r} must be Linear layers ending in one output"
            )
        self._layers = layers

    def __call__(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        hidden = embeddings.astype(np.float64)
        for position, (matrix, bias) in enumerate(self._layers):
            hidden = hidden @ matrix.T + bias
            if position < len(self._layers) - 1:
                hidden = np.maximum(hidden, 0.0)
        return np.asarray(1.0 / (1.0 + np.exp(-hidden[:, 0])), dtype=np.float64)


def _layer_index(key: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", key))


class ClipConceptClassifier:
    """Scores each configured category by similarity to its nearest policy concept."""

    name: ClassVar[str] = "clip_concepts"

    def __init__(
        self,
        concepts: Mapping[Category, Sequence[str]],
        *,
        model: ClipModel,
        head: ClipHead | None = None,
        head_category: Category | str = Category.SEXUAL,
    ) -> None:
        self._model = model
        self._head = head
        self._head_category = parse_category(str(head_category))
        self._concepts, self._owners = concept_phrases(concepts, "phrase")
        self._categories = tuple(dict.fromkeys(self._owners))
        # embedded once, here: the backends build one instance per policy revision
        self._matrix: NDArray[np.float32] = (
            model.encode_texts(self._concepts)
            if self._concepts
            else np.zeros((0, model.dimensions), np.float32)
        )

    @property
    def categories(self) -> tuple[Category, ...]:
        return self._categories

    def classify(self, images: Sequence[Image.Image]) -> list[Scores]:
        if not images:
            return []
        embeddings = self._model.encode_images(images)
        similarity = embeddings @ self._matrix.T
        head = self._head(embeddings) if self._head is not None else None
        results: list[Scores] = []
        for row in range(len(images)):
            scores: dict[Category, float] = {}
            evidence: list[Evidence] = []
            for category in self._categories:
                members = [i for i, owner in enumerate(self._owners) if owner == category]
                top = max(members, key=lambda i: float(similarity[row, i]))
                value = _score(float(similarity[row, top]))
                scores[category] = value
                if value > 0.0:
                    detail = f"concept {self._concepts[top]!r} similarity {value:.4f}"
                    evidence.append(Evidence(category, detail, value))
            if head is not None:
                value = _score(float(head[row]))
                scores[self._head_category] = max(scores.get(self._head_category, 0.0), value)
                evidence.append(Evidence(self._head_category, f"CLIP head {value:.4f}", value))
            results.append(Scores(classifier=self.name, scores=scores, evidence=tuple(evidence)))
        return results


def _score(value: float) -> float:
    return round(min(1.0, max(0.0, value)), _DECIMALS)
