"""PDQ hash banks end to end: enrol an image through ``/admin/hashbanks``; generating that image
again, or moderating a re-encoded copy of it, is then blocked as ``hash-match``; deleting the
bank lets the same request through. Every change is audited."""

from __future__ import annotations

import base64
import io

import httpx
import openai
import pytest
from PIL import Image

from generators.procedural import render_procedural_png
from tests.e2e.audit_helpers import record_for, stream_records
from tests.e2e.conftest import RunningGateway

POLICY = """
id: hashbanks
prompt:
  classifiers: [term_list]
output:
  image:
    classifiers: [nudenet, pdq_bank]
    rules:
      - {id: known-image, category: hash-match, threshold: 0.5, action: block}
"""
PROMPT, SEED, SIZE = "a lighthouse at dawn", 11, (256, 256)


def generate(client: openai.OpenAI, prompt: str) -> object:
    size = f"{SIZE[0]}x{SIZE[1]}"
    return client.images.generate(
        prompt=prompt,
        size=size,  # type: ignore[arg-type]
        response_format="b64_json",
        extra_body={"seed": SEED},
    )


def jpeg_data_url(png: bytes) -> str:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(buffer, "JPEG", quality=75)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def test_an_enrolled_image_is_blocked_until_its_bank_is_deleted(
    gateway: RunningGateway, http: httpx.Client
) -> None:
    client = gateway.client()
    png = render_procedural_png(PROMPT, SEED, SIZE)
    generate(client, PROMPT)  # allowed before enrolment

    created = http.post("/admin/hashbanks", json={"name": "known-bad", "threshold": 31})
    assert created.status_code == 201, created.text
    assert http.post("/admin/hashbanks", json={"name": "known-bad"}).status_code == 409
    added = http.post(
        "/admin/hashbanks/known-bad/hashes", files={"file": ("known.png", png, "image/png")}
    )
    assert added.status_code == 201, added.text
    [value] = added.json()["added"]
    listed = http.get("/admin/hashbanks").json()["data"]
    assert [(b["name"], b["category"], b["size"]) for b in listed] == [
        ("known-bad", "hash-match", 1)
    ]

    with pytest.raises(openai.BadRequestError) as info:
        generate(client, PROMPT)
    assert info.value.code == "content_policy_violation"
    body = info.value.body
    assert isinstance(body, dict)
    with gateway.redis() as r:
        record = record_for(r, "default", body["decision_id"])
    [reason] = record["decision"]["reasons"]
    assert reason["rule"] == "known-image" and reason["category"] == "hash-match"

    moderated = client.moderations.create(
        input=[{"type": "image_url", "image_url": {"url": jpeg_data_url(png)}}]
    )
    [result] = moderated.results
    assert result.flagged is True
    assert result.category_scores.model_dump(by_alias=True)["hash-match"] > 0.85
    generate(client, "a field of red tulips")  # an unrelated image still goes through

    bad = http.post("/admin/hashbanks/known-bad/hashes", json={"hashes": ["00ff"]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "hashes"
    assert http.post("/admin/hashbanks/missing/hashes", json={"hashes": [value]}).status_code == 404
    assert http.delete(f"/admin/hashbanks/known-bad/hashes/{value}").status_code == 200
    assert http.delete(f"/admin/hashbanks/known-bad/hashes/{value}").status_code == 404
    generate(client, PROMPT)  # the bank is empty again
    assert http.post("/admin/hashbanks/known-bad/hashes", json={"hashes": [value]}).is_success
    assert http.delete("/admin/hashbanks/known-bad").status_code == 200
    assert http.delete("/admin/hashbanks/known-bad").status_code == 404
    generate(client, PROMPT)

    with gateway.redis() as r:
        routes = [record["route"] for record in stream_records(r, "default")]
    assert routes.count("admin.hashbanks.create") == 1
    assert routes.count("admin.hashbanks.add") == 2
    assert routes.count("admin.hashbanks.remove_hash") == 1
    assert routes.count("admin.hashbanks.delete") == 1
