"""Every generator backend, by the name that policies and settings refer to."""

from __future__ import annotations

from generators.base import Generator
from generators.espeak_tts import EspeakSpeechGenerator
from generators.openai_compat import OpenAICompatGenerator
from generators.procedural import ProceduralImageGenerator

__all__ = ["GENERATORS"]

GENERATORS: dict[str, type[Generator]] = {
    generator.name: generator
    for generator in (ProceduralImageGenerator, EspeakSpeechGenerator, OpenAICompatGenerator)
}
assert len(GENERATORS) == 3, "duplicate generator name"
