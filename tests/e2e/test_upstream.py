"""GenGuard in front of a (fake) third-party OpenAI-compatible upstream."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from gateway.settings import Settings, UpstreamSettings
from generators.procedural import render_procedural_png
from provenance.verify import read_manifest
from tests.e2e.audit_helpers import count, record_for
from tests.e2e.conftest import RunningGateway, make_key
from tests.fake_upstream import FakeUpstream, serve_fake_upstream

UPSTREAM_KEY = "sk-upstream-secret-0123456789"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with serve_fake_upstream(api_key=UPSTREAM_KEY) as fake:
        fake.slow_s = 4.0
        yield fake


@pytest.fixture(scope="module")
def gateway_settings(
    clean_redis: str, tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream
) -> Settings:
    data_dir: Path = tmp_path_factory.mktemp("genguard-upstream")
    return Settings(
        redis_url=clean_redis,
        data_dir=data_dir,
        bootstrap_key=make_key(),
        image_generator="openai_compat",
        speech_generator="openai_compat",
        upstream=UpstreamSettings(
            base_url=upstream.base_url,
            api_key=UPSTREAM_KEY,
            timeout_s=1.5,
            image_models=("gpt-image-1",),
            speech_models=("tts-1",),
        ),
    )


@pytest.fixture(autouse=True)
def reset(upstream: FakeUpstream) -> None:
    upstream.reset()


def test_forwarded_with_upstream_key_and_signed(
    gateway: RunningGateway, upstream: FakeUpstream
) -> None:
    raw = gateway.client().images.with_raw_response.generate(
        model="gpt-image-1",
        prompt="a paper boat",
        n=2,
        size="256x256",
        response_format="b64_json",
    )
    result = raw.parse()
    (forwarded,) = upstream.requests_to("/v1/images/generations")
    assert forwarded.authorization == f"Bearer {UPSTREAM_KEY}"  # its own key, not the client's
    assert forwarded.body["prompt"] == "a paper boat" and forwarded.body["n"] == 2
    anchor = (gateway.settings.data_dir / "dev-ca" / "ca.pem").read_bytes()
    for item in result.data:
        blob = base64.b64decode(item.b64_json or "")
        report = read_manifest(blob, "image/png", trust_anchors_pem=anchor)
        assert report.validation_state == "Trusted"
        assert report.genguard is not None
        assert report.genguard["generator"] == "openai_compat"
        assert report.genguard["model"] == "gpt-image-1"


def test_edits_and_variations_are_forwarded_as_multipart_and_signed_with_their_input(
    gateway: RunningGateway, upstream: FakeUpstream
) -> None:
    photo = render_procedural_png("an upload", 3, (256, 256))
    client = gateway.client()
    edited = client.images.edit(
        model="gpt-image-1",
        image=("holiday.png", photo, "image/png"),
        prompt="add a paper boat",
        response_format="b64_json",
    )
    client.images.create_variation(
        model="gpt-image-1", image=("holiday.png", photo, "image/png"), response_format="b64_json"
    )
    (edit,) = upstream.requests_to("/v1/images/edits")
    (variation,) = upstream.requests_to("/v1/images/variations")
    for forwarded in (edit, variation):
        assert forwarded.authorization == f"Bearer {UPSTREAM_KEY}"
        [sent] = [f for f in forwarded.body["files"] if str(f["field"]).startswith("image")]
        assert sent["data"] == photo  # the upload's own bytes, not a re-encoding
        assert sent["filename"] != "holiday.png"  # the client's file name stays here
    assert edit.body["fields"]["prompt"] == "add a paper boat"
    anchor = (gateway.settings.data_dir / "dev-ca" / "ca.pem").read_bytes()
    blob = base64.b64decode(edited.data[0].b64_json or "")
    report = read_manifest(blob, "image/png", trust_anchors_pem=anchor)
    assert report.validation_state == "Trusted"
    assert report.genguard is not None and report.genguard["generator"] == "openai_compat"
    assert [a["action"] for a in report.actions] == ["c2pa.opened", "c2pa.edited"]


def test_blocked_prompt_never_reaches_upstream(
    gateway: RunningGateway, upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError):
        gateway.client().images.generate(model="gpt-image-1", prompt="gore and dismemberment")
    assert upstream.requests_to("/v1/images/generations") == []


@pytest.mark.parametrize(
    ("mode", "error_type", "status", "code"),
    [
        ("error_500", openai.InternalServerError, 502, "upstream_error"),
        ("error_400", openai.BadRequestError, 400, "content_policy_violation"),
        ("garbage", openai.InternalServerError, 502, "upstream_bad_response"),
        ("short", openai.InternalServerError, 502, "upstream_bad_response"),
        ("slow", openai.InternalServerError, 504, "upstream_timeout"),
    ],
)
def test_upstream_failures_map_to_openai_errors_and_are_audited(
    gateway: RunningGateway,
    upstream: FakeUpstream,
    mode: str,
    error_type: type[openai.APIStatusError],
    status: int,
    code: str,
) -> None:
    upstream.mode = mode  # type: ignore[assignment]
    with gateway.redis() as r:
        before = count(r, "default")
    with pytest.raises(error_type) as info:
        gateway.client().images.generate(model="gpt-image-1", prompt="a paper boat", n=2)
    error = info.value
    assert error.status_code == status
    assert error.code == code
    body = error.body
    assert isinstance(body, dict)
    assert UPSTREAM_KEY not in str(body)
    with gateway.redis() as r:
        assert count(r, "default") == before + 1
        record = record_for(r, "default", body["decision_id"])
    assert record["decision"]["action"] == "error"
    assert record["error"]["code"] == code
    generate = next(s for s in record["stages"] if s["stage"] == "generate")
    assert generate["verdict"] == "error" and generate["error"]
    assert UPSTREAM_KEY not in str(record)


def test_speech_through_upstream(gateway: RunningGateway, upstream: FakeUpstream) -> None:
    raw = gateway.client().audio.speech.with_raw_response.create(
        model="tts-1", voice="alloy", input="hello there", response_format="wav"
    )
    assert raw.content[:4] == b"RIFF"
    assert upstream.requests_to("/v1/audio/speech")[0].body["input"] == "hello there"
    anchor = (gateway.settings.data_dir / "dev-ca" / "ca.pem").read_bytes()
    assert read_manifest(raw.content, "audio/wav", trust_anchors_pem=anchor).trusted
