"""Protected voices end to end: enrol a voice through ``/admin/voices``, speech in that voice is
then blocked as ``protected-person``; removing it lets the same request through."""

from __future__ import annotations

import base64

import httpx

from tests.e2e.audit_helpers import record_for, stream_records
from tests.e2e.conftest import RunningGateway

POLICY = """
id: voices
prompt:
  classifiers: [term_list]
output:
  image: {classifiers: []}
  audio:
    classifiers: [protected_voice]
    rules:
      - {id: cloned-voice, category: protected-person, threshold: 0.75, action: block}
"""


def speech(http: httpx.Client, text: str) -> httpx.Response:
    body = {"model": "genguard-espeak-tts", "voice": "onyx", "input": text}
    return http.post("/v1/audio/speech", json=body)


def test_an_enrolled_voice_is_blocked_until_removed(
    gateway: RunningGateway, http: httpx.Client
) -> None:
    sample = speech(http, "This is my voice, and I do not want it cloned by anyone at all.")
    assert sample.status_code == 200
    audio_b64 = base64.b64encode(sample.content).decode("ascii")
    enrolled = http.post("/admin/voices", json={"name": "onyx-speaker", "audio_b64": audio_b64})
    assert enrolled.status_code == 201, enrolled.text
    assert [v["name"] for v in http.get("/admin/voices").json()["data"]] == ["onyx-speaker"]

    cloned = speech(http, "Completely different words spoken in the same voice as before.")
    assert cloned.status_code == 400
    assert cloned.json()["error"]["code"] == "content_policy_violation"
    with gateway.redis() as r:
        record = record_for(r, "default", cloned.headers["x-genguard-decision-id"])
    reason = record["decision"]["reasons"][0]
    assert reason["category"] == "protected-person" and reason["score"] >= 0.75

    bad = http.post("/admin/voices", json={"name": "../x", "audio_b64": audio_b64})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "name"
    assert http.delete("/admin/voices/onyx-speaker").status_code == 200
    assert http.delete("/admin/voices/onyx-speaker").status_code == 404
    assert speech(http, "Completely different words spoken in the same voice as before.").is_success
    with gateway.redis() as r:
        routes = [record["route"] for record in stream_records(r, "default")]
    assert routes.count("admin.voices.enrol") == 1 and routes.count("admin.voices.remove") == 1
