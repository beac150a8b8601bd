"""Image generation through the official openai client: signed, blocked, audited."""

from __future__ import annotations

import base64
import io

import httpx
import openai
import pytest
from PIL import Image, ImageChops, ImageStat

from provenance.verify import read_manifest
from tests.e2e.audit_helpers import count, record_for
from tests.e2e.conftest import RunningGateway

PROMPT = "a lighthouse on a cliff at dawn, watercolour"


def trust_anchor(gateway: RunningGateway) -> bytes:
    return (gateway.settings.data_dir / "dev-ca" / "ca.pem").read_bytes()


def test_images_are_signed_with_c2pa_and_audited(gateway: RunningGateway) -> None:
    client = gateway.client()
    with gateway.redis() as r:
        before = count(r, "default")
    raw = client.images.with_raw_response.generate(
        prompt=PROMPT, n=2, size="512x512", response_format="b64_json"
    )
    result = raw.parse()
    decision_id = raw.headers["x-genguard-decision-id"]
    assert raw.headers["x-genguard-decision"] == "allow"
    assert float(raw.headers["x-genguard-overhead-ms"]) > 0
    assert len(result.data) == 2
    blobs = [base64.b64decode(item.b64_json or "") for item in result.data]
    assert blobs[0] != blobs[1]
    for blob in blobs:
        image = Image.open(io.BytesIO(blob))
        assert (image.format, image.size) == ("PNG", (512, 512))
        assert PROMPT.encode() not in blob
        report = read_manifest(blob, "image/png", trust_anchors_pem=trust_anchor(gateway))
        assert report.validation_state == "Trusted", report.failure_codes
        actions = [a["action"] for a in report.actions]
        assert actions == ["c2pa.created"]
        assert report.actions[0]["digitalSourceType"].endswith("trainedAlgorithmicMedia")
        assert report.genguard is not None
        assert report.genguard["decision_id"] == decision_id
        assert report.genguard["generator"] == "procedural"
        assert report.genguard["model"] == "genguard-procedural-demo"
        assert report.genguard["policy_revision"].startswith("sha256:")
        assert "prompt" not in str(report.raw).lower()
    with gateway.redis() as r:
        assert count(r, "default") == before + 1
        record = record_for(r, "default", decision_id)
    assert record["decision"]["action"] == "allow"
    assert record["input"]["prompt"] == PROMPT
    # one entry per classifier: the default policy runs several prompt classifiers
    assert list(dict.fromkeys(s["stage"] for s in record["stages"])) == [
        "prompt", "harden", "generate", "output", "provenance",
    ]  # fmt: skip
    assert len(record["outputs"]) == 2
    assert all(o["c2pa_manifest_id"] for o in record["outputs"])
    assert record["metrics"]["overhead_ms"] > 0


def test_blocked_prompt_raises_content_policy_violation(gateway: RunningGateway) -> None:
    client = gateway.client()
    with gateway.redis() as r:
        before = count(r, "default")
    with pytest.raises(openai.BadRequestError) as info:
        client.images.generate(prompt="a nude woman on a beach", response_format="b64_json")
    error = info.value
    assert error.code == "content_policy_violation"
    body = error.body
    assert isinstance(body, dict)
    decision_id = body["decision_id"]
    assert error.response.headers["x-genguard-decision"] == "block"
    with gateway.redis() as r:
        assert count(r, "default") == before + 1
        record = record_for(r, "default", decision_id)
    assert record["decision"]["action"] == "block"
    assert record["decision"]["reasons"][0]["rule"] == "prompt-sexual"
    stages = [s["stage"] for s in record["stages"]]
    assert "generate" not in stages  # the generator was never called
    assert record["outputs"] == []


def test_obfuscated_prompt_is_blocked(gateway: RunningGateway) -> None:
    client = gateway.client()
    with pytest.raises(openai.BadRequestError) as info:
        client.images.generate(prompt="a n\u200bu\u0501e woman", response_format="b64_json")
    assert info.value.code == "content_policy_violation"
    body = info.value.body
    assert isinstance(body, dict)
    with gateway.redis() as r:
        record = record_for(r, "default", body["decision_id"])
    rules = {reason["rule"] for reason in record["decision"]["reasons"]}
    assert "prompt-obfuscation" in rules


def test_url_response_format_serves_signed_image(gateway: RunningGateway) -> None:
    result = gateway.client().images.generate(prompt=PROMPT, size="256x256", response_format="url")
    url = result.data[0].url
    assert url is not None and url.startswith(gateway.base_url)
    fetched = httpx.get(url)
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "image/png"
    report = read_manifest(fetched.content, "image/png", trust_anchors_pem=trust_anchor(gateway))
    assert report.validation_state == "Trusted"


def test_same_seed_same_image(gateway: RunningGateway) -> None:
    client = gateway.client()
    kwargs = {"prompt": PROMPT, "size": "256x256", "response_format": "b64_json"}
    first = client.images.generate(**kwargs, extra_body={"seed": 7})  # type: ignore[arg-type]
    second = client.images.generate(**kwargs, extra_body={"seed": 7})  # type: ignore[arg-type]
    pixels = [
        Image.open(io.BytesIO(base64.b64decode(r.data[0].b64_json or ""))).convert("RGB")
        for r in (first, second)
    ]
    # each output carries its own invisible watermark id: same picture, a few levels apart
    difference = ImageChops.difference(pixels[0], pixels[1])
    mean_levels = sum(ImageStat.Stat(difference).mean) / 3
    assert mean_levels < 2.0
