"""Durable content credentials end to end: a generated image is watermarked, signed, registered,
audited, and ``POST /v1/provenance/verify`` reports it, also after its metadata is stripped."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from PIL import Image

from generators.base import Artifact, Modality
from provenance import ManifestSpec, ensure_dev_credentials
from provenance.signer import C2paSigner
from tests.e2e.audit_helpers import record_for
from tests.e2e.conftest import RunningGateway
from tests.provenance.test_provenance_tamper import MAKERS, flip_media_byte, swap_manifest

PROMPT = "a lighthouse on a cliff at dawn, watercolour"


def _verify(gateway: RunningGateway, data: bytes, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or gateway.admin_key}"}
    return httpx.post(
        f"{gateway.base_url}/v1/provenance/verify",
        files={"file": ("upload.bin", data, "application/octet-stream")},
        headers=headers,
        timeout=60,
    )


def test_generated_image_is_marked_registered_and_verifiable(gateway: RunningGateway) -> None:
    raw = gateway.client().images.with_raw_response.generate(
        prompt=PROMPT, size="512x512", response_format="b64_json"
    )
    decision_id = raw.headers["x-genguard-decision-id"]
    blob = base64.b64decode(raw.parse().data[0].b64_json or "")
    with gateway.redis() as r:
        record = record_for(r, "default", decision_id)
    watermark_id = record["outputs"][0]["watermark_id"]
    assert watermark_id and len(watermark_id) == 8

    signed = _verify(gateway, blob)
    assert signed.status_code == 200, signed.text
    report = signed.json()
    assert report["c2pa"]["validation_state"] == "Trusted"
    labels = {a["label"] for a in report["c2pa"]["assertions"]}
    assert {"c2pa.soft-binding", "org.genguard.decision"} <= labels
    assert report["watermark"]["watermark_id"] == watermark_id
    assert report["recovered"]["output"]["decision_id"] == decision_id

    stripped = io.BytesIO()
    Image.open(io.BytesIO(blob)).convert("RGB").save(stripped, "JPEG", quality=75)
    recovered = _verify(gateway, stripped.getvalue()).json()
    assert recovered["c2pa"]["present"] is False
    assert recovered["watermark"]["found"] is True
    assert recovered["recovered"]["output"]["decision_id"] == decision_id
    assert (
        recovered["recovered"]["manifest"]["active_manifest_id"]
        == record["outputs"][0]["c2pa_manifest_id"]
    )


def test_odd_uploads_get_a_clear_4xx(gateway: RunningGateway) -> None:
    garbage = _verify(gateway, b"this is not media at all")
    assert garbage.status_code == 415
    assert garbage.json()["error"]["code"] == "unsupported_media_type"
    truncated = _verify(gateway, b"\x89PNG\r\n\x1a\n" + bytes(30))
    assert truncated.status_code == 422
    assert truncated.json()["error"]["param"] == "file"
    empty = _verify(gateway, b"")
    assert empty.status_code == 422
    missing = httpx.post(
        f"{gateway.base_url}/v1/provenance/verify",
        headers={"Authorization": f"Bearer {gateway.admin_key}"},
        timeout=30,
    )
    assert missing.status_code == 400
    unauthenticated = _verify(gateway, b"x", key="gg_nope")
    assert unauthenticated.status_code == 401


def test_cli_verifies_a_file(gateway: RunningGateway, tmp_path: Path) -> None:
    blob = base64.b64decode(
        gateway.client().images.generate(prompt=PROMPT, size="512x512").data[0].b64_json or ""
    )
    path = tmp_path / "out.png"
    path.write_bytes(blob)
    env = {
        **os.environ,
        "GENGUARD_DATA_DIR": str(gateway.settings.data_dir),
        "GENGUARD_REDIS_URL": gateway.redis_url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "provenance", "verify", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["c2pa"]["validation_state"] == "Trusted"
    assert report["watermark"]["registered"] is True


def test_tampered_uploads_get_a_status_never_a_500(gateway: RunningGateway, tmp_path: Path) -> None:
    signer = C2paSigner(ensure_dev_credentials(tmp_path / "ca"))
    spec = ManifestSpec("offline-demo", "demo", "dec-tamper", "default", "rev-1")
    for mime_type, make in MAKERS.items():
        audio = mime_type.startswith("audio/")
        first, second = (
            signer.sign(
                Artifact(
                    make(seed),
                    mime_type,
                    Modality.AUDIO if audio else Modality.IMAGE,
                    "offline-demo",
                    "demo",
                    None if audio else 300,
                    None if audio else 300,
                    2.0 if audio else None,
                    None,
                ),
                spec,
            ).data
            for seed in (1, 2)
        )
        for tampered in (
            flip_media_byte(first, mime_type),
            swap_manifest(first, second, mime_type),
        ):
            response = _verify(gateway, tampered)
            assert response.status_code == 200, (mime_type, response.text)
            assert response.json()["c2pa"]["validation_state"] == "Invalid"
            assert "assertion.dataHash.mismatch" in response.json()["c2pa"]["failure_codes"]
        truncated = _verify(gateway, first[: len(first) // 2])
        if mime_type == "image/jpeg":  # the manifest survives at the front; the hash does not
            assert truncated.status_code == 200, truncated.text
            assert truncated.json()["c2pa"]["validation_state"] == "Invalid"
        else:
            assert truncated.status_code == 422, (mime_type, truncated.text)
            assert truncated.json()["error"]["param"] == "file"
