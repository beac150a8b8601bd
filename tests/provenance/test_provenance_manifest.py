"""The manifest definition, the ManifestSpec contract (no prompt), and media-type handling."""

from __future__ import annotations

import dataclasses

import pytest

from provenance import (
    GENGUARD_ASSERTION_LABEL,
    TRAINED_ALGORITHMIC_MEDIA,
    ManifestSpec,
    UnsupportedMedia,
    canonical_mime_type,
    manifest_definition,
    mime_type_from_bytes,
)


def test_spec_has_exactly_the_agreed_fields_and_no_prompt() -> None:
    names = [field.name for field in dataclasses.fields(ManifestSpec)]
    assert names == [
        "generator",
        "model",
        "decision_id",
        "policy_id",
        "policy_revision",
        "title",
        "digital_source_type",
        "claim_generator",
        "watermark",
        "stage_verdicts",
        "training_mining",
        "redaction",
        "ingredients",  # the uploads of an edit (provenance.ingredients), never the prompt
    ]
    assert not any("prompt" in name for name in names)


def test_definition_holds_one_created_action_and_the_decision(spec: ManifestSpec) -> None:
    definition = manifest_definition(spec, "image/png")

    assert definition["format"] == "image/png"
    assert definition["claim_generator_info"] == [{"name": "GenGuard", "version": "0.1.0"}]
    assert "title" not in definition
    labels = [assertion["label"] for assertion in definition["assertions"]]
    assert labels == ["c2pa.actions", GENGUARD_ASSERTION_LABEL]
    actions = definition["assertions"][0]["data"]["actions"]
    assert actions == [
        {
            "action": "c2pa.created",
            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
            "softwareAgent": {"name": "offline-demo"},
            "parameters": {"model": "demo-sd-tiny"},
        }
    ]
    assert definition["assertions"][1]["data"] == {
        "decision_id": "dec-01J9ZK3T5Q",
        "policy_id": "default",
        "policy_revision": "rev-42",
        "generator": "offline-demo",
        "model": "demo-sd-tiny",
    }


def test_definition_uses_title_and_canonical_type(spec: ManifestSpec) -> None:
    titled = dataclasses.replace(spec, title="image-1.png", claim_generator="GenGuard")
    definition = manifest_definition(titled, "Audio/X-WAV")
    assert definition["title"] == "image-1.png"
    assert definition["format"] == "audio/wav"
    assert definition["claim_generator_info"] == [{"name": "GenGuard"}]


def test_definition_refuses_types_we_do_not_sign(spec: ManifestSpec) -> None:
    with pytest.raises(UnsupportedMedia, match="cannot sign 'image/gif'"):
        manifest_definition(spec, "image/gif")


@pytest.mark.parametrize("empty_field", ["generator", "model", "decision_id", "policy_revision"])
def test_spec_refuses_empty_identifiers(spec: ManifestSpec, empty_field: str) -> None:
    with pytest.raises(ValueError, match=f"ManifestSpec.{empty_field} must be a non-empty"):
        dataclasses.replace(spec, **{empty_field: " "})


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("audio/x-wav", "audio/wav"),
        ("audio/wave", "audio/wav"),
        ("AUDIO/WAV", "audio/wav"),
        ("image/png; charset=binary", "image/png"),
        ("image/jpeg", "image/jpeg"),
    ],
)
def test_canonical_mime_type(given: str, canonical: str) -> None:
    assert canonical_mime_type(given) == canonical


def test_sniffing_recognises_the_test_media(media: dict[str, bytes]) -> None:
    for mime_type, data in media.items():
        assert mime_type_from_bytes(data) == mime_type


@pytest.mark.parametrize(
    ("head", "mime_type"),
    [
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", "video/mp4"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", "image/avif"),
        (b"\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00", "audio/mp4"),
    ],
)
def test_sniffing_recognises_webp_and_bmff(head: bytes, mime_type: str) -> None:
    assert mime_type_from_bytes(head + bytes(16)) == mime_type


def test_sniffing_names_what_it_did_not_recognise() -> None:
    with pytest.raises(UnsupportedMedia, match="'47 49 46 38 39 61' match no"):
        mime_type_from_bytes(b"GIF89a")
