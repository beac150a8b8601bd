"""Stamping: watermark → sign → register → verify, with real c2pa and a real Redis."""

from __future__ import annotations

import base64
import io
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import lameenc
import numpy as np
import pytest
import soundfile
from PIL import Image
from redis.asyncio import Redis

from generators.base import Artifact, Modality
from provenance import ManifestReadError, ManifestSpec, SigningCredentials, read_manifest
from provenance.manifest import SOFT_BINDING_LABEL, TRAINING_MINING_LABEL
from provenance.marking import IMAGE_WATERMARK_ALG
from provenance.repository import ManifestRepository
from provenance.signer import C2paSigner
from provenance.stamp import ContentCredentials
from provenance.verifier import inspect_asset, verify_asset
from tests.provenance.test_provenance_watermark import speech_like, textured_image

KEY = b"stamp-test-key"
T = TypeVar("T")


async def inline(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return fn(*args, **kwargs)


def _cpu() -> Callable[..., Awaitable[Any]]:
    return inline


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _artifact(data: bytes, mime_type: str) -> Artifact:
    audio = mime_type.startswith("audio/")
    return Artifact(
        data=data,
        mime_type=mime_type,
        modality=Modality.AUDIO if audio else Modality.IMAGE,
        generator="procedural",
        model="demo",
        width=None,
        height=None,
        duration_s=None,
        revised_prompt=None,
    )


def _spec(**extra: Any) -> ManifestSpec:
    return ManifestSpec(
        generator="procedural",
        model="demo",
        decision_id="dec-stamp-1",
        policy_id="default",
        policy_revision="rev-9",
        stage_verdicts=(("prompt", "allow"), ("output:nudenet", "allow")),
        **extra,
    )


@pytest.fixture
def credentials(dev_credentials: SigningCredentials) -> ContentCredentials:
    return ContentCredentials(
        C2paSigner(dev_credentials),
        audio_key=KEY,
        repository=None,
        trust_anchors_pem=dev_credentials.trust_anchor_pem,
    )


def _assertions(report_raw: dict[str, Any], manifest_id: str) -> dict[str, Any]:
    manifest = report_raw["manifests"][manifest_id]
    return {a["label"]: a["data"] for a in manifest["assertions"]}


def test_stamped_image_names_its_watermark_and_self_checks(
    credentials: ContentCredentials, dev_credentials: SigningCredentials
) -> None:
    artifact = _artifact(_png(textured_image()), "image/png")
    stamped = credentials.stamp(
        artifact, _spec(training_mining="notAllowed"), watermark=True, self_check=True
    )
    assert stamped.watermark_id is not None
    report = read_manifest(
        stamped.signed.data, "image/png", trust_anchors_pem=dev_credentials.trust_anchor_pem
    )
    assert report.validation_state == "Trusted"
    assertions = _assertions(report.raw, stamped.signed.manifest_id)
    binding = assertions[SOFT_BINDING_LABEL]
    assert binding["alg"] == IMAGE_WATERMARK_ALG
    assert base64.b64decode(binding["blocks"][0]["value"]).decode() == stamped.watermark_id
    assert assertions[TRAINING_MINING_LABEL]["entries"]["cawg.ai_training"] == {"use": "notAllowed"}
    assert report.genguard is not None
    assert report.genguard["watermark_id"] == stamped.watermark_id
    assert report.genguard["stages"] == [
        {"stage": "prompt", "verdict": "allow"},
        {"stage": "output:nudenet", "verdict": "allow"},
    ]


def test_small_images_are_signed_but_not_marked(credentials: ContentCredentials) -> None:
    stamped = credentials.stamp(
        _artifact(_png(textured_image(128)), "image/png"), _spec(), watermark=True, self_check=True
    )
    assert stamped.watermark_id is None
    assert stamped.watermark.skipped == "image smaller than 256 px a side"
    assert stamped.signed.manifest_id.startswith("urn:c2pa:")


def _flac(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="FLAC")
    return buffer.getvalue()


def _mp3(samples: np.ndarray, rate: int) -> bytes:
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(128)
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(1)
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    return bytes(encoder.encode(pcm) + encoder.flush())


def _webp(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize("mime_type", ["image/webp", "audio/flac", "audio/mpeg", "audio/wav"])
def test_more_formats_are_signed_and_trusted(
    credentials: ContentCredentials, dev_credentials: SigningCredentials, mime_type: str
) -> None:
    clip = speech_like(3.0)
    data = {
        "image/webp": lambda: _webp(textured_image()),
        "audio/flac": lambda: _flac(clip, 22_050),
        "audio/mpeg": lambda: _mp3(clip, 22_050),
        "audio/wav": lambda: _wav(clip, 22_050),
    }[mime_type]()
    stamped = credentials.stamp(
        _artifact(data, mime_type), _spec(), watermark=True, self_check=True
    )
    report = read_manifest(
        stamped.signed.data, mime_type, trust_anchors_pem=dev_credentials.trust_anchor_pem
    )
    assert report.validation_state == "Trusted", report.failure_codes
    marked = mime_type in ("image/webp", "audio/wav")
    assert (stamped.watermark_id is not None) == marked


def _wav(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


async def test_a_stripped_copy_is_traced_back_through_the_repository(
    clean_redis: str, dev_credentials: SigningCredentials
) -> None:
    redis = Redis.from_url(clean_redis)
    try:
        repository = ManifestRepository(redis)
        credentials = ContentCredentials(
            C2paSigner(dev_credentials),
            audio_key=KEY,
            repository=repository,
            trust_anchors_pem=dev_credentials.trust_anchor_pem,
        )
        stamped = credentials.stamp(
            _artifact(_png(textured_image()), "image/png"),
            _spec(),
            watermark=True,
            self_check=False,
        )
        await credentials.register(stamped, "tenant-a")
        # strip the metadata: decode, halve, re-encode the pixels
        image = Image.open(io.BytesIO(stamped.signed.data)).convert("RGB")
        buffer = io.BytesIO()
        image.resize((256, 256), Image.Resampling.BICUBIC).save(buffer, "PNG")
        result = await verify_asset(
            buffer.getvalue(),
            cpu=_cpu(),
            repository=repository,
            trust_anchors_pem=dev_credentials.trust_anchor_pem,
            audio_key=KEY,
        )
    finally:
        await redis.aclose()
    assert result["c2pa"]["present"] is False
    assert result["watermark"] == {
        "found": True,
        "watermark_id": stamped.watermark_id,
        "kind": "image",
        "confidence": result["watermark"]["confidence"],
        "decoded_at": "512x512",
        "registered": True,
        "error": None,
    }
    output = result["recovered"]["output"]
    assert (output["decision_id"], output["tenant"]) == ("dec-stamp-1", "tenant-a")
    assert output["sha256"] == stamped.signed.sha256
    manifest = result["recovered"]["manifest"]
    assert manifest["active_manifest_id"] == stamped.signed.manifest_id
    # the signature still validates; the hard binding cannot match re-encoded pixels
    assert "assertion.dataHash.mismatch" in manifest["failure_codes"]


def test_tampered_files_get_the_right_status(
    credentials: ContentCredentials, dev_credentials: SigningCredentials
) -> None:
    anchors = dev_credentials.trust_anchor_pem
    first = credentials.stamp(
        _artifact(_png(textured_image(seed=1)), "image/png"),
        _spec(),
        watermark=True,
        self_check=False,
    )
    second = credentials.stamp(
        _artifact(_png(textured_image(seed=2)), "image/png"),
        _spec(),
        watermark=True,
        self_check=False,
    )
    # a flipped pixel byte
    data = bytearray(first.signed.data)
    data[data.index(b"IDAT") + 40] ^= 0x21
    flipped = inspect_asset(bytes(data), trust_anchors_pem=anchors, audio_key=KEY)
    assert flipped.c2pa.validation_state == "Invalid"
    assert "assertion.dataHash.mismatch" in flipped.c2pa.failure_codes
    # the manifest of the second output pasted onto the pixels of the first
    swapped = read_manifest(
        _swap_manifest(first.signed.data, second.signed.data),
        "image/png",
        trust_anchors_pem=anchors,
    )
    assert swapped.validation_state == "Invalid"
    assert "assertion.dataHash.mismatch" in swapped.failure_codes
    # a truncated file: a clear read error, never a crash
    with pytest.raises(ManifestReadError):
        inspect_asset(
            first.signed.data[: len(first.signed.data) // 3],
            trust_anchors_pem=anchors,
            audio_key=KEY,
        )


def _swap_manifest(target: bytes, donor: bytes) -> bytes:
    """PNG chunks of ``target`` with its caBX (C2PA) chunk replaced by ``donor``'s."""

    def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
        out, offset = [], 8
        while offset < len(png):
            length = int.from_bytes(png[offset : offset + 4], "big")
            kind = png[offset + 4 : offset + 8]
            out.append((kind, png[offset : offset + 12 + length]))
            offset += 12 + length
        return out

    donor_manifest = next(raw for kind, raw in chunks(donor) if kind == b"caBX")
    return target[:8] + b"".join(
        donor_manifest if kind == b"caBX" else raw for kind, raw in chunks(target)
    )
