"""Real C2PA signing and reading with the development CA: trust, tampering, content, threads."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import c2pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from generators.base import Artifact
from provenance import (
    TRAINED_ALGORITHMIC_MEDIA,
    C2paSigner,
    CredentialsError,
    ManifestReadError,
    ManifestSpec,
    SignedAsset,
    SigningCredentials,
    SigningFailed,
    UnsupportedMedia,
    load_credentials,
    manifest_definition,
    read_manifest,
)
from provenance.dev_ca import DOCUMENT_SIGNING, issue_dev_ca

MakeArtifact = Callable[..., Artifact]
SIGNED_TYPES = ["image/png", "image/jpeg", "audio/wav", "audio/x-wav", "audio/wave"]


@pytest.fixture(scope="module")
def signer(dev_credentials: SigningCredentials) -> C2paSigner:
    return C2paSigner(dev_credentials)


def _flip_payload_byte(signed: SignedAsset) -> bytes:
    """Change one byte of the pixels or samples, leaving the container parseable."""
    data = bytearray(signed.data)
    if signed.mime_type == "image/png":
        offset = data.index(b"IDAT") + 8
    elif signed.mime_type == "image/jpeg":
        offset = data.rindex(b"\xff\xda") + 32  # inside the entropy-coded scan
    else:
        offset = data.index(b"data") + 200
    data[offset] ^= 0x5A
    return bytes(data)


@pytest.mark.parametrize("mime_type", SIGNED_TYPES)
def test_signed_asset_is_trusted_with_the_dev_ca_as_anchor(
    signer: C2paSigner,
    make_artifact: MakeArtifact,
    spec: ManifestSpec,
    dev_credentials: SigningCredentials,
    mime_type: str,
) -> None:
    artifact = make_artifact(mime_type)
    signed = signer.sign(artifact, spec)

    assert signed.mime_type == ("audio/wav" if mime_type.startswith("audio/") else mime_type)
    assert signed.sha256 == hashlib.sha256(signed.data).hexdigest()
    assert signed.manifest_id.startswith("urn:c2pa:")
    assert len(signed.data) > len(artifact.data)
    report = read_manifest(
        signed.data, signed.mime_type, trust_anchors_pem=dev_credentials.trust_anchor_pem
    )
    assert report.has_manifest
    assert report.validation_state == "Trusted"
    assert report.trusted
    assert report.failure_codes == ()
    assert report.active_manifest_id == signed.manifest_id


@pytest.mark.parametrize("mime_type", ["image/png", "image/jpeg", "audio/wav"])
def test_without_anchor_the_signer_is_valid_but_untrusted(
    signer: C2paSigner, make_artifact: MakeArtifact, spec: ManifestSpec, mime_type: str
) -> None:
    signed = signer.sign(make_artifact(mime_type), spec)
    report = read_manifest(signed.data, mime_type)
    assert report.validation_state == "Valid"
    assert report.failure_codes == ("signingCredential.untrusted",)
    assert not report.trusted


@pytest.mark.parametrize("mime_type", ["image/png", "image/jpeg", "audio/wav"])
def test_a_flipped_media_byte_is_invalid_with_a_data_hash_mismatch(
    signer: C2paSigner,
    make_artifact: MakeArtifact,
    spec: ManifestSpec,
    dev_credentials: SigningCredentials,
    mime_type: str,
) -> None:
    signed = signer.sign(make_artifact(mime_type), spec)
    report = read_manifest(
        _flip_payload_byte(signed), mime_type, trust_anchors_pem=dev_credentials.trust_anchor_pem
    )
    assert report.has_manifest
    assert report.validation_state == "Invalid"
    assert "assertion.dataHash.mismatch" in report.failure_codes


def test_manifest_records_creation_generator_and_decision(
    signer: C2paSigner,
    make_artifact: MakeArtifact,
    spec: ManifestSpec,
    dev_credentials: SigningCredentials,
) -> None:
    signed = signer.sign(make_artifact("image/png"), spec)
    report = read_manifest(
        signed.data, "image/png", trust_anchors_pem=dev_credentials.trust_anchor_pem
    )

    assert report.actions == (
        {
            "action": "c2pa.created",
            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
            "softwareAgent": {"name": "offline-demo"},
            "parameters": {"model": "demo-sd-tiny"},
        },
    )
    assert report.genguard == {
        "decision_id": "dec-01J9ZK3T5Q",
        "policy_id": "default",
        "policy_revision": "rev-42",
        "generator": "offline-demo",
        "model": "demo-sd-tiny",
    }
    assert report.claim_generator == "GenGuard/0.1.0"
    assert report.signer_common_name == "GenGuard Development Signer (untrusted)"
    assert report.signer_issuer == "GenGuard (development)"
    assert report.raw["active_manifest"] == signed.manifest_id


@pytest.mark.parametrize("mime_type", ["image/png", "image/jpeg", "audio/wav"])
def test_the_prompt_never_reaches_the_signed_bytes(
    signer: C2paSigner,
    make_artifact: MakeArtifact,
    dev_credentials: SigningCredentials,
    prompt: str,
    mime_type: str,
) -> None:
    spec = ManifestSpec(
        generator="offline-demo",
        model="demo-sd-tiny",
        decision_id="dec-2",
        policy_id="default",
        policy_revision="rev-1",
        title="generated-image",
    )
    artifact = make_artifact(mime_type)
    assert artifact.revised_prompt == prompt  # the artifact does carry it
    signed = signer.sign(artifact, spec)
    report = read_manifest(signed.data, mime_type)

    for needle in (prompt, "Quixotic", "Zebulon"):
        assert needle.encode("utf-8") not in signed.data
        assert needle.encode("utf-16-le") not in signed.data
        assert needle not in json.dumps(report.raw)


def test_thumbnail_is_off_by_default_and_on_when_asked(
    dev_credentials: SigningCredentials, make_artifact: MakeArtifact, spec: ManifestSpec
) -> None:
    artifact = make_artifact("image/jpeg")
    plain = C2paSigner(dev_credentials).sign(artifact, spec)
    with_thumbnail = C2paSigner(dev_credentials, thumbnail=True).sign(artifact, spec)

    anchor = dev_credentials.trust_anchor_pem
    plain_manifest = read_manifest(plain.data, "image/jpeg", trust_anchors_pem=anchor)
    thumb_manifest = read_manifest(with_thumbnail.data, "image/jpeg", trust_anchors_pem=anchor)
    assert "thumbnail" not in plain_manifest.raw["manifests"][plain.manifest_id]
    assert "thumbnail" in thumb_manifest.raw["manifests"][with_thumbnail.manifest_id]
    assert thumb_manifest.validation_state == "Trusted"


@pytest.mark.parametrize("mime_type", ["image/gif", "image/avif", "video/mp4", "text/plain"])
def test_unsupported_media_type_is_refused(
    signer: C2paSigner, make_artifact: MakeArtifact, spec: ManifestSpec, mime_type: str
) -> None:
    with pytest.raises(UnsupportedMedia, match="cannot sign"):
        signer.sign(make_artifact(mime_type, data=b"GIF89a" + bytes(32)), spec)


def test_bytes_that_contradict_the_declared_type_are_refused(
    signer: C2paSigner, make_artifact: MakeArtifact, spec: ManifestSpec, media: dict[str, bytes]
) -> None:
    artifact = make_artifact("image/png", data=media["image/jpeg"])
    with pytest.raises(UnsupportedMedia, match="declared image/png but its bytes are image/jpeg"):
        signer.sign(artifact, spec)


def test_unparseable_media_fails_signing(
    signer: C2paSigner, make_artifact: MakeArtifact, spec: ManifestSpec
) -> None:
    broken_png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    with pytest.raises(SigningFailed, match="could not sign the image/png asset") as caught:
        signer.sign(make_artifact("image/png", data=broken_png), spec)
    assert caught.value.__cause__ is not None  # the c2pa error is chained, not swallowed


def test_a_key_c2pa_rejects_is_a_credentials_error(
    dev_credentials: SigningCredentials, make_artifact: MakeArtifact, spec: ManifestSpec
) -> None:
    broken = SigningCredentials(
        cert_chain_pem=dev_credentials.cert_chain_pem,
        private_key_pem=b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        trust_anchor_pem=None,
        development=True,
    )
    with pytest.raises(CredentialsError, match="c2pa rejected the signing credentials"):
        C2paSigner(broken).sign(make_artifact("image/png"), spec)


def test_signing_from_four_threads_at_once(
    signer: C2paSigner,
    make_artifact: MakeArtifact,
    spec: ManifestSpec,
    dev_credentials: SigningCredentials,
) -> None:
    artifacts = [make_artifact(t) for t in ("image/png", "image/jpeg", "audio/wav")] * 8
    start = threading.Barrier(4)

    def sign_batch(batch: list[Artifact]) -> list[SignedAsset]:
        start.wait(timeout=10)  # all four threads sign at the same time
        return [signer.sign(artifact, spec) for artifact in batch]

    with ThreadPoolExecutor(max_workers=4) as pool:
        batches = list(pool.map(sign_batch, [artifacts[i::4] for i in range(4)]))
    signed = [asset for batch in batches for asset in batch]

    assert len({s.manifest_id for s in signed}) == len(artifacts)
    for asset in signed:
        report = read_manifest(
            asset.data, asset.mime_type, trust_anchors_pem=dev_credentials.trust_anchor_pem
        )
        assert report.validation_state == "Trusted"
        assert report.active_manifest_id == asset.manifest_id


def test_a_remote_manifest_is_reported_and_never_fetched(
    dev_credentials: SigningCredentials, media: dict[str, bytes], spec: ManifestSpec
) -> None:
    # Build the asset with c2pa itself: GenGuard only ever embeds its manifests.
    url = "https://manifests.example.invalid/genguard-test.c2pa"
    info = c2pa.C2paSignerInfo(
        b"es256", dev_credentials.cert_chain_pem, dev_credentials.private_key_pem, None
    )
    destination = io.BytesIO()
    with (
        c2pa.Signer.from_info(info) as signer,
        c2pa.Builder(manifest_definition(spec, "image/jpeg")) as builder,
    ):
        builder.set_no_embed()
        builder.set_remote_url(url)
        builder.sign(signer, "image/jpeg", io.BytesIO(media["image/jpeg"]), destination)

    report = read_manifest(destination.getvalue(), "image/jpeg")
    assert report.remote_manifest_url == url
    assert report.has_manifest is False
    assert report.validation_state is None


def test_media_without_a_manifest_reports_none(media: dict[str, bytes]) -> None:
    for mime_type, data in media.items():
        report = read_manifest(data, mime_type)
        assert report.has_manifest is False
        assert report.validation_state is None
        assert report.raw == {}


@pytest.mark.parametrize(
    ("data", "mime_type", "message"),
    [
        (b"", "image/png", "empty image/png asset"),
        (b"hello, not an image at all", "image/png", "cannot read the C2PA manifest"),
        (b"\x89PNG\r\n\x1a\n" + bytes(40), "image/png", "cannot read the C2PA manifest"),
        (b"RIFF\x10\x00\x00\x00WAVEjunk", "audio/wav", "cannot read the C2PA manifest"),
    ],
)
def test_malformed_media_is_a_read_error(data: bytes, mime_type: str, message: str) -> None:
    with pytest.raises(ManifestReadError, match=message):
        read_manifest(data, mime_type)


def test_unreadable_media_type_and_bad_anchors_are_refused(media: dict[str, bytes]) -> None:
    with pytest.raises(UnsupportedMedia, match="text/plain"):
        read_manifest(b"plain text", "text/plain")
    with pytest.raises(CredentialsError, match="trust anchors is not PEM"):
        read_manifest(media["image/png"], "image/png", trust_anchors_pem=b"not a certificate")


def _production_files(directory: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> Path:
    """A CA and a leaf for ``key`` written as chain.pem / key.pem / anchors.pem."""
    ca = issue_dev_ca()
    now = dt.datetime.now(dt.UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Prod Signer")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
            critical=False,
        )
        .sign(ca.private_key, hashes.SHA256())
    )
    directory.mkdir()
    (directory / "chain.pem").write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM) + ca.certificate_pem
    )
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (directory / "anchors.pem").write_bytes(ca.certificate_pem)
    return directory


@pytest.mark.parametrize(
    ("key_factory", "algorithm"),
    [
        (lambda: ec.generate_private_key(ec.SECP384R1()), "es384"),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "ps256"),
    ],
    ids=["p384", "rsa"],
)
def test_loaded_production_credentials_sign_trusted_assets(
    tmp_path: Path,
    make_artifact: MakeArtifact,
    spec: ManifestSpec,
    key_factory: Callable[[], ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey],
    algorithm: str,
) -> None:
    files = _production_files(tmp_path / "prod", key_factory())
    credentials = load_credentials(files / "chain.pem", files / "key.pem", files / "anchors.pem")
    assert credentials.algorithm == algorithm

    signed = C2paSigner(credentials).sign(make_artifact("image/jpeg"), spec)
    report = read_manifest(
        signed.data, "image/jpeg", trust_anchors_pem=credentials.trust_anchor_pem
    )
    assert report.validation_state == "Trusted"
    assert report.signer_common_name == "Prod Signer"
