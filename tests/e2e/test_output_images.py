"""The image output stage through the official openai client: NudeNet per-label configuration,
the ``blur`` action (regions obscured, recorded in the audit record and the C2PA manifest).

There is no nude imagery in the repository, so ``blur`` is exercised the way a privacy policy
uses it: NudeNet's ``FACE_FEMALE`` label mapped to ``protected-person`` and blurred. The photo is
skimage's astronaut (a face at x=173 y=82 w=101 h=97), served by the fake upstream provider.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from PIL import Image

from gateway.settings import Settings, UpstreamSettings
from provenance.marking import detect_watermark
from provenance.verify import read_manifest
from tests.conftest import SHARED_EVAL
from tests.e2e.audit_helpers import record_for
from tests.e2e.conftest import RunningGateway, make_key
from tests.fake_upstream import FakeUpstream, serve_fake_upstream

ASTRONAUT = SHARED_EVAL / "media" / "images" / "skimage" / "astronaut.png"
pytestmark = pytest.mark.skipif(not ASTRONAUT.is_file(), reason=f"{ASTRONAUT} not present")

POLICY = """
id: blur-faces
prompt:
  classifiers: [term_list]
output:
  image:
    classifiers: [nudenet]
    blur: {method: pixelate, blocks: 6, padding: 0.1}
    nudenet:
      labels: {FACE_FEMALE: 0.5, FEMALE_BREAST_EXPOSED: 0.7}
      categories: {FACE_FEMALE: [protected-person]}
    rules:
      - {id: faces, category: protected-person, threshold: 0.5, action: blur}
      - {id: output-nudity, category: nudity, threshold: 0.6, action: block}
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with serve_fake_upstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway_settings(
    clean_redis: str, tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream
) -> Settings:
    data_dir: Path = tmp_path_factory.mktemp("genguard-output-images")
    policy = data_dir / "blur-faces.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    return Settings(
        redis_url=clean_redis,
        data_dir=data_dir,
        bootstrap_key=make_key(),
        policy_file=policy,
        image_generator="openai_compat",
        upstream=UpstreamSettings(base_url=upstream.base_url, image_models=("gpt-image-1",)),
    )


def test_blur_obscures_the_face_and_is_signed_and_audited(
    gateway: RunningGateway, upstream: FakeUpstream
) -> None:
    original = ASTRONAUT.read_bytes()
    upstream.image = original
    raw = gateway.client().images.with_raw_response.generate(
        prompt="an astronaut portrait", response_format="b64_json"
    )
    result = raw.parse()
    decision_id = raw.headers["x-genguard-decision-id"]
    assert raw.headers["x-genguard-decision"] == "blur"
    blob = base64.b64decode(result.data[0].b64_json or "")
    delivered = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"), dtype=np.int16)
    source = np.asarray(Image.open(ASTRONAUT).convert("RGB"), dtype=np.int16)
    x, y, w, h = 173, 82, 101, 97
    face = (slice(y + 10, y + h - 10), slice(x + 10, x + w - 10))
    # pixelated: the face region is now 6 cells across, so it lost most of its detail
    assert np.abs(delivered[face] - source[face]).mean() > 10
    # the watermark changes pixels slightly everywhere; away from the face the photo is intact
    far = (slice(350, 500), slice(350, 500))
    assert np.abs(delivered[far] - source[far]).mean() < 3

    ca = (gateway.settings.data_dir / "dev-ca" / "ca.pem").read_bytes()
    report = read_manifest(blob, "image/png", trust_anchors_pem=ca)
    assert report.validation_state == "Trusted", report.failure_codes
    assert [a["action"] for a in report.actions] == ["c2pa.created", "c2pa.edited"]
    assert report.actions[1]["parameters"]["redaction"] == "pixelate 1 region (protected-person)"
    assert report.genguard is not None
    assert report.genguard["redaction"] == "pixelate 1 region (protected-person)"
    assert {"stage": "output", "verdict": "blur"} in report.genguard["stages"]

    with gateway.redis() as r:
        record = record_for(r, "default", decision_id)
    assert record["decision"]["action"] == "blur"
    [reason] = record["decision"]["reasons"]
    assert (reason["rule"], reason["category"]) == ("faces", "protected-person")
    [nudenet] = [s for s in record["stages"] if s["classifier"] == "nudenet"]
    assert nudenet["verdict"] == "blur"
    [box] = nudenet["evidence"]
    assert "FACE_FEMALE at x=173 y=82 w=101 h=97" in box["detail"]
    blur = [s for s in record["stages"] if s["classifier"] == "blur"]
    assert len(blur) == 1 and blur[0]["verdict"] == "blur"
    [note] = blur[0]["evidence"][0]["detail"]["blurred"]
    assert note == {
        "image": 0,
        "method": "pixelate",
        "regions": [[173, 82, 101, 97]],
        "categories": ["protected-person"],
    }
    # the watermark started alongside the classifiers marked the unblurred pixels: it was
    # discarded, and provenance marked the blurred image (the one delivered) instead
    detail = _provenance_detail(record)
    assert detail["watermark_early"] == [False]
    assert _watermark_in(blob) == detail["watermarks"]
    assert detail["manifests"] == [report.active_manifest_id]


