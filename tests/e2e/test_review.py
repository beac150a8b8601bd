"""Human review end to end: a ``review`` rule holds the output (HTTP 202), a reviewer approves or
rejects it through ``/admin/review/*``, the requester fetches it from ``/v1/reviews/{id}``."""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.audit_helpers import record_for, stream_records
from tests.e2e.conftest import RunningGateway, create_keys

POLICY = """
id: reviewed
prompt:
  classifiers: [term_list]
  terms:
    illicit: [heist]
  rules:
    - {id: heist-review, category: illicit, threshold: 0.5, action: review}
output:
  image: {classifiers: []}
"""


@dataclass(frozen=True)
class Keys:
    client: str
    reviewer: str
    auditor: str
    other_client: str


@pytest.fixture(scope="module")
def keys(gateway: RunningGateway) -> Keys:
    specs = [("acme", "client"), ("acme", "reviewer"), ("acme", "auditor"), ("globex", "client")]
    return Keys(*create_keys(gateway.redis_url, specs))


@pytest.fixture
def http(gateway: RunningGateway) -> Iterator[httpx.Client]:
    with gateway.http(key="") as client:
        yield client


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def speech(http: httpx.Client, key: str, text: str) -> httpx.Response:
    body = {"model": "genguard-espeak-tts", "voice": "alloy", "input": text}
    return http.post("/v1/audio/speech", json=body, headers=auth(key))


def test_held_speech_is_delivered_once_approved(
    gateway: RunningGateway, keys: Keys, http: httpx.Client
) -> None:
    held = speech(http, keys.client, "the heist starts at midnight")
    assert held.status_code == 202, held.text
    body = held.json()
    decision_id = held.headers["x-genguard-decision-id"]
    assert body["id"] == decision_id and body["status"] == "pending"
    assert body["location"] == f"/v1/reviews/{decision_id}" == held.headers["location"]
    assert held.headers["x-genguard-decision"] == "review"
    with gateway.redis() as r:
        record = record_for(r, "acme", decision_id)
    assert record["decision"]["action"] == "review"
    assert len(record["outputs"]) == 1  # generated and signed, then held

    pending = http.get(f"/v1/reviews/{decision_id}", headers=auth(keys.client))
    assert pending.status_code == 202 and pending.json()["status"] == "pending"
    # another tenant cannot even learn that it exists
    assert (
        http.get(f"/v1/reviews/{decision_id}", headers=auth(keys.other_client)).status_code == 404
    )
    # a client or an auditor is not a reviewer
    for key in (keys.client, keys.auditor):
        refused = http.get("/admin/review", headers=auth(key))
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_role"

    queue = http.get("/admin/review", headers=auth(keys.reviewer)).json()
    assert [item["id"] for item in queue["data"]] == [decision_id]
    assert queue["data"][0]["reasons"][0]["rule"] == "heist-review"
    listened = http.get(f"/admin/review/{decision_id}/outputs/0", headers=auth(keys.reviewer))
    assert listened.headers["content-type"] == "audio/wav"

    approved = http.post(
        f"/admin/review/{decision_id}/approve",
        json={"note": "fiction"},
        headers=auth(keys.reviewer),
    )
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    again = http.post(f"/admin/review/{decision_id}/reject", headers=auth(keys.reviewer))
    assert again.status_code == 409 and again.json()["error"]["code"] == "review_already_decided"
    assert http.get("/admin/review", headers=auth(keys.reviewer)).json()["data"] == []

    delivered = http.get(f"/v1/reviews/{decision_id}", headers=auth(keys.client))
    assert delivered.status_code == 200 and delivered.headers["content-type"] == "audio/wav"
    assert delivered.content == listened.content
    with wave.open(io.BytesIO(delivered.content)) as reader:
        assert reader.getnframes() > reader.getframerate()  # over a second of speech
    with gateway.redis() as r:
        routes = [record["route"] for record in stream_records(r, "acme")]
    assert "admin.review.approve" in routes and "review.fetch" in routes


def test_a_rejected_image_is_never_delivered(
    gateway: RunningGateway, keys: Keys, http: httpx.Client
) -> None:
    body = {"prompt": "a heist movie poster", "size": "256x256", "response_format": "b64_json"}
    held = http.post("/v1/images/generations", json=body, headers=auth(keys.client))
    assert held.status_code == 202, held.text
    decision_id = held.json()["id"]
    rejected = http.post(
        f"/admin/review/{decision_id}/reject", json={"note": "no"}, headers=auth(keys.reviewer)
    )
    assert rejected.json()["status"] == "rejected" and rejected.json()["note"] == "no"
    answer = http.get(f"/v1/reviews/{decision_id}", headers=auth(keys.client))
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "review_rejected"
    # allowed requests are untouched by the review machinery
    body["prompt"] = "a lighthouse at dawn"
    allowed = http.post("/v1/images/generations", json=body, headers=auth(keys.client))
    assert allowed.status_code == 200 and allowed.json()["data"][0]["b64_json"]
