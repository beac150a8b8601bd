"""Local text-to-speech with espeak-ng: a real (formant, robotic-sounding) speech synthesiser that
installs with pip and needs no model download or network.

OpenAI's voice names map to distinct espeak accent + variant pairs, so that clients written for
``/v1/audio/speech`` work unchanged; the voices do not sound like OpenAI's.
"""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from generators.base import (
    Artifact,
    CpuRunner,
    GenerationError,
    GenerationRequest,
    Modality,
    UnsupportedRequest,
    require_model,
)
from generators.espeak_engine import RATE_NORMAL, EspeakEngine

__all__ = ["VOICES", "EspeakSpeechGenerator"]

VOICES: Mapping[str, str] = MappingProxyType(
    {
        "alloy": "en-us+f2",
        "ash": "en-us+m3",
        "ballad": "en-gb-x-rp+m2",
        "coral": "en-us+f3",
        "echo": "en-us+m1",
        "fable": "en+m3",
        "onyx": "en-us+m7",
        "nova": "en-us+f4",
        "sage": "en-gb-x-rp+f2",
        "shimmer": "en-us+f5",
        "verse": "en-gb-scotland+m4",
    }
)
"""OpenAI voice name → espeak ``language+variant``."""

DEFAULT_VOICE = "alloy"
SUPPORTED_FORMATS = ("wav", "pcm")
MAX_INPUT_CHARS = 4096
MIN_SPEED, MAX_SPEED = 0.25, 4.0
PCM_SAMPLE_RATE = 24_000
"""OpenAI's ``pcm`` format is raw 24 kHz signed 16-bit little-endian mono; espeak's 22,050 Hz
output is resampled to it, since raw samples carry no rate of their own."""


class EspeakSpeechGenerator:
    """Speech from espeak-ng: ``wav`` (16-bit mono at espeak's 22,050 Hz) or ``pcm``.

    ``speed`` (0.25 to 4.0) scales espeak's normal 175 words per minute; espeak cannot go below
    80 wpm, so speeds under about 0.46 all sound alike. The library is process-global: syntheses
    are serialised (one at a time per generator on the event loop, so queued requests do not
    occupy worker threads, and one at a time per process in the engine). Synthesis runs through
    ``run_cpu`` (``asyncio.to_thread`` by default). espeak-ng is not bit-for-bit reproducible:
    the same request can differ by a few samples of timing jitter between runs.
    """

    name: ClassVar[str] = "espeak"
    modalities: ClassVar[frozenset[Modality]] = frozenset({Modality.AUDIO})
    _MODELS: ClassVar[tuple[str, ...]] = ("genguard-espeak-tts",)

    def __init__(self, *, run_cpu: CpuRunner | None = None) -> None:
        """Loads and initialises espeak-ng (a few ms) and checks that every mapped voice exists."""
        self._run_cpu: CpuRunner = run_cpu if run_cpu is not None else asyncio.to_thread
        self._engine = EspeakEngine.shared()
        for openai_voice, espeak_voice in VOICES.items():
            try:
                self._engine.resolve_voice(espeak_voice)
            except ValueError as exc:
                raise GenerationError(
                    f"espeak-ng {self._engine.version} lacks the voice for {openai_voice!r}: {exc}"
                ) from exc
        self._turn = asyncio.Lock()

    @property
    def models(self) -> tuple[str, ...]:
        return self._MODELS

    @property
    def sample_rate(self) -> int:
        """The rate of ``wav`` output (espeak's native rate)."""
        return self._engine.sample_rate

    async def generate(self, request: GenerationRequest) -> list[Artifact]:
        espeak_voice, rate = self._validate(request)
        async with self._turn:
            data, duration_s = await self._run_cpu(
                self._render, request.prompt, espeak_voice, rate, request.audio_format
            )
        return [
            Artifact(
                data=data,
                mime_type="audio/wav" if request.audio_format == "wav" else "audio/pcm",
                modality=Modality.AUDIO,
                generator=self.name,
                model=request.model,
                duration_s=duration_s,
            )
        ]

    async def aclose(self) -> None:
        """Nothing to release: the engine lives as long as the process."""

    def _render(self, text: str, voice: str, rate: int, audio_format: str) -> tuple[bytes, float]:
        """CPU-bound: synthesise, then encode. Returns (bytes, duration in seconds)."""
        samples = self._engine.synthesize(text, voice=voice, rate=rate)
        if samples.size == 0:
            raise GenerationError("espeak-ng produced no audio for this input")
        rate_hz = self._engine.sample_rate
        duration_s = samples.size / rate_hz
        if audio_format == "pcm":
            return _resample(samples, rate_hz, PCM_SAMPLE_RATE).astype("<i2").tobytes(), duration_s
        return _encode_wav(samples, rate_hz), duration_s

    def _validate(self, request: GenerationRequest) -> tuple[str, int]:
        """Check the request; return the espeak voice and the rate in words per minute."""
        require_model(self.name, request, Modality.AUDIO, self._MODELS)
        if request.n != 1:
            raise UnsupportedRequest("speech returns one clip per request; n must be 1", param="n")
        if not request.prompt.strip():
            raise UnsupportedRequest("input must not be empty", param="input")
        if len(request.prompt) > MAX_INPUT_CHARS:
            raise UnsupportedRequest(
                f"input is {len(request.prompt)} characters long; the maximum is {MAX_INPUT_CHARS}",
                param="input",
            )
        voice = request.voice if request.voice is not None else DEFAULT_VOICE
        if voice not in VOICES:
            raise UnsupportedRequest(
                f"unknown voice {voice!r}; supported voices: {', '.join(VOICES)}", param="voice"
            )
        if request.audio_format not in SUPPORTED_FORMATS:
            raise UnsupportedRequest(
                f"response_format {request.audio_format!r} is not supported by {self.name!r}; "
                f"supported formats: {', '.join(SUPPORTED_FORMATS)}",
                param="response_format",
            )
        if not MIN_SPEED <= request.speed <= MAX_SPEED:
            raise UnsupportedRequest(
                f"speed must be between {MIN_SPEED} and {MAX_SPEED}", param="speed"
            )
        return VOICES[voice], round(RATE_NORMAL * request.speed)


def _encode_wav(samples: NDArray[np.int16], sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def _resample(samples: NDArray[np.int16], source_hz: int, target_hz: int) -> NDArray[np.int16]:
    """Linear-interpolation resampling (speech from a formant synthesiser needs no better)."""
    count = max(1, round(samples.size * target_hz / source_hz))
    positions = np.arange(count, dtype=np.float64) * (source_hz / target_hz)
    resampled = np.interp(positions, np.arange(samples.size), samples.astype(np.float64))
    return np.clip(np.rint(resampled), -32768, 32767).astype(np.int16)
