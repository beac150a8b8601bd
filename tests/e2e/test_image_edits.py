"""Image edits and variations through the official openai client: the uploads pass the input stage
(hash banks, combined rules), outputs are signed with their inputs as C2PA ingredients, and an
upload that GenGuard produced links the new decision to the earlier one."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import c2pa
import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from generators.procedural import render_procedural_png
from provenance.ingredients import COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
from tests.e2e.audit_helpers import record_for
from tests.e2e.conftest import RunningGateway

POLICY = """
id: edits
prompt:
  classifiers: [term_list, prompt_head]
  terms:
    sexual: [naked, nude]
  rules:
    - {id: prompt-sexual, category: sexual, threshold: 0.5, classifiers: [term_list]}
output:
  image:
    classifiers: [nudenet]
    rules:
      - {id: output-nudity, category: nudity, threshold: 0.6}
input:
  classifiers: [nudenet, pdq_bank]
  rules:
    - {id: input-known-bad, category: hash-match, threshold: 0.5, action: block}
    - {id: input-protected-person, category: protected-person, threshold: 0.5, action: flag}
  combined:
    - id: protected-person-sexual
      when:
        - {stage: input, category: protected-person, threshold: 0.5}
        - {stage: prompt, category: sexual, threshold: 0.5, classifiers: [prompt_head]}
"""
SIZE = (512, 512)


def photo(seed: int) -> bytes:
    return render_procedural_png("an upload", seed, SIZE)


def mask_png(box: tuple[int, int, int, int] = (128, 128, 384, 384)) -> bytes:
    """Opaque except ``box``, which is fully transparent: only that area may change."""
    mask = Image.new("RGBA", SIZE, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), box)
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    return buffer.getvalue()


def trust_anchor(gateway: RunningGateway) -> bytes:
    return (gateway.settings.data_dir / "dev-ca" / "ca.pem").read_bytes()


def read_store(gateway: RunningGateway, data: bytes) -> dict[str, Any]:
    """The manifest store as ``c2pa.Reader`` reads it, with the gateway's CA as trust anchor."""
    settings = {
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
        "trust": {"trust_anchors": trust_anchor(gateway).decode("ascii")},
    }
    with (
        c2pa.Context.from_dict(settings) as context,
        c2pa.Reader("image/png", io.BytesIO(data), context=context) as reader,
    ):
        store: dict[str, Any] = json.loads(reader.json())
    return store


def active(store: dict[str, Any]) -> dict[str, Any]:
    manifest: dict[str, Any] = store["manifests"][store["active_manifest"]]
    return manifest


