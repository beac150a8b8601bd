"""Provenance fixtures: a real development CA and small real PNG, JPEG and WAV files."""

from __future__ import annotations

import io
import math
import struct
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from generators.base import Artifact, Modality
from provenance import ManifestSpec, SigningCredentials, ensure_dev_credentials

PROMPT = "a photorealistic portrait of Zebulon Quixotic-Marrowfield at dawn"


@pytest.fixture(scope="session")
def dev_ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("provenance") / "dev-ca"


@pytest.fixture(scope="session")
def dev_credentials(dev_ca_dir: Path) -> SigningCredentials:
    return ensure_dev_credentials(dev_ca_dir)


def _image(fmt: str) -> bytes:
    image = Image.new("RGB", (96, 64))
    image.putdata([(x * 2, y * 3, (x + y) % 256) for y in range(64) for x in range(96)])
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _sine_wav(seconds: float = 0.5, rate: int = 16_000, hz: float = 440.0) -> bytes:
    frames = b"".join(
        struct.pack("<h", int(12_000 * math.sin(2 * math.pi * hz * i / rate)))
        for i in range(int(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(frames)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def media() -> dict[str, bytes]:
    """Unsigned test media by canonical media type."""
    return {"image/png": _image("PNG"), "image/jpeg": _image("JPEG"), "audio/wav": _sine_wav()}


@pytest.fixture
def prompt() -> str:
    return PROMPT


@pytest.fixture
def make_artifact(media: dict[str, bytes]) -> Callable[[str], Artifact]:
    """An artifact of the given (possibly alias) media type, carrying the test prompt."""

    def make(mime_type: str, data: bytes | None = None) -> Artifact:
        canonical = "audio/wav" if mime_type.startswith("audio/") else mime_type
        audio = canonical.startswith("audio/")
        return Artifact(
            data=media[canonical] if data is None else data,
            mime_type=mime_type,
            modality=Modality.AUDIO if audio else Modality.IMAGE,
            generator="offline-demo",
            model="demo-sd-tiny",
            width=None if audio else 96,
            height=None if audio else 64,
            duration_s=0.5 if audio else None,
            revised_prompt=PROMPT,
        )

    return make


@pytest.fixture
def spec() -> ManifestSpec:
    return ManifestSpec(
        generator="offline-demo",
        model="demo-sd-tiny",
        decision_id="dec-01J9ZK3T5Q",
        policy_id="default",
        policy_revision="rev-42",
    )
