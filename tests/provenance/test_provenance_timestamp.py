"""RFC 3161 time-stamping (``GENGUARD_PROVENANCE__TSA_URL``) against a real local time-stamp
authority (``tests/provenance/tsa.py``): c2pa-rs asks it for a token over the claim signature at
every signature, over HTTP on a loopback port, and the reader validates the token. Signing by
key and through the external signing process (a real subprocess) alike."""

from __future__ import annotations

import datetime
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from generators.base import Artifact
from provenance import (
    HttpExternalSigner,
    ManifestSpec,
    SigningCredentials,
    SigningFailed,
    load_certificate_chain,
    read_manifest,
)
from provenance.signer import C2paSigner
from tests.provenance.test_provenance_external_signer import _start_service, _stop
from tests.provenance.tsa import TimeStampAuthority


@pytest.fixture(scope="module")
def tsa() -> Iterator[TimeStampAuthority]:
    authority = TimeStampAuthority.create().start()
    yield authority
    authority.stop()


def _root_pem(credentials: SigningCredentials) -> bytes:
    """The development CA's root (the last certificate of the chain)."""
    last = x509.load_pem_x509_certificates(credentials.cert_chain_pem)[-1]
    return last.public_bytes(Encoding.PEM)


@pytest.mark.parametrize("mime_type", ["image/png", "audio/wav"])
def test_signature_carries_a_validated_rfc3161_timestamp(
    tsa: TimeStampAuthority,
    dev_credentials: SigningCredentials,
    make_artifact: Callable[[str], Artifact],
    spec: ManifestSpec,
    mime_type: str,
) -> None:
    asked = len(tsa.requests)
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    signed = C2paSigner(dev_credentials, tsa_url=tsa.url).sign(make_artifact(mime_type), spec)
    after = datetime.datetime.now(datetime.UTC)
    assert len(tsa.requests) == asked + 1  # c2pa called our TSA once, with a nonce
    assert tsa.requests[-1]["hash_algorithm"] == "sha256"
    assert tsa.requests[-1]["nonce"] is not None

    anchors = _root_pem(dev_credentials) + tsa.root_pem
    report = read_manifest(signed.data, mime_type, trust_anchors_pem=anchors)
    assert report.validation_state == "Trusted"
    assert {"timeStamp.validated", "timeStamp.trusted"} <= set(report.success_codes)
    assert report.signed_at is not None  # the token's genTime
    assert before <= datetime.datetime.fromisoformat(report.signed_at) <= after

    # the TSA's root unknown to the reader: the token still validates, its signer is untrusted
    untrusted_tsa = read_manifest(
        signed.data, mime_type, trust_anchors_pem=_root_pem(dev_credentials)
    )
    assert untrusted_tsa.validation_state == "Trusted"
    assert "timeStamp.validated" in untrusted_tsa.success_codes
    assert "timeStamp.untrusted" in untrusted_tsa.informational_codes


def test_signature_without_tsa_has_no_timestamp(
    dev_credentials: SigningCredentials,
    make_artifact: Callable[[str], Artifact],
    spec: ManifestSpec,
) -> None:
    signed = C2paSigner(dev_credentials).sign(make_artifact("image/png"), spec)
    report = read_manifest(signed.data, "image/png")
    assert not [code for code in report.success_codes if code.startswith("timeStamp.")]
    assert report.signed_at is None


def test_unreachable_tsa_fails_closed(
    dev_credentials: SigningCredentials,
    make_artifact: Callable[[str], Artifact],
    spec: ManifestSpec,
) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    signer = C2paSigner(dev_credentials, tsa_url=f"http://127.0.0.1:{port}/")
    with pytest.raises(SigningFailed, match="http"):
        signer.sign(make_artifact("image/png"), spec)


def test_external_signer_signature_is_timestamped_too(
    tsa: TimeStampAuthority,
    dev_credentials: SigningCredentials,
    dev_ca_dir: Path,
    make_artifact: Callable[[str], Artifact],
    spec: ManifestSpec,
) -> None:
    process, url = _start_service(dev_ca_dir / "signer.key")
    try:
        chain_only = load_certificate_chain(dev_ca_dir / "signer.pem", dev_ca_dir / "ca.pem")
        signer = C2paSigner(chain_only, external=HttpExternalSigner(url), tsa_url=tsa.url)
        signed = signer.sign(make_artifact("image/png"), spec)
    finally:
        _stop(process)
    anchors = _root_pem(dev_credentials) + tsa.root_pem
    report = read_manifest(signed.data, "image/png", trust_anchors_pem=anchors)
    assert report.validation_state == "Trusted"
    assert {"timeStamp.validated", "timeStamp.trusted"} <= set(report.success_codes)
