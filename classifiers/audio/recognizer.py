"""Speech recognisers: an ``AudioClip`` in, its words out.

``PocketSphinxRecognizer`` needs nothing but its wheel (the en-US model ships inside it), so it
works offline, but it is poor on synthetic speech (docs/benchmarks.md has the word error rates).
Whisper recognisers that load a local model directory are in ``classifiers.audio.whisper``;
``classifiers.audio.recognizers`` picks one by name. A recogniser is CPU-bound and called from
the worker pool; each holds one loaded model behind a lock (pocketsphinx decoders are not
thread-safe).
"""

from __future__ import annotations

import threading
from typing import ClassVar, Protocol

import numpy as np
from numpy.typing import NDArray

from classifiers.base import AudioClip, ClassifierError, ClassifierUnavailable

__all__ = ["RECOGNIZER_RATE", "PocketSphinxRecognizer", "SpeechRecognizer", "to_16k", "to_pcm16"]

RECOGNIZER_RATE = 16_000


class SpeechRecognizer(Protocol):
    name: ClassVar[str]

    def transcribe(self, clip: AudioClip) -> str:
        """CPU-bound; the words heard in ``clip`` ('' for silence), stripped; case and
        punctuation as the recogniser gives them (pocketsphinx: lower case, none)."""
        ...


def to_16k(clip: AudioClip, rate: int = RECOGNIZER_RATE) -> NDArray[np.float32]:
    """``clip``'s samples resampled to ``rate`` Hz, as float32 in [-1, 1]."""
    samples = np.asarray(clip.samples, dtype=np.float32)
    if clip.sample_rate != rate:
        divisor = np.gcd(clip.sample_rate, rate)
        from scipy.signal import resample_poly  # SciPy loads with the first resample

        samples = resample_poly(samples, rate // divisor, clip.sample_rate // divisor)
    return np.clip(samples, -1.0, 1.0).astype(np.float32)


def to_pcm16(clip: AudioClip, rate: int = RECOGNIZER_RATE) -> bytes:
    """``clip`` resampled to ``rate`` Hz as little-endian 16-bit PCM."""
    return (to_16k(clip, rate) * 32767.0).astype("<i2").tobytes()


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
                # A fresh feature pipeline per clip: pocketsphinx otherwise carries its cepstral
                # mean from the previous utterance into this one, so one clip's transcript would
                # depend on the clip (another tenant's, perhaps) decoded before it.
                self._decoder.reinit_feat()
                self._decoder.start_utt()
                self._decoder.process_raw(pcm, full_utt=True)
                self._decoder.end_utt()
            except RuntimeError as exc:
                raise ClassifierError(f"pocketsphinx failed: {exc}") from exc
            hypothesis = self._decoder.hyp()
        return hypothesis.hypstr.strip().lower() if hypothesis is not None else ""
