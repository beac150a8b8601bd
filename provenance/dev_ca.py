"""Issuing the development certificate authority and its C2PA signing certificate.

Pure ``cryptography`` code, no files: ``credentials.ensure_dev_credentials`` stores what this
module issues. The certificates follow the rules c2pa-rs enforces on a signer: a CA plus a leaf
(a self-signed leaf is rejected); the leaf has KeyUsage digitalSignature (critical), an EKU that
C2PA accepts (emailProtection and documentSigning), BasicConstraints CA=false, SKI and AKI.
Both names say "(untrusted)": a development CA is never a trust anchor outside development.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DEV_CA_COMMON_NAME",
    "DEV_SIGNER_COMMON_NAME",
    "DOCUMENT_SIGNING",
    "IssuedCertificate",
    "issue_dev_ca",
    "issue_dev_signer",
]

DEV_CA_COMMON_NAME = "GenGuard Development CA (untrusted)"
DEV_SIGNER_COMMON_NAME = "GenGuard Development Signer (untrusted)"
DEV_ORGANIZATION = "GenGuard (development)"
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # id-kp-documentSigning

CA_VALIDITY = dt.timedelta(days=3650)
SIGNER_VALIDITY = dt.timedelta(days=730)
BACKDATE = dt.timedelta(minutes=5)  # tolerate clock skew between signer and verifier


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def private_key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEV_ORGANIZATION),
        ]
    )


def _key_usage(*, digital_signature: bool, key_cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def issue_dev_ca(now: dt.datetime | None = None) -> IssuedCertificate:
    """A self-signed EC P-256 root that may sign end-entity certificates only."""
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(DEV_CA_COMMON_NAME)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(digital_signature=False, key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return IssuedCertificate(certificate, key)


def issue_dev_signer(ca: IssuedCertificate, now: dt.datetime | None = None) -> IssuedCertificate:
    """An EC P-256 C2PA claim-signing certificate issued by ``ca``, valid for two years."""
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = min(now + SIGNER_VALIDITY, ca.certificate.not_valid_after_utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(DEV_SIGNER_COMMON_NAME))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True, key_cert_sign=False), critical=True)
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
    return IssuedCertificate(certificate, key)
