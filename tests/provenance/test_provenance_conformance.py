"""Third-party conformance files read through ``read_manifest``, checked against
``shared/eval/c2pa/EXPECTED_VALIDATION.csv`` where the CSV states something our report can
express: manifest present / absent / remote, validation state, and dotted status codes.

Rows where c2pa-rs 0.91 (through our reader) disagrees with the CSV are listed in
``KNOWN_DIVERGENCES`` with the reason and run as strict xfails, so a change in either direction
(a new disagreement, or one that goes away) fails the suite and gets looked at.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from provenance import ManifestReadError, UnsupportedMedia, VerificationReport, read_manifest

CONFORMANCE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "eval" / "c2pa"
EXPECTED_CSV = CONFORMANCE_DIR / "EXPECTED_VALIDATION.csv"

MIME_BY_SUFFIX = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".wav": "audio/wav",
    ".webp": "image/webp",
    ".mp4": "video/mp4",
    ".pdf": "application/pdf",
    ".ttf": "font/ttf",
}
_CODE = re.compile(r"\b[a-z][A-Za-z]*(?:\.[A-Za-z]+)+\b")

UNTRUSTED = "signingCredential.untrusted"  # every third-party signer, as no anchors are given

# file -> why c2pa-rs 0.91 (c2pa-python 0.38.1), read through read_manifest, disagrees with the CSV.
KNOWN_DIVERGENCES = {
    "public-testfiles/image/jpeg/adobe-20220124-CIE-sig-CA.jpg": (
        "c2pa-rs reports only signingCredential.untrusted for the ingredient, not "
        "timeStamp.mismatch / claimSignature.mismatch"
    ),
    "public-testfiles/image/jpeg/adobe-20220124-E-clm-CAICAI.jpg": (
        "the missing claim is reported as ingredient.manifest.missing (+ hashedURI.mismatch), "
        "not claim.missing"
    ),
    "public-testfiles/image/jpeg/adobe-20220124-E-uri-CIE-sig-CA.jpg": (
        "Invalid with hashedURI.mismatch, but no timeStamp / claimSignature failure for the "
        "ingredient"
    ),
    "public-testfiles/image/jpeg/nikon-20221019-building.jpeg": (
        "signingCredential.expired is reported, claimSignature.mismatch is not"
    ),
    "public-testfiles/image/jpeg/truepic-20230212-camera.jpg": (
        "c2pa-rs 0.91: assertion.dataHash.mismatch, 'data hash exclusion does not match the "
        "manifest location in the asset' (older SDKs, per detailed.json, reported a match)"
    ),
    "public-testfiles/image/jpeg/truepic-20230212-landscape.jpg": (
        "c2pa-rs 0.91: assertion.dataHash.mismatch on the exclusion range (see camera)"
    ),
    "public-testfiles/image/jpeg/truepic-20230212-library.jpg": (
        "c2pa-rs 0.91: assertion.dataHash.mismatch on the exclusion range (see camera)"
    ),
    "public-testfiles/font/ttf/monotype-20240712-monotype_sans.ttf": (
        "this c2pa build cannot read fonts: UnsupportedMedia"
    ),
    "c2pa-rs/CACAE-uri-CA.jpg": (
        "nested ingredient manifests are not re-validated: Valid, no hashedURI.mismatch"
    ),
    "c2pa-rs/no_alg.jpg": (
        "c2pa-rs refuses to build a report ('Other: unknown algorithm'): ManifestReadError, "
        "not Invalid with algorithm.unsupported"
    ),
    "c2pa-rs/ocsp.jpg": (
        "signingCredential.ocsp.notRevoked needs an OCSP fetch; read_manifest never fetches"
    ),
}


@dataclass(frozen=True)
class Row:
    file: str
    has_manifest: str
    expected_result: str
    expected_codes: tuple[str, ...]


@dataclass(frozen=True)
class ReadFailure:
    error: str
    message: str


def _rows() -> list[Row]:
    if not EXPECTED_CSV.is_file():
        return []
    with EXPECTED_CSV.open(newline="", encoding="utf-8") as handle:
        return [
            Row(
                file=record["file"],
                has_manifest=record["has_c2pa_manifest"].strip().lower(),
                expected_result=record["expected_result"].strip().lower(),
                expected_codes=tuple(_CODE.findall(record["expected_codes"])),
            )
            for record in csv.DictReader(handle)
        ]


def _params() -> list[object]:
    rows = _rows()
    if not rows:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{EXPECTED_CSV} is absent"))]
    return [
        pytest.param(
            row,
            id=row.file,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_DIVERGENCES[row.file])]
            if row.file in KNOWN_DIVERGENCES
            else [],
        )
        for row in rows
    ]


def _read(row: Row) -> VerificationReport | ReadFailure:
    path = CONFORMANCE_DIR / row.file
    try:
        return read_manifest(path.read_bytes(), MIME_BY_SUFFIX[path.suffix.lower()])
    except (ManifestReadError, UnsupportedMedia) as exc:
        return ReadFailure(type(exc).__name__, str(exc))


def _check(row: Row, outcome: VerificationReport | ReadFailure) -> None:
    """Assert what the row states, in the terms our report can express."""
    result = row.expected_result
    if result.startswith(("malformed", "rejected")):
        assert isinstance(outcome, ReadFailure), f"expected a read error, got {outcome}"
        assert outcome.error == "ManifestReadError"
        return
    assert isinstance(outcome, VerificationReport), f"read failed: {outcome}"
    if row.has_manifest.startswith("no"):
        assert outcome.has_manifest is False
        assert outcome.remote_manifest_url is None
        return
    if row.has_manifest == "remote":
        assert outcome.has_manifest is False
        assert (outcome.remote_manifest_url or "").startswith("https://")
        return
    assert outcome.has_manifest is True
    assert outcome.active_manifest_id is not None
    if result.startswith("invalid"):
        assert outcome.validation_state == "Invalid"
    elif result.startswith("active manifest"):  # about the active manifest only
        assert set(outcome.failure_codes) <= {UNTRUSTED}
    elif result.startswith("valid"):
        assert outcome.validation_state == "Valid"
        assert UNTRUSTED in outcome.failure_codes
    reported = (
        set(outcome.failure_codes)
        | set(outcome.informational_codes)
        | set(outcome.ingredient_failure_codes)
    )
    missing = [code for code in row.expected_codes if code not in reported]
    assert not missing, f"expected codes {missing} not reported; reported {sorted(reported)}"


@pytest.mark.parametrize("row", _params())
def test_conformance_file_matches_expected_validation(row: Row) -> None:
    _check(row, _read(row))
