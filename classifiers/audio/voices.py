"""``protected_voice``: does this speech sound like an enrolled (protected) speaker?

Speaker embeddings come from Resemblyzer's GE2E encoder (``pretrained.pt`` ships in its wheel):
256 floats, L2-normalised, so the cosine similarity of two clips is their dot product. The
enrolled voices live in a ``VoiceIndex`` held in memory and replaced as a whole when the bank in
Redis changes (``classifiers.audio.voice_bank``); a classification reads one consistent snapshot.
The score for ``protected-person`` is the highest cosine similarity to any enrolled voice (0 when
the bank is empty or the clip holds too little speech); the policy's threshold decides. The
default threshold and the figures behind it are in docs/output-safety.md.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from classifiers.base import AudioClip, ClassifierError, ClassifierUnavailable, Evidence, Scores
from classifiers.taxonomy import Category

__all__ = [
    "EMBEDDING_SIZE",
    "MIN_SPEECH_S",
    "ProtectedVoiceClassifier",
    "VoiceEncoder",
    "VoiceIndex",
    "VoiceSnapshot",
    "shared_voice_encoder",
]

EMBEDDING_SIZE = 256
ENCODER_RATE = 16_000
MIN_SPEECH_S = 0.5  # after silence trimming; shorter clips are not compared


class VoiceEncoder:
    """Resemblyzer's speaker encoder on the CPU (weights from its wheel)."""

    def __init__(self) -> None:
        try:
            import resemblyzer
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise ClassifierUnavailable(f"resemblyzer is not installed: {exc}") from exc
        self._resemblyzer: Any = resemblyzer
        self._encoder: Any = resemblyzer.VoiceEncoder("cpu", verbose=False)
        # warm up: torch's first call is ~100x slower than the next ones
        noise = np.random.default_rng(0).standard_normal(ENCODER_RATE * 2).astype(np.float32)
        self._encoder.embed_utterance(noise * 0.1)

    def embed(self, clip: AudioClip) -> NDArray[np.float32] | None:
        """The clip's unit-length speaker embedding, or None when it holds too little speech."""
        if clip.duration_s < MIN_SPEECH_S:
            return None
        try:
            wav = self._resemblyzer.preprocess_wav(
                np.asarray(clip.samples, dtype=np.float32), source_sr=clip.sample_rate
            )
            if len(wav) < MIN_SPEECH_S * ENCODER_RATE:
                return None
            embedding = self._encoder.embed_utterance(wav)
        except (ValueError, RuntimeError) as exc:
            raise ClassifierError(f"resemblyzer could not embed the clip: {exc}") from exc
        vector = np.asarray(embedding, dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else None


@functools.cache
def shared_voice_encoder() -> VoiceEncoder:
    """The process's one speaker encoder, loaded on first use (read-only afterwards)."""
    return VoiceEncoder()


@dataclass(frozen=True, slots=True)
class VoiceSnapshot:
    """Enrolled voices at one bank version: names and a (n, 256) matrix of unit vectors."""

    version: int
    names: tuple[str, ...]
    matrix: NDArray[np.float32]

    @classmethod
    def empty(cls) -> VoiceSnapshot:
        return cls(0, (), np.zeros((0, EMBEDDING_SIZE), dtype=np.float32))

    @classmethod
    def of(cls, version: int, voices: dict[str, NDArray[np.float32]]) -> VoiceSnapshot:
        names = tuple(sorted(voices))
        if not names:
            return cls(version, (), np.zeros((0, EMBEDDING_SIZE), dtype=np.float32))
        return cls(version, names, np.stack([voices[n] for n in names]).astype(np.float32))


class VoiceIndex:
    """The current ``VoiceSnapshot``, swapped atomically when the bank changes."""

    def __init__(self, snapshot: VoiceSnapshot | None = None) -> None:
        self._snapshot = snapshot or VoiceSnapshot.empty()
        self._lock = threading.Lock()

    @property
    def snapshot(self) -> VoiceSnapshot:
        return self._snapshot

    def replace(self, snapshot: VoiceSnapshot) -> None:
        with self._lock:
            self._snapshot = snapshot


class ProtectedVoiceClassifier:
    """Scores ``protected-person`` by cosine similarity to the enrolled voices."""

    name: ClassVar[str] = "protected_voice"

    def __init__(self, index: VoiceIndex | None = None, encoder: VoiceEncoder | None = None):
        self.index = index if index is not None else VoiceIndex()
        self._encoder = encoder if encoder is not None else shared_voice_encoder()

    def classify(self, clips: Sequence[AudioClip]) -> list[Scores]:
        snapshot = self.index.snapshot  # one bank version for the whole batch
        if not snapshot.names:
            return [Scores(self.name) for _ in clips]
        return [self._one(clip, snapshot) for clip in clips]

    def _one(self, clip: AudioClip, snapshot: VoiceSnapshot) -> Scores:
        embedding = self._encoder.embed(clip)
        if embedding is None:
            return Scores(self.name)
        similarities = snapshot.matrix @ embedding
        best = int(np.argmax(similarities))
        score = float(np.clip(similarities[best], 0.0, 1.0))
        detail = f"voice {snapshot.names[best]!r}: cosine similarity {score:.3f}"
        return Scores(
            self.name,
            {Category.PROTECTED_PERSON: score},
            (Evidence(Category.PROTECTED_PERSON, detail, score),),
        )
