"""One contract, run over every entry of ``GENERATORS``.

Each backend is built the way it runs offline: procedural and espeak as they are, openai_compat
against the fake upstream. A new registry entry without a factory here fails the suite.
"""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from PIL import Image

from generators import (
    GENERATORS,
    EspeakSpeechGenerator,
    GenerationRequest,
    Generator,
    Modality,
    OpenAICompatGenerator,
    ProceduralImageGenerator,
    UnsupportedRequest,
)
from tests.fake_upstream import FakeUpstream
from tests.generators.conftest import IMAGE_MODEL, SPEECH_MODEL, UPSTREAM_KEY

FACTORIES: dict[str, Callable[[FakeUpstream], Generator]] = {
    "procedural": lambda _: ProceduralImageGenerator(),
    "espeak": lambda _: EspeakSpeechGenerator(),
    "openai_compat": lambda upstream: OpenAICompatGenerator(
        base_url=upstream.base_url,
        api_key=UPSTREAM_KEY,
        models=(IMAGE_MODEL, SPEECH_MODEL),
        timeout_s=5,
    ),
}
CASES = [(name, m) for name, cls in GENERATORS.items() for m in sorted(cls.modalities)]


def test_every_registered_generator_has_a_factory() -> None:
    assert set(FACTORIES) == set(GENERATORS)
    assert len(GENERATORS) == 3


@pytest.fixture(params=sorted(GENERATORS))
async def named_generator(
    request: pytest.FixtureRequest, fake_upstream: FakeUpstream
) -> AsyncIterator[tuple[str, Generator]]:
    name: str = request.param
    generator = FACTORIES[name](fake_upstream)
    yield name, generator
    await generator.aclose()


def sample_request(modality: Modality, model: str, **overrides: Any) -> GenerationRequest:
    fields: dict[str, Any] = {"modality": modality, "prompt": "a calm harbour", "model": model}
    if modality is Modality.IMAGE:
        fields.update(size=(128, 128), n=2)
    else:
        fields.update(voice="alloy", audio_format="wav")
    fields.update(overrides)
    return GenerationRequest(**fields)


def model_for(generator: Generator, modality: Modality) -> str:
    wanted = {Modality.IMAGE: IMAGE_MODEL, Modality.AUDIO: SPEECH_MODEL}[modality]
    return wanted if wanted in generator.models else generator.models[0]


async def test_declares_name_modalities_and_models(named_generator: tuple[str, Generator]) -> None:
    name, generator = named_generator
    cls = GENERATORS[name]
    assert cls.name == name == generator.name
    assert isinstance(cls.modalities, frozenset) and cls.modalities
    assert all(isinstance(m, Modality) for m in cls.modalities)
    assert isinstance(generator.models, tuple) and generator.models
    assert all(isinstance(m, str) and m for m in generator.models)


@pytest.mark.parametrize(("name", "modality"), CASES, ids=[f"{n}-{m}" for n, m in CASES])
async def test_artifacts_match_the_request(
    name: str, modality: Modality, fake_upstream: FakeUpstream
) -> None:
    generator = FACTORIES[name](fake_upstream)
    try:
        model = model_for(generator, modality)
        request = sample_request(modality, model)
        artifacts = await generator.generate(request)
    finally:
        await generator.aclose()
    assert len(artifacts) == request.n
    for artifact in artifacts:
        assert artifact.modality is modality
        assert artifact.generator == name
        assert artifact.model == model
        assert artifact.data
        if modality is Modality.IMAGE:
            image = Image.open(io.BytesIO(artifact.data))
            assert artifact.mime_type == Image.MIME[image.format or ""]
            assert (artifact.width, artifact.height) == image.size == request.size
        else:
            assert artifact.mime_type == "audio/wav"
            with wave.open(io.BytesIO(artifact.data)) as reader:
                duration = reader.getnframes() / reader.getframerate()
            assert artifact.duration_s == pytest.approx(duration)
            assert duration > 0


async def test_unknown_model_is_unsupported(named_generator: tuple[str, Generator]) -> None:
    _, generator = named_generator
    modality = sorted(type(generator).modalities)[0]
    with pytest.raises(UnsupportedRequest) as caught:
        await generator.generate(sample_request(modality, "no-such-model"))
    assert caught.value.param == "model"
