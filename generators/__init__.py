"""GenGuard generators: turn a hardened ``GenerationRequest`` into ``Artifact`` values.

Backends: ``OpenAICompatGenerator`` (any OpenAI-compatible upstream), ``EspeakSpeechGenerator``
(local espeak-ng speech) and ``ProceduralImageGenerator`` (an offline demo that draws abstract
images). ``GENERATORS`` maps each backend's ``name`` to its class.
"""

from generators.base import (
    Artifact,
    CpuRunner,
    GenerationError,
    GenerationRequest,
    Generator,
    Modality,
    UnsupportedRequest,
    UpstreamError,
    UpstreamTimeout,
)
from generators.espeak_tts import VOICES, EspeakSpeechGenerator
from generators.openai_compat import OpenAICompatGenerator
from generators.procedural import ProceduralImageGenerator
from generators.registry import GENERATORS

__all__ = [
    "GENERATORS",
    "VOICES",
    "Artifact",
    "CpuRunner",
    "EspeakSpeechGenerator",
    "GenerationError",
    "GenerationRequest",
    "Generator",
    "Modality",
    "OpenAICompatGenerator",
    "ProceduralImageGenerator",
    "UnsupportedRequest",
    "UpstreamError",
    "UpstreamTimeout",
]
