"""Whisper speech recognisers loaded from a local model directory (never from a hub).

Two runtimes, chosen in settings (``GENGUARD_CLASSIFIERS__RECOGNIZER``):

* ``faster_whisper``: a CTranslate2 conversion of a Whisper checkpoint (``model.bin``,
  ``config.json``, ``vocabulary.*`` plus the ``tokenizer.json`` and, for 128-mel models,
  ``preprocessor_config.json`` copied beside it, as ``ct2-transformers-converter --copy_files``
  does). Needs the optional ``faster-whisper`` package (``pip install genguard[asr]``); no torch.
* ``transformers_whisper``: a transformers Whisper checkpoint directory (``config.json``, the
  weights, ``generation_config.json``, ``preprocessor_config.json``, the tokenizer files), run
  with torch on the CPU.

Both transcribe English (a multilingual model is told the language rather than left to guess
it) deterministically (faster-whisper: beam search of 5 at temperature 0, without its sampling
fallback; transformers: the checkpoint's generation settings), and never emit timestamps: the
transcript is plain text for the text classifiers. The transformers runtime decodes a long clip
as independent 30-second windows in one batch (a word cut at a window edge may be lost);
faster-whisper carries its own long-form loop. A missing or unreadable directory raises
``ClassifierUnavailable`` when the recogniser is built, which is at start-up for a policy that
runs ``transcript``.
"""

from __future__ import annotations

import copy
import importlib.util
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from classifiers.audio.recognizer import RECOGNIZER_RATE, to_16k
from classifiers.base import AudioClip, ClassifierError, ClassifierUnavailable

__all__ = ["FasterWhisperRecognizer", "TransformersWhisperRecognizer"]

LANGUAGE = "en"
WINDOW_SAMPLES = 30 * RECOGNIZER_RATE  # Whisper's fixed 30-second input


def _require_files(runtime: str, directory: Path, names: tuple[str, ...]) -> None:
    if not directory.is_dir():
        raise ClassifierUnavailable(f"{runtime}: no model directory at {directory}")
    missing = [name for name in names if not (directory / name).is_file()]
    if missing:
        raise ClassifierUnavailable(
            f"{runtime}: the model directory {directory} lacks {', '.join(missing)}"
        )


def _warm_up(recognizer: FasterWhisperRecognizer | TransformersWhisperRecognizer) -> None:
    """One second of silence through the model: a model that cannot run is unavailable now,
    at start-up, not at the first request."""
    try:
        recognizer.transcribe(AudioClip(np.zeros(RECOGNIZER_RATE, np.float32), RECOGNIZER_RATE))
    except ClassifierError as exc:
        raise ClassifierUnavailable(str(exc)) from exc


