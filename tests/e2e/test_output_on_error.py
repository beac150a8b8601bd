"""Output classifiers that time out follow the stage's ``on_error``: ``allow`` delivers the
images with a ``flag`` and the failure recorded; ``block`` refuses the speech. Both are audited.

The stages' timeout is one microsecond, so NudeNet (tens of milliseconds per image) and
pocketsphinx (tens of milliseconds per second of speech) cannot finish in time; only such slow
classifiers are used here, so the outcome does not depend on the machine's speed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.settings import Settings
from tests.e2e.audit_helpers import record_for
from tests.e2e.conftest import RunningGateway, settings_with_policy

POLICY = """
id: on-error
prompt:
  classifiers: [term_list]
output:
  image:
    classifiers: [nudenet]
    timeout_s: 0.000001
    on_error: allow
    rules:
      - {id: output-nudity, category: nudity, threshold: 0.6, action: block}
  audio:
    classifiers: [transcript]
    timeout_s: 0.000001
    on_error: block
    rules:
      - {id: spoken-violence, category: violence, threshold: 0.5, action: block}
"""


@pytest.fixture(scope="module")
def gateway_settings(clean_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return settings_with_policy(clean_redis, tmp_path_factory.mktemp("genguard"), POLICY)


@pytest.fixture
def http(gateway: RunningGateway) -> Iterator[httpx.Client]:
    with gateway.http() as client:
        yield client


def failures(record: dict[str, Any], classifier: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The classifier's stage entry and the (only) reason of the decision."""
    [stage] = [s for s in record["stages"] if s["classifier"] == classifier]
    [reason] = record["decision"]["reasons"]
    return stage, reason


def test_on_error_allow_delivers_the_images_flagged(
    gateway: RunningGateway, http: httpx.Client
) -> None:
    body = {"prompt": "two lighthouses", "n": 2, "size": "256x256", "response_format": "b64_json"}
    response = http.post("/v1/images/generations", json=body)
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 2
    assert response.headers["x-genguard-decision"] == "flag"
    with gateway.redis() as r:
        record = record_for(r, "default", response.headers["x-genguard-decision-id"])
    stage, reason = failures(record, "nudenet")
    assert (stage["stage"], stage["verdict"], stage["error"]) == ("output", "error", "timed out")
    assert reason["rule"] == "on_error:allow" and reason["category"] == "classifier-error"
    assert (reason["stage"], reason["score"]) == ("output", 1.0)
    assert record["decision"]["action"] == "flag"
    assert len(record["outputs"]) == 2  # both images delivered (and signed)


def test_on_error_block_refuses_the_speech(gateway: RunningGateway, http: httpx.Client) -> None:
    body = {"model": "genguard-espeak-tts", "voice": "alloy", "input": "A calm morning at sea."}
    response = http.post("/v1/audio/speech", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "content_policy_violation"
    with gateway.redis() as r:
        record = record_for(r, "default", response.headers["x-genguard-decision-id"])
    stage, reason = failures(record, "transcript")
    assert (stage["stage"], stage["verdict"], stage["error"]) == ("output", "error", "timed out")
    assert reason["rule"] == "on_error:block" and reason["category"] == "classifier-error"
    assert record["decision"]["action"] == "block"
    assert record.get("outputs", []) == []  # nothing delivered