def test_an_image_delivered_unchanged_carries_the_watermark_started_with_the_classifiers(
    gateway: RunningGateway, upstream: FakeUpstream
) -> None:
    upstream.image = _png(Image.open(ASTRONAUT).crop((256, 256, 512, 512)))  # no face here
    raw = gateway.client().images.with_raw_response.generate(
        prompt="the astronaut's flag", response_format="b64_json"
    )
    assert raw.headers["x-genguard-decision"] == "allow"
    [image] = raw.parse().data or []
    blob = base64.b64decode(image.b64_json or "")
    with gateway.redis() as r:
        record = record_for(r, "default", raw.headers["x-genguard-decision-id"])
    detail = _provenance_detail(record)
    assert detail["watermark_early"] == [True]
    assert detail["unmarked"] == []
    [watermark_id] = detail["watermarks"]
    assert _watermark_in(blob) == [watermark_id]
    ca = (gateway.settings.data_dir / "dev-ca" / "ca.pem").read_bytes()
    report = read_manifest(blob, "image/png", trust_anchors_pem=ca)
    assert report.validation_state == "Trusted", report.failure_codes
    assert detail["manifests"] == [report.active_manifest_id]


def _provenance_detail(record: dict[str, Any]) -> dict[str, Any]:
    [entry] = [s for s in record["stages"] if s["stage"] == "provenance"]
    [evidence] = entry["evidence"]
    detail: dict[str, Any] = evidence["detail"]
    return detail


def _watermark_in(blob: bytes) -> list[str | None]:
    return [detect_watermark(blob, "image/png", audio_key=b"").watermark_id]


def test_per_label_threshold_above_the_score_lets_the_image_through(
    gateway: RunningGateway, upstream: FakeUpstream
) -> None:
    upstream.image = _png(Image.open(ASTRONAUT).crop((300, 300, 512, 512)))  # no face here
    raw = gateway.client().images.with_raw_response.generate(prompt="the astronaut's flag")
    assert raw.headers["x-genguard-decision"] == "allow"
    assert upstream.image is not None


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def data_url(blob: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(blob).decode('ascii')}"


def test_moderations_accept_multimodal_image_parts(gateway: RunningGateway) -> None:
    client = gateway.client()
    # JPEG: the gateway's default request limit is 1 MB (GENGUARD_LIMITS__MAX_BODY_BYTES)
    buffer = io.BytesIO()
    Image.open(ASTRONAUT).convert("RGB").save(buffer, "JPEG", quality=90)
    face = data_url(buffer.getvalue(), "image/jpeg")
    no_face = data_url(_png(Image.open(ASTRONAUT).crop((300, 300, 512, 512))))
    flagged = client.moderations.create(
        model="omni-moderation-latest",
        input=[
            {"type": "text", "text": "an astronaut portrait"},
            {"type": "image_url", "image_url": {"url": face}},
        ],
    )
    [result] = flagged.results
    assert result.flagged is True
    categories = result.categories.model_dump(by_alias=True)
    scores = result.category_scores.model_dump(by_alias=True)
    applied = result.category_applied_input_types.model_dump(by_alias=True)
    assert categories["protected-person"] is True
    assert scores["protected-person"] > 0.5
    assert applied["protected-person"] == ["text", "image"]
    assert applied["hate"] == ["text"]  # NudeNet does not score hate
    assert categories["sexual"] is False

    clean = client.moderations.create(
        input=[{"type": "image_url", "image_url": {"url": no_face}}]
    ).results
    assert [r.flagged for r in clean] == [False]
    assert clean[0].category_applied_input_types.model_dump(by_alias=True)["hate"] == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.com/cat.png", "does not fetch remote images"),
        ("data:image/png;base64,@@@", "base64 data is not valid"),
        ("data:image/png;base64," + base64.b64encode(b"not an image").decode(), "decoded"),
        ("data:text/plain,hello", "expected data:image/<type>;base64"),
    ],
)
def test_moderations_refuse_image_urls_they_cannot_use(
    gateway: RunningGateway, url: str, message: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client().moderations.create(
            input=[{"type": "image_url", "image_url": {"url": url}}]
        )
    assert info.value.body is not None
    assert message in str(info.value.body)
    assert info.value.code in ("invalid_image_url", "invalid_image")