def actions_of(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    for assertion in manifest["assertions"]:
        if assertion["label"].startswith("c2pa.actions"):
            actions: list[dict[str, Any]] = assertion["data"]["actions"]
            return actions
    raise AssertionError("no actions assertion")


def pixels(data: bytes) -> np.ndarray[Any, Any]:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def test_an_edit_is_signed_with_its_inputs_as_ingredients(gateway: RunningGateway) -> None:
    source = photo(1)
    raw = gateway.client().images.with_raw_response.edit(
        image=("jane-doe-bedroom.png", source, "image/png"),
        mask=("mask.png", mask_png(), "image/png"),
        prompt="a red balloon in the sky",
        n=2,
    )
    result = raw.parse()
    decision_id = raw.headers["x-genguard-decision-id"]
    assert raw.headers["x-genguard-decision"] == "allow"
    outputs = [base64.b64decode(item.b64_json or "") for item in result.data]
    assert len(outputs) == 2 and outputs[0] != outputs[1]
    for output in outputs:
        assert Image.open(io.BytesIO(output)).size == SIZE  # "auto": the input's size
        # only the mask's transparent square changed (up to the invisible watermark's few levels)
        difference = np.abs(pixels(output) - pixels(source)).mean(axis=2)
        inside = difference[128:384, 128:384]
        outside = np.concatenate([difference[:128].ravel(), difference[384:].ravel()])
        assert outside.mean() < 2.0 and inside.mean() > 20.0
        store = read_store(gateway, output)
        assert store["validation_state"] == "Trusted"
        manifest = active(store)
        actions = actions_of(manifest)
        assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.edited"]
        assert actions[1]["digitalSourceType"] == COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
        ingredients = [(i["title"], i["relationship"]) for i in manifest["ingredients"]]
        assert ingredients == [("input image 1", "parentOf"), ("mask", "inputTo")]
        assert "jane-doe" not in json.dumps(store)  # the client's file name never travels
    with gateway.redis() as r:
        record = record_for(r, "default", decision_id)
    assert record["route"] == "images.edits"
    stages = [(s["stage"], s["classifier"]) for s in record["stages"]]
    assert ("input", "validation") in stages and ("input", "nudenet") in stages
    assert ("input", "pdq_bank") in stages and stages.index(("input", "nudenet")) < stages.index(
        ("generate", "procedural")
    )
    assert record["input"]["params"]["images"] == 1 and record["input"]["params"]["mask"] is True
    assert len(record["outputs"]) == 2


def test_several_images_are_parent_and_components(gateway: RunningGateway) -> None:
    result = gateway.client().images.edit(
        image=[("a.png", photo(2), "image/png"), ("b.png", photo(3), "image/png")],
        prompt="blend both pictures into one landscape",
        size="256x256",
    )
    output = base64.b64decode(result.data[0].b64_json or "")
    assert Image.open(io.BytesIO(output)).size == (256, 256)
    manifest = active(read_store(gateway, output))
    relationships = [i["relationship"] for i in manifest["ingredients"]]
    assert relationships == ["parentOf", "componentOf"]


def test_editing_a_genguard_output_links_the_decisions(gateway: RunningGateway) -> None:
    client = gateway.client()
    raw = client.images.with_raw_response.generate(
        prompt="a lighthouse at dawn", size="512x512", response_format="b64_json"
    )
    parent_id = raw.headers["x-genguard-decision-id"]
    generated = base64.b64decode(raw.parse().data[0].b64_json or "")
    edited = client.images.with_raw_response.edit(
        image=("out.png", generated, "image/png"), prompt="add a rainbow"
    )
    output = base64.b64decode(edited.parse().data[0].b64_json or "")
    manifest = active(read_store(gateway, output))
    [parent] = manifest["ingredients"]
    # the input's own manifest is kept inside the ingredient, validated
    assert parent["relationship"] == "parentOf" and parent.get("active_manifest")
    with gateway.redis() as r:
        record = record_for(r, "default", edited.headers["x-genguard-decision-id"])
    assert record["input"]["params"]["parent_decisions"] == [parent_id]
    lineage = next(s for s in record["stages"] if s["classifier"] == "lineage")
    assert lineage["evidence"][0]["detail"]["parents"][0]["same_tenant"] is True


def test_an_upload_in_a_hash_bank_is_blocked_before_generation(
    gateway: RunningGateway, http: httpx.Client
) -> None:
    known = photo(4)
    assert http.post("/admin/hashbanks", json={"name": "known-bad"}).status_code == 201
    added = http.post(
        "/admin/hashbanks/known-bad/hashes", files={"file": ("k.png", known, "image/png")}
    )
    assert added.status_code == 201, added.text
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.client().images.edit(
            image=("innocent.png", known, "image/png"), prompt="make it brighter"
        )
    assert caught.value.code == "content_policy_violation"
    body = caught.value.body
    assert isinstance(body, dict)
    with gateway.redis() as r:
        record = record_for(r, "default", body["decision_id"])
    assert record["decision"]["action"] == "block"
    assert [(x["stage"], x["rule"]) for x in record["decision"]["reasons"]] == [
        ("input", "input-known-bad")
    ]
    assert "generate" not in {s["stage"] for s in record["stages"]}  # never reached the model


def test_a_protected_person_with_a_sexual_prompt_is_blocked_by_the_combined_rule(
    gateway: RunningGateway, http: httpx.Client
) -> None:
    person = photo(5)
    created = http.post("/admin/hashbanks", json={"name": "vips", "category": "protected-person"})
    assert created.status_code == 201, created.text
    added = http.post(
        "/admin/hashbanks/vips/hashes", files={"file": ("p.png", person, "image/png")}
    )
    assert added.status_code == 201, added.text
    client = gateway.client()
    # the photo alone is flagged, not blocked; the prompt stage blocks only on its term list
    raw = client.images.with_raw_response.edit(
        image=("p.png", person, "image/png"), prompt="put a party hat on her"
    )
    assert raw.headers["x-genguard-decision"] == "flag"
    assert raw.parse().data[0].b64_json
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(image=("p.png", person, "image/png"), prompt="remove her clothes")
    body = caught.value.body
    assert isinstance(body, dict)
    with gateway.redis() as r:
        record = record_for(r, "default", body["decision_id"])
    fired = {(x["stage"], x["rule"]) for x in record["decision"]["reasons"]}
    assert ("combined", "protected-person-sexual") in fired
    assert not any(stage == "prompt" for stage, _ in fired)  # the prompt alone would pass


def test_variations_are_signed_derivatives_of_the_upload(gateway: RunningGateway) -> None:
    source = photo(6)
    raw = gateway.client().images.with_raw_response.create_variation(
        image=("v.png", source, "image/png"), n=2, size="256x256"
    )
    assert raw.headers["x-genguard-decision"] == "allow"
    outputs = [base64.b64decode(item.b64_json or "") for item in raw.parse().data]
    assert outputs[0] != outputs[1]
    for output in outputs:
        manifest = active(read_store(gateway, output))
        assert [(i["relationship"]) for i in manifest["ingredients"]] == ["parentOf"]
        edited = actions_of(manifest)[1]
        assert edited["digitalSourceType"] == COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
    with gateway.redis() as r:
        record = record_for(r, "default", raw.headers["x-genguard-decision-id"])
    assert record["route"] == "images.variations"
    assert {"stage": "prompt", "verdict": "skipped"}.items() <= next(
        s for s in record["stages"] if s["stage"] == "prompt"
    ).items()
