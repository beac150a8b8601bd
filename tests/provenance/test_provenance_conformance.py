"""Third-party conformance files read through ``read_manifest``, checked against
``shared/eval/c2pa/EXPECTED_VALIDATION.csv`` where the CSV states something our report can
express: manifest present / absent / remote, validation state, and dotted status codes (looked
for among the active manifest's success, informational and failure codes and the ingredients'
delta and recorded codes).

Two documented translations: ``SPEC_RENAMES`` (a C2PA 1.x code that the CSV took from an old
c2patool report, and the 2.x code c2pa-rs reports for the same finding) and ``CONFIGURED_TRUST``
(rows whose expectation holds "when trust is configured": the file's own issuing CA is given as
trust anchor). Rows where c2pa-rs 0.91 (c2pa-python 0.38.1, the newest on PyPI) still disagrees
with the CSV are listed in ``KNOWN_DIVERGENCES`` with the reason and run as strict xfails, so a
change in either direction (a new disagreement, or one that goes away) fails the suite. Where the
reason is that the CSV itself is wrong, the facts it rests on are checked here independently of
c2pa-rs (``test_only_*`` and ``test_expired_signer_*`` at the end of the module).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import c2pa
import cbor2
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from provenance import ManifestReadError, UnsupportedMedia, VerificationReport, read_manifest
from provenance.verify import ALGORITHM_UNSUPPORTED

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
_PEM = serialization.Encoding.PEM
_SHA256 = hashes.SHA256()

# C2PA 1.x code in the CSV -> the C2PA 2.x code for the same finding. E-clm-CAICAI: c2patool
# 0.x reported claim.missing, c2pa-rs 0.91 ingredient.manifest.missing, both at
# contentbeef:urn:uuid:8bb8ad50-... with the explanation "ingredient not found".
SPEC_RENAMES = {"claim.missing": "ingredient.manifest.missing"}

# Rows that hold only with trust configured: ocsp.jpg's stapled OCSP response is checked (offline,
# no fetch) only for a trusted signer. The Adobe root is not in the test data; the issuing
# intermediate embedded in the file's x5chain is given as anchor.
CONFIGURED_TRUST = {"c2pa-rs/ocsp.jpg"}

# Rows where the CSV is wrong, or asks for what no c2pa-python build can do. The facts behind
# the first two reasons are re-checked independently of c2pa-rs at the end of this module.
WIDE_EXCLUSION_ROWS = frozenset(
    {
        "public-testfiles/image/jpeg/truepic-20230212-camera.jpg",
        "public-testfiles/image/jpeg/truepic-20230212-landscape.jpg",
        "public-testfiles/image/jpeg/truepic-20230212-library.jpg",
    }
)
EXPIRED_SIGNER_ROWS = frozenset({"public-testfiles/image/jpeg/nikon-20221019-building.jpeg"})
_WIDE_EXCLUSION = (
    "CSV wrong: C2PA 1.2 15.11.1.1 (1.3 16.11.1.1), the version this file declares "
    "(target_spec_version 1.2), requires a JPEG's data-hash exclusion to be exactly as long as the "
    "manifest's APP11 segments; this one starts at byte 0 and also excludes the SOI and the Exif "
    "APP1 before them, so those bytes are bound by nothing. c2pa-rs 0.91 reports "
    "assertion.dataHash.mismatch ('data hash exclusion does not match the manifest location'); "
    "the hash over the remaining bytes does match, which is all c2pa-rs 0.90 checked. C2PA 2.1 "
    "15.12.1 rejects it too (same JPEG rule; the exclusion may hold only the store and padding)"
)
_EXPIRED_SIGNER = (
    "CSV wrong on the code: the PS256 claim signature verifies (checked independently below); "
    "the claim has no time-stamp and the leaf certificate expired on 2023-10-05, so the finding is "
    "signingCredential.expired (Invalid), which c2pa-rs 0.91 reports beside "
    "claimSignature.validated. "
    "The CSV's claimSignature.mismatch comes from the old c2patool report in "
    "manifests/nikon-20221019-building; older c2pa-rs logged that code for any COSE verification "
    "error, the expiry included"
)
KNOWN_DIVERGENCES = {
    **dict.fromkeys(WIDE_EXCLUSION_ROWS, _WIDE_EXCLUSION),
    **dict.fromkeys(EXPIRED_SIGNER_ROWS, _EXPIRED_SIGNER),
    "public-testfiles/font/ttf/monotype-20240712-monotype_sans.ttf": (
        "no c2pa-python release reads fonts (9 releases from 0.5.3 to 0.38.1 checked: no font "
        "media type in the bundled c2pa-rs); the manifest sits in the SFNT 'C2PA' table and is "
        "bound by c2pa.hash.boxes over the font tables, which needs a font asset handler: "
        "UnsupportedMedia"
    ),
}


def _embedded_ca_certificates(data: bytes) -> bytes:
    """PEM of the CA certificates (basicConstraints cA) found as DER anywhere in ``data``."""
    found: dict[bytes, x509.Certificate] = {}
    start = data.find(b"\x30\x82")
    while start >= 0:
        length = int.from_bytes(data[start + 2 : start + 4], "big") + 4
        try:
            certificate = x509.load_der_x509_certificate(data[start : start + length])
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        except (ValueError, x509.ExtensionNotFound):
            pass
        else:
            if constraints.value.ca:
                found[certificate.fingerprint(certificate.signature_hash_algorithm or _SHA256)] = (
                    certificate
                )
        start = data.find(b"\x30\x82", start + 2)
    return b"".join(c.public_bytes(_PEM) for c in found.values())


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
    data = path.read_bytes()
    anchors = _embedded_ca_certificates(data) if row.file in CONFIGURED_TRUST else None
    try:
        return read_manifest(data, MIME_BY_SUFFIX[path.suffix.lower()], trust_anchors_pem=anchors)
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
    if outcome.failure_codes != (ALGORITHM_UNSUPPORTED,):  # c2pa-rs gives up before the ids
        assert outcome.active_manifest_id is not None
    if result.startswith("invalid"):
        assert outcome.validation_state == "Invalid"
    elif result.startswith("active manifest"):  # about the active manifest only
        assert set(outcome.failure_codes) <= {UNTRUSTED}
    elif result.startswith("valid") and row.file in CONFIGURED_TRUST:
        assert outcome.validation_state == "Trusted"
        assert not outcome.failure_codes
    elif result.startswith("valid"):
        assert outcome.validation_state == "Valid"
        assert UNTRUSTED in outcome.failure_codes
    reported = (
        set(outcome.success_codes)
        | set(outcome.failure_codes)
        | set(outcome.informational_codes)
        | set(outcome.ingredient_failure_codes)
        | set(outcome.ingredient_informational_codes)
        | set(outcome.ingredient_recorded_codes)
    )
    missing = [code for code in row.expected_codes if SPEC_RENAMES.get(code, code) not in reported]
    assert not missing, f"expected codes {missing} not reported; reported {sorted(reported)}"


@pytest.mark.parametrize("row", _params())
def test_conformance_file_matches_expected_validation(row: Row) -> None:
    _check(row, _read(row))


# --- Evidence for the rows where the CSV is wrong, checked without c2pa-rs --------------------
# A JPEG carries the manifest store in APP11 segments (JPEG XT box format, ISO/IEC 18477-3): "JP",
# a box instance number En, a sequence number Z, then the JUMBF superbox, whose LBox/TBox header
# every further segment repeats. The store is the superbox with the C2PA manifest-store UUID.
_C2PA_STORE_UUID = bytes.fromhex("6332706100110010800000aa00389b71")
_APP11 = 0xEB
_START_OF_SCAN = 0xDA
_PSS_HASHES: dict[int, hashes.HashAlgorithm] = {
    -37: hashes.SHA256(),
    -38: hashes.SHA384(),
    -39: hashes.SHA512(),
}
_ECDSA_HASHES: dict[int, hashes.HashAlgorithm] = {
    -7: hashes.SHA256(),
    -35: hashes.SHA384(),
    -36: hashes.SHA512(),
}
_COSE_ALG, _COSE_X5CHAIN = 1, 33


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(offset, marker, length with the marker) of each segment before the scan."""
    offset = 2  # SOI
    while offset + 4 <= len(data) and data[offset] == 0xFF and data[offset + 1] != _START_OF_SCAN:
        length = int.from_bytes(data[offset + 2 : offset + 4], "big") + 2
        yield offset, data[offset + 1], length
        offset += length