class FasterWhisperRecognizer:
    """Whisper through CTranslate2 (``faster-whisper``), int8 on the CPU."""

    name: ClassVar[str] = "faster_whisper"

    def __init__(
        self,
        model_dir: Path,
        *,
        threads: int = 1,
        compute_type: str = "int8",
        beam_size: int = 5,
    ) -> None:
        # tokenizer.json must be local: without it faster-whisper would fetch one from the hub
        _require_files(self.name, model_dir, ("model.bin", "config.json", "tokenizer.json"))
        if importlib.util.find_spec("faster_whisper") is None:
            raise ClassifierUnavailable(
                "faster_whisper: the 'faster-whisper' package is not installed "
                "(pip install 'genguard[asr]')"
            )
        from faster_whisper import WhisperModel

        try:
            self._model: Any = WhisperModel(
                str(model_dir),
                device="cpu",
                compute_type=compute_type,
                cpu_threads=threads,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ClassifierUnavailable(
                f"faster_whisper: cannot load the model at {model_dir}: {exc}"
            ) from exc
        self._beam_size = beam_size
        self._lock = threading.Lock()
        _warm_up(self)

    def transcribe(self, clip: AudioClip) -> str:
        if len(clip.samples) == 0:
            return ""
        audio = to_16k(clip)
        language = LANGUAGE if self._model.model.is_multilingual else None
        with self._lock:
            try:
                segments, _ = self._model.transcribe(
                    audio,
                    language=language,
                    task="transcribe",
                    beam_size=self._beam_size,
                    temperature=0.0,  # no sampling fallback: the same clip, the same transcript
                    without_timestamps=True,
                    condition_on_previous_text=False,
                    vad_filter=False,
                )
                texts = [segment.text.strip() for segment in segments]  # decodes lazily
            except (RuntimeError, ValueError) as exc:
                raise ClassifierError(f"faster_whisper failed: {exc}") from exc
        return " ".join(text for text in texts if text)


class TransformersWhisperRecognizer:
    """A transformers ``WhisperForConditionalGeneration`` checkpoint, with torch on the CPU."""

    name: ClassVar[str] = "transformers_whisper"

    def __init__(self, model_dir: Path) -> None:
        _require_files(self.name, model_dir, ("config.json", "preprocessor_config.json"))
        try:
            import torch
            from safetensors import SafetensorError
            from transformers import (
                AutoTokenizer,
                WhisperFeatureExtractor,
                WhisperForConditionalGeneration,
            )
        except ImportError as exc:  # pragma: no cover - dependencies of the package
            raise ClassifierUnavailable(f"transformers_whisper: {exc}") from exc
        try:
            model: Any = WhisperForConditionalGeneration.from_pretrained(
                str(model_dir), local_files_only=True
            )
            self._features: Any = WhisperFeatureExtractor.from_pretrained(
                str(model_dir), local_files_only=True
            )
            self._tokenizer: Any = AutoTokenizer.from_pretrained(
                str(model_dir), local_files_only=True
            )
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
            raise ClassifierUnavailable(
                f"transformers_whisper: cannot load the model at {model_dir}: {exc}"
            ) from exc
        self._torch: Any = torch
        model.eval()
        self._model: Any = model
        self._model.generation_config = _text_only(model.generation_config, model.config)
        self._multilingual = bool(getattr(self._model.generation_config, "lang_to_id", None))
        self._lock = threading.Lock()
        _warm_up(self)

    def transcribe(self, clip: AudioClip) -> str:
        if len(clip.samples) == 0:
            return ""
        audio = to_16k(clip)
        windows = [audio[i : i + WINDOW_SAMPLES] for i in range(0, len(audio), WINDOW_SAMPLES)]
        options: dict[str, object] = {"return_timestamps": False}
        if self._multilingual:
            options.update(language=LANGUAGE, task="transcribe")
        with self._lock:
            try:
                inputs = self._features(
                    windows,
                    sampling_rate=RECOGNIZER_RATE,
                    return_tensors="pt",
                    return_attention_mask=True,
                )
                with self._torch.inference_mode():
                    tokens = self._model.generate(
                        inputs.input_features, attention_mask=inputs.attention_mask, **options
                    )
                texts = self._tokenizer.batch_decode(tokens, skip_special_tokens=True)
            except (RuntimeError, ValueError, IndexError) as exc:
                raise ClassifierError(f"transformers_whisper failed: {exc}") from exc
        return " ".join(text.strip() for text in texts if text.strip())


def _text_only(generation_config: Any, config: Any) -> Any:
    """The checkpoint's generation settings with timestamp tokens suppressed: the transcript is
    plain text, and a window is decoded on its own (no long-form seeking on timestamps)."""
    settings = copy.deepcopy(generation_config)
    no_timestamps = getattr(settings, "no_timestamps_token_id", None)
    if no_timestamps is not None:
        timestamps = range(int(no_timestamps) + 1, int(config.vocab_size))
        settings.suppress_tokens = sorted({*(settings.suppress_tokens or ()), *timestamps})
    return settings
