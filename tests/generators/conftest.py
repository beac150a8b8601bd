"""Fixtures for the generator tests: one fake upstream per module, reset before each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from generators import Modality, OpenAICompatGenerator
from tests.fake_upstream import FakeUpstream, serve_fake_upstream

UPSTREAM_KEY = "sk-upstream-secret-0123456789"
IMAGE_MODEL = "fake-image-1"
SPEECH_MODEL = "fake-tts-1"


@pytest.fixture(scope="module")
def fake_upstream_server() -> Iterator[FakeUpstream]:
    with serve_fake_upstream(api_key=UPSTREAM_KEY) as upstream:
        yield upstream


@pytest.fixture
def fake_upstream(fake_upstream_server: FakeUpstream) -> FakeUpstream:
    fake_upstream_server.reset()
    return fake_upstream_server


@pytest.fixture
async def upstream_generator(fake_upstream: FakeUpstream) -> AsyncIterator[OpenAICompatGenerator]:
    generator = OpenAICompatGenerator(
        base_url=fake_upstream.base_url,
        api_key=UPSTREAM_KEY,
        models=(IMAGE_MODEL, SPEECH_MODEL),
        timeout_s=1.0,
        modalities=frozenset({Modality.IMAGE, Modality.AUDIO}),
    )
    yield generator
    await generator.aclose()