def _manifest_store_segments(data: bytes) -> list[tuple[int, int, bytes]]:
    """(offset, length, box bytes) of the APP11 segments carrying the C2PA store, in Z order."""
    by_instance: dict[bytes, list[tuple[int, int, int, bytes]]] = {}
    for offset, marker, length in _jpeg_segments(data):
        body = data[offset + 4 : offset + length]
        if marker == _APP11 and body[:2] == b"JP":
            sequence = int.from_bytes(body[4:8], "big")
            by_instance.setdefault(body[2:4], []).append((sequence, offset, length, body[8:]))
    for parts in by_instance.values():
        parts.sort()
        if parts[0][3][16:32] == _C2PA_STORE_UUID:  # LBox, TBox 'jumb', jumd LBox + TBox, UUID
            return [(offset, length, box) for _, offset, length, box in parts]
    return []


def _boxes(buffer: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of the ISO BMFF-style boxes in ``buffer`` (JUMBF, ISO/IEC 19566-5)."""
    offset = 0
    while offset + 8 <= len(buffer):
        size, header = int.from_bytes(buffer[offset : offset + 4], "big"), 8
        if size == 1:
            size, header = int.from_bytes(buffer[offset + 8 : offset + 16], "big"), 16
        elif size == 0:
            size = len(buffer) - offset
        yield buffer[offset + 4 : offset + 8], buffer[offset + header : offset + size]
        offset += size


def _superbox(payload: bytes) -> tuple[str, list[tuple[bytes, bytes]]]:
    """Label and content boxes of a JUMBF superbox (description box: UUID, toggles, label)."""
    (kind, description), *content = _boxes(payload)
    assert kind == b"jumd"
    return description[17 : description.index(b"\0", 17)].decode(), content


def _claim_and_signature(data: bytes) -> tuple[bytes, bytes]:
    """CBOR of the active manifest's claim and of its COSE_Sign1 claim signature."""
    segments = _manifest_store_segments(data)
    store = segments[0][2] + b"".join(box[8:] for _, _, box in segments[1:])
    (_, store_payload), *_ = _boxes(store)
    _, manifests = _superbox(store_payload)
    _, parts = _superbox(manifests[-1][1])  # the last manifest is the active one
    contents = dict(_superbox(payload) for kind, payload in parts if kind == b"jumb")
    claim = contents.get("c2pa.claim.v2") or contents["c2pa.claim"]
    return claim[0][1], contents["c2pa.signature"][0][1]


@dataclass(frozen=True)
class CoseCheck:
    verifies: bool
    signer: x509.Certificate
    header_labels: frozenset[object]


def _check_claim_signature(claim: bytes, cose: bytes) -> CoseCheck:
    """Verify a detached-payload COSE_Sign1 (RFC 9052 section 4.4) over ``claim``."""
    message = cbor2.loads(cose)
    protected_bytes, unprotected, payload, signature = (
        message.value if isinstance(message, cbor2.CBORTag) else message
    )
    protected = cbor2.loads(protected_bytes) if protected_bytes else {}
    headers = {**unprotected, **protected}
    chain = headers.get(_COSE_X5CHAIN, headers.get("x5chain"))
    assert chain, "COSE_Sign1 without an x5chain"
    signer = x509.load_der_x509_certificate(chain if isinstance(chain, bytes) else chain[0])
    signed = cbor2.dumps(
        ["Signature1", protected_bytes, b"", claim if payload is None else payload]
    )
    algorithm, key = protected[_COSE_ALG], signer.public_key()
    try:
        if algorithm in _PSS_HASHES:
            assert isinstance(key, rsa.RSAPublicKey)
            digest = _PSS_HASHES[algorithm]
            pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
            key.verify(signature, signed, pss, digest)
        else:
            assert isinstance(key, ec.EllipticCurvePublicKey)
            half = len(signature) // 2
            der = encode_dss_signature(
                int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
            )
            key.verify(der, signed, ec.ECDSA(_ECDSA_HASHES[algorithm]))
    except InvalidSignature:
        return CoseCheck(False, signer, frozenset(headers))
    return CoseCheck(True, signer, frozenset(headers))


def _jpeg_rows_with_a_data_hash() -> list[object]:
    params: list[object] = []
    for row in _rows():
        if not row.file.lower().endswith((".jpg", ".jpeg")):
            continue
        try:
            with c2pa.Reader(
                "image/jpeg", io.BytesIO((CONFORMANCE_DIR / row.file).read_bytes())
            ) as r:
                store = json.loads(r.detailed_json())
        except c2pa.C2paError:
            continue  # no manifest, a remote one, or one c2pa-rs refuses before any binding
        assertions = store["manifests"][store["active_manifest"]]["assertion_store"]
        if "c2pa.hash.data" in assertions:
            params.append(pytest.param(row.file, assertions, id=row.file))
    return params or [pytest.param(None, None, marks=pytest.mark.skip(reason="no CSV"))]


@pytest.mark.parametrize(("file", "assertions"), _jpeg_rows_with_a_data_hash())
def test_only_the_wide_exclusion_rows_break_the_jpeg_exclusion_rule(
    file: str, assertions: dict[str, Any]
) -> None:
    """C2PA 1.2 15.11.1.1 / 1.3 16.11.1.1: "a validator shall match the total length of the
    exclusion range with that of the total length of all APP11 segments representing the C2PA
    Manifest". Of all JPEG rows, exactly WIDE_EXCLUSION_ROWS break it, and for them nothing else
    is wrong: the hash over the bytes outside the exclusion matches."""
    data = (CONFORMANCE_DIR / file).read_bytes()
    data_hash = assertions["c2pa.hash.data"]
    exclusions = sorted((e["start"], e["length"]) for e in data_hash["exclusions"])
    segments = _manifest_store_segments(data)
    rule_holds = sum(n for _, n in exclusions) == sum(n for _, n, _ in segments)
    assert rule_holds is (file not in WIDE_EXCLUSION_ROWS)
    if rule_holds:
        return
    assert assertions["com.truepic.libc2pa"]["target_spec_version"] == "1.2"
    ((start, length),) = exclusions
    before_manifest = [m for offset, m, _ in _jpeg_segments(data) if offset < segments[0][0]]
    assert start == 0 and start + length == segments[-1][0] + segments[-1][1]
    assert 0xE1 in before_manifest  # the Exif APP1 lies inside the exclusion, unbound
    digest = hashlib.new(data_hash["alg"], data[:start] + data[start + length :]).digest()
    assert digest == base64.b64decode(data_hash["hash"])
    report = read_manifest(data, "image/jpeg")
    assert "assertion.dataHash.mismatch" in report.failure_codes
    assert "assertion.dataHash.match" in report.success_codes


@pytest.mark.skipif(not EXPECTED_CSV.is_file(), reason=f"{EXPECTED_CSV} is absent")
def test_expired_signer_rows_have_a_claim_signature_that_verifies() -> None:
    """The CSV says claimSignature.mismatch; an independent COSE check says the signature holds.
    The same check does find the mismatch of the row whose signature really is broken."""
    broken = "public-testfiles/image/jpeg/adobe-20220124-E-sig-CA.jpg"
    expected = {row.file: row.expected_codes for row in _rows()}
    assert "claimSignature.mismatch" in expected[broken]
    control = _check_claim_signature(*_claim_and_signature((CONFORMANCE_DIR / broken).read_bytes()))
    assert control.verifies is False
    for file in sorted(EXPIRED_SIGNER_ROWS):
        assert "claimSignature.mismatch" in expected[file]
        data = (CONFORMANCE_DIR / file).read_bytes()
        check = _check_claim_signature(*_claim_and_signature(data))
        assert check.verifies
        # No time-stamp (sigTst / sigTst2): the credential is judged at validation time.
        assert not {"sigTst", "sigTst2"} & check.header_labels
        assert check.signer.not_valid_after_utc < datetime.now(UTC)
        report = read_manifest(data, "image/jpeg")
        assert report.validation_state == "Invalid"
        assert "claimSignature.validated" in report.success_codes
        assert "signingCredential.expired" in report.failure_codes
        assert "claimSignature.mismatch" not in report.failure_codes
