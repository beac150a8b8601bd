"""Verifying an uploaded asset: its C2PA manifest, its watermark, and soft-binding recovery.

``inspect_asset`` (sync, CPU-bound: run it in the worker pool) sniffs the media type, reads and
validates the embedded C2PA manifest and looks for a GenGuard watermark. ``verify_asset`` (async)
adds the manifest repository: a found watermark id is resolved to what GenGuard delivered, and
when the C2PA data is gone the recovered manifest store is validated against the uploaded
bytes (its signature still validates; its hard binding no longer matches re-encoded bytes, which
is what ``assertion.dataHash.mismatch`` then says).
"""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import c2pa

from provenance.errors import ManifestReadError, UnsupportedMedia
from provenance.marking import DetectedWatermark, detect_watermark
from provenance.media import mime_type_from_bytes
from provenance.repository import ManifestRepository, RegisteredOutput
from provenance.verify import VerificationReport, read_manifest

__all__ = ["AssetInspection", "inspect_asset", "verification_json", "verify_asset"]

T = TypeVar("T")
CpuRunner = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class AssetInspection:
    mime_type: str
    size_bytes: int
    c2pa: VerificationReport
    watermark: DetectedWatermark | None
    watermark_error: str | None = None


def inspect_asset(
    data: bytes,
    *,
    trust_anchors_pem: bytes | None,
    audio_key: bytes,
    image_sizes: Iterable[tuple[int, int]] = (),
    sample_rates: Iterable[int] = (),
) -> AssetInspection:
    """C2PA report and watermark of ``data``.

    Raises ``UnsupportedMedia`` for bytes that are no media type we read and
    ``ManifestReadError`` for a file too broken to read at all.
    """
    if not data:
        raise ManifestReadError("the uploaded file is empty")
    mime_type = mime_type_from_bytes(data)
    report = read_manifest(data, mime_type, trust_anchors_pem=trust_anchors_pem)
    watermark: DetectedWatermark | None = None
    error: str | None = None
    try:
        watermark = detect_watermark(
            data, mime_type, audio_key=audio_key, image_sizes=image_sizes, sample_rates=sample_rates
        )
    except UnsupportedMedia as exc:
        error = str(exc)
    except ManifestReadError as exc:
        if not report.has_manifest:
            raise
        error = str(exc)  # the manifest is readable, the media itself is not (truncated)
    return AssetInspection(mime_type, len(data), report, watermark, error)


def read_recovered_manifest(
    manifest_store: bytes, data: bytes, mime_type: str, trust_anchors_pem: bytes | None
) -> dict[str, Any]:
    """Validate a recovered manifest store against ``data``: state, codes, assertions."""
    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if trust_anchors_pem is not None:
        settings["trust"] = {"trust_anchors": trust_anchors_pem.decode("ascii")}
    try:
        with (
            c2pa.Context.from_dict(settings) as context,
            c2pa.Reader(
                mime_type, io.BytesIO(data), manifest_data=manifest_store, context=context
            ) as reader,
        ):
            store = json.loads(reader.json())
    except (c2pa.C2paError, json.JSONDecodeError) as exc:
        return {"error": f"the recovered manifest store could not be read: {exc}"}
    report = _report_json(_report_from_store(store))
    return report


def _report_from_store(store: dict[str, Any]) -> VerificationReport:
    from provenance.verify import _report  # the one parser of c2pa's JSON

    return _report(store)


def _report_json(report: VerificationReport) -> dict[str, Any]:
    manifests = report.raw.get("manifests") or {}
    active = (
        manifests.get(report.active_manifest_id or "", {}) if isinstance(manifests, dict) else {}
    )
    assertions = [
        {"label": a.get("label"), "data": a.get("data")}
        for a in (active.get("assertions") or [])
        if isinstance(a, dict)
    ]
    return {
        "present": report.has_manifest,
        "validation_state": report.validation_state,
        "trusted": report.trusted,
        "failure_codes": list(report.failure_codes),
        "informational_codes": list(report.informational_codes),
        "success_codes": list(report.success_codes),
        "ingredient_failure_codes": list(report.ingredient_failure_codes),
        "ingredient_informational_codes": list(report.ingredient_informational_codes),
        "ingredient_recorded_codes": list(report.ingredient_recorded_codes),
        "active_manifest_id": report.active_manifest_id,
        "claim_generator": report.claim_generator,
        "signer": {
            "common_name": report.signer_common_name,
            "issuer": report.signer_issuer,
            "signed_at": report.signed_at,
        },
        "remote_manifest_url": report.remote_manifest_url,
        "assertions": assertions,
    }


async def verify_asset(
    data: bytes,
    *,
    cpu: CpuRunner,
    repository: ManifestRepository | None,
    trust_anchors_pem: bytes | None,
    audio_key: bytes,
) -> dict[str, Any]:
    """The full verification report as JSON-ready data (see docs/provenance.md)."""
    sizes = await repository.image_sizes() if repository else []
    rates = await repository.sample_rates() if repository else []
    inspection: AssetInspection = await cpu(
        inspect_asset,
        data,
        trust_anchors_pem=trust_anchors_pem,
        audio_key=audio_key,
        image_sizes=sizes,
        sample_rates=rates,
    )
    recovered: tuple[RegisteredOutput, bytes] | None = None
    watermark = inspection.watermark
    if repository is not None and watermark is not None and watermark.watermark_id is not None:
        recovered = await repository.lookup(watermark.watermark_id)
    result = verification_json(inspection, recovered)
    if recovered is not None and not inspection.c2pa.has_manifest and recovered[1]:
        result["recovered"]["manifest"] = await cpu(
            read_recovered_manifest, recovered[1], data, inspection.mime_type, trust_anchors_pem
        )
    return result


def verification_json(
    inspection: AssetInspection, recovered: tuple[RegisteredOutput, bytes] | None
) -> dict[str, Any]:
    watermark = inspection.watermark
    return {
        "mime_type": inspection.mime_type,
        "size_bytes": inspection.size_bytes,
        "c2pa": _report_json(inspection.c2pa),
        "watermark": {
            "found": watermark is not None and watermark.watermark_id is not None,
            "watermark_id": watermark.watermark_id if watermark else None,
            "kind": watermark.kind if watermark else None,
            "confidence": round(watermark.confidence, 4) if watermark else None,
            "decoded_at": watermark.decoded_at if watermark else None,
            "registered": recovered is not None,
            "error": inspection.watermark_error,
        },
        "recovered": {"output": recovered[0].to_json(), "manifest": None} if recovered else None,
    }
