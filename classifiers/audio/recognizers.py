"""The speech recognisers the ``transcript`` classifier can use, by name (settings pick one).

``build_recognizer`` loads and warms the one named; a Whisper recogniser without a model
directory, or with one it cannot load, raises ``ClassifierUnavailable`` (the gateway builds it at
start-up when the policy runs ``transcript``, so the policy decides whether that is fatal).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from classifiers.audio.recognizer import PocketSphinxRecognizer, SpeechRecognizer
from classifiers.audio.whisper import FasterWhisperRecognizer, TransformersWhisperRecognizer
from classifiers.base import ClassifierUnavailable

__all__ = ["RECOGNIZERS", "RecognizerName", "build_recognizer"]

RecognizerName = Literal["pocketsphinx", "faster_whisper", "transformers_whisper"]

RECOGNIZERS: dict[str, type[SpeechRecognizer]] = {
    c.name: c
    for c in (PocketSphinxRecognizer, FasterWhisperRecognizer, TransformersWhisperRecognizer)
}
assert len(RECOGNIZERS) == 3, "duplicate recogniser name"


def build_recognizer(
    name: str, model_path: Path | None = None, *, threads: int = 1
) -> SpeechRecognizer:
    """The recogniser ``name``, loaded from ``model_path`` (Whisper) and warmed."""
    if name == PocketSphinxRecognizer.name:
        if model_path is not None:
            raise ClassifierUnavailable(
                "pocketsphinx uses the model in its wheel; GENGUARD_CLASSIFIERS__RECOGNIZER_PATH "
                "is for the Whisper recognisers (faster_whisper, transformers_whisper)"
            )
        return PocketSphinxRecognizer()
    if name not in RECOGNIZERS:
        raise ClassifierUnavailable(
            f"unknown speech recogniser {name!r}; expected one of: {', '.join(RECOGNIZERS)}"
        )
    if model_path is None:
        raise ClassifierUnavailable(
            f"the speech recogniser {name!r} needs a local model directory: set "
            "GENGUARD_CLASSIFIERS__RECOGNIZER_PATH (models are never downloaded)"
        )
    if name == FasterWhisperRecognizer.name:
        return FasterWhisperRecognizer(model_path, threads=threads)
    return TransformersWhisperRecognizer(model_path)
