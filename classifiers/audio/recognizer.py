"""Speech recognisers: an ``AudioClip`` in, its words out (``pocketsphinx``; model in the wheel).

pocketsphinx's en-US model ships inside its wheel, so it works offline; it is poor on synthetic
speech (see docs/benchmarks.md for the word error rate measured on LJSpeech). A recogniser is
CPU-bound and called from the worker pool; one decoder is loaded per instance and guarded by a
lock (pocketsphinx decoders are not thread-safe).
"""

from __future__ import annotations

import threading
from typing import ClassVar, Protocol

import numpy as np
from scipy.signal import resample_poly

from classifiers.base import AudioClip, ClassifierError, ClassifierUnavailable

__all__ = ["PocketSphinxRecognizer", "SpeechRecognizer", "to_pcm16"]

RECOGNIZER_RATE = 16_000


class SpeechRecognizer(Protocol):
    name: ClassVar[str]

    def transcribe(self, clip: AudioClip) -> str:
        """CPU-bound; the words heard in ``clip`` (lower case, '' for silence)."""
        ...


def to_pcm16(clip: AudioClip, rate: int = RECOGNIZER_RATE) -> bytes:
    """``clip`` resampled to ``rate`` Hz as little-endian 16-bit PCM."""
    samples = np.asarray(clip.samples, dtype=np.float32)
    if clip.sample_rate != rate:
        divisor = np.gcd(clip.sample_rate, rate)
        samples = resample_poly(samples, rate // divisor, clip.sample_rate // divisor)
    clipped = np.clip(samples, -1.0, 1.0) * 32767.0
    return clipped.astype("<i2").tobytes()


class PocketSphinxRecognizer:
    """CMU pocketsphinx 5 with the en-US acoustic model, dictionary and LM from its wheel."""

    name: ClassVar[str] = "pocketsphinx"

    def __init__(self) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise ClassifierUnavailable(f"pocketsphinx is not installed: {exc}") from exc
        try:
            self._decoder = Decoder(samprate=RECOGNIZER_RATE, logfn="/dev/null")
        except (RuntimeError, ValueError) as exc:
            raise ClassifierUnavailable(f"pocketsphinx could not load its model: {exc}") from exc
        self._lock = threading.Lock()

    def transcribe(self, clip: AudioClip) -> str:
        if len(clip.samples) == 0:
            return ""
        pcm = to_pcm16(clip)
        with self._lock:
            try:
                self._decoder.start_utt()
                self._decoder.process_raw(pcm, full_utt=True)
                self._decoder.end_utt()
            except RuntimeError as exc:
                raise ClassifierError(f"pocketsphinx failed: {exc}") from exc
            hypothesis = self._decoder.hyp()
        return hypothesis.hypstr.strip().lower() if hypothesis is not None else ""
