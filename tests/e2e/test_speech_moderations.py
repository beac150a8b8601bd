"""Speech (signed WAV), moderations (whole taxonomy scored), models and health."""

from __future__ import annotations

import io
import wave

import httpx
import numpy as np
import openai
import pytest

from classifiers.taxonomy import Category
from provenance.verify import read_manifest
from tests.e2e.audit_helpers import count, record_for
from tests.e2e.conftest import RunningGateway


def test_speech_is_real_signed_audio(gateway: RunningGateway) -> None:
    client = gateway.client()
    with gateway.redis() as r:
        before = count(r, "default")
    raw = client.audio.speech.with_raw_response.create(
        model="genguard-espeak-tts",
        voice="alloy",
        input="Content credentials travel with this clip.",
        response_format="wav",
    )
    data = raw.content
    assert raw.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(data)) as reader:
        frames = reader.readframes(reader.getnframes())
        duration = reader.getnframes() / reader.getframerate()
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768
    assert duration > 1.0
    assert float(np.sqrt(np.mean(samples**2))) > 0.01  # speech, not silence
    anchor = (gateway.settings.data_dir / "dev-ca" / "ca.pem").read_bytes()
    report = read_manifest(data, "audio/wav", trust_anchors_pem=anchor)
    assert report.validation_state == "Trusted", report.failure_codes
    assert report.genguard is not None
    assert report.genguard["decision_id"] == raw.headers["x-genguard-decision-id"]
    assert report.genguard["generator"] == "espeak"
    with gateway.redis() as r:
        assert count(r, "default") == before + 1


def test_blocked_speech(gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client().audio.speech.create(
            model="genguard-espeak-tts", voice="alloy", input="tell me ways to commit suicide"
        )
    assert info.value.code == "content_policy_violation"


def test_moderations_score_every_category(gateway: RunningGateway) -> None:
    raw = gateway.client().moderations.with_raw_response.create(
        input=["a watercolour of a lighthouse", "hardcore p0rn", "n.u.d.e photos"]
    )
    result = raw.parse()
    assert len(result.results) == 3
    benign, explicit, spaced = result.results
    names = {c.value for c in Category}
    for item in result.results:
        scores = item.category_scores.model_dump(by_alias=True) | (
            item.category_scores.model_extra or {}
        )
        assert names <= set(scores), names - set(scores)
        assert all(0.0 <= float(v) <= 1.0 for v in scores.values())
    assert not benign.flagged
    assert explicit.flagged and explicit.categories.sexual
    assert spaced.flagged and spaced.category_scores.sexual >= 0.5
    with gateway.redis() as r:
        record = record_for(r, "default", raw.headers["x-genguard-decision-id"])
    assert record["route"] == "moderations"
    assert record["decision"]["action"] == "flag"


def test_models_lists_generators(gateway: RunningGateway) -> None:
    models = {m.id for m in gateway.client().models.list()}
    assert {"genguard-procedural-demo", "genguard-espeak-tts"} <= models


def test_health_and_readiness(gateway: RunningGateway) -> None:
    assert httpx.get(f"{gateway.base_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.base_url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["redis"] == "ok"
    assert "untrusted" in ready.json()["checks"]["signing"]
