"""Reading and checking PEM certificates and private keys for C2PA signing.

Every failure is a ``CredentialsError`` that names the file and what was expected, so a
misconfigured deployment fails at start-up with a message an operator can act on rather than
with an opaque error from c2pa on the first signature.
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID

from provenance.errors import CredentialsError

__all__ = [
    "C2PA_SIGNING_EKUS",
    "algorithm_for_key",
    "check_chain",
    "check_key_matches",
    "parse_certificates",
    "parse_private_key",
    "read_pem_file",
]

# Extended key usages that C2PA accepts on a claim-signing certificate (C2PA spec, "Certificate
# Profile"). serverAuth alone, or no EKU at all, is rejected by c2pa-rs.
C2PA_SIGNING_EKUS = frozenset(
    {
        ExtendedKeyUsageOID.EMAIL_PROTECTION,
        x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36"),  # id-kp-documentSigning
        ExtendedKeyUsageOID.TIME_STAMPING,
        ExtendedKeyUsageOID.OCSP_SIGNING,
        x509.ObjectIdentifier("1.3.6.1.4.1.311.76.59.1.9"),  # Microsoft C2PA signing
        x509.ObjectIdentifier("1.3.6.1.4.1.62558.2.1"),  # c2pa-kp-claimSigning
    }
)

_EC_ALGORITHMS = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}


def read_pem_file(path: Path, what: str) -> bytes:
    """The bytes of ``path``; ``what`` names the file's role in the error message."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CredentialsError(f"{what} file not found: {path}") from None
    except OSError as exc:
        raise CredentialsError(f"cannot read {what} {path}: {exc.strerror}") from exc


def _describe(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "<empty subject>"


def parse_certificates(data: bytes, source: str) -> list[x509.Certificate]:
    """All certificates in a PEM bundle, in file order."""
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise CredentialsError(
            f"{source} is not PEM: expected one or more '-----BEGIN CERTIFICATE-----' blocks"
        )
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CredentialsError(f"{source} holds a malformed PEM certificate: {exc}") from exc


def parse_private_key(data: bytes, source: str) -> PrivateKeyTypes:
    """An unencrypted PEM private key (PKCS#8, SEC1 or PKCS#1)."""
    if b"-----BEGIN" not in data or b"PRIVATE KEY-----" not in data:
        raise CredentialsError(
            f"{source} is not PEM: expected a '-----BEGIN PRIVATE KEY-----' block"
        )
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CredentialsError(
            f"{source} is encrypted: GenGuard needs an unencrypted PEM key "
            "(keep production keys in a KMS behind an external signer instead)"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CredentialsError(f"{source} holds a malformed PEM private key: {exc}") from exc


def algorithm_for_key(key: PrivateKeyTypes | CertificatePublicKeyTypes, source: str) -> str:
    """The C2PA signing algorithm for a private key or a certificate's public key:
    ES256/384/512 by curve, PS256 for RSA, Ed25519."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        algorithm = _EC_ALGORITHMS.get(key.curve.name)
        if algorithm is None:
            raise CredentialsError(
                f"{source}: EC curve {key.curve.name} is not allowed by C2PA "
                "(use P-256, P-384 or P-521)"
            )
        return algorithm
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519"
    raise CredentialsError(f"{source}: {type(key).__name__} keys cannot sign C2PA claims")


def check_key_matches(key: PrivateKeyTypes, leaf: x509.Certificate, key_source: str) -> None:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    key_public = key.public_key().public_bytes(serialization.Encoding.DER, spki)
    cert_public = leaf.public_key().public_bytes(serialization.Encoding.DER, spki)
    if key_public != cert_public:
        raise CredentialsError(
            f"private key {key_source} does not match the leaf certificate ({_describe(leaf)}): "
            "the first certificate in the chain must be the one the key signs for"
        )


def check_chain(chain: list[x509.Certificate], source: str, now: dt.datetime) -> None:
    """Leaf first, each certificate issued by the next; the leaf usable for C2PA right now."""
    leaf = chain[0]
    for position, (child, issuer) in enumerate(itertools.pairwise(chain), start=1):
        try:
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise CredentialsError(
                f"{source}: certificate {position} ({_describe(child)}) is not issued by "
                f"certificate {position + 1} ({_describe(issuer)}); order the chain leaf first"
            ) from None
    if leaf.not_valid_before_utc > now:
        raise CredentialsError(
            f"{source}: leaf certificate ({_describe(leaf)}) is not valid before "
            f"{leaf.not_valid_before_utc.isoformat()}"
        )
    if leaf.not_valid_after_utc <= now:
        raise CredentialsError(
            f"{source}: leaf certificate ({_describe(leaf)}) expired on "
            f"{leaf.not_valid_after_utc.isoformat()}"
        )
    _check_leaf_profile(leaf, source)


def _check_leaf_profile(leaf: x509.Certificate, source: str) -> None:
    """The parts of the C2PA certificate profile that c2pa-rs rejects without a clear message."""
    extensions = leaf.extensions
    try:
        if extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise CredentialsError(
                f"{source}: leaf certificate ({_describe(leaf)}) is a CA certificate; "
                "C2PA needs an end-entity signing certificate"
            )
    except x509.ExtensionNotFound:
        pass
    try:
        key_usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        key_usage = None
    if key_usage is None or not key_usage.digital_signature:
        raise CredentialsError(
            f"{source}: leaf certificate ({_describe(leaf)}) lacks KeyUsage digitalSignature"
        )
    try:
        usages = set(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        usages = set()
    if not usages & C2PA_SIGNING_EKUS:
        raise CredentialsError(
            f"{source}: leaf certificate ({_describe(leaf)}) has no extended key usage that "
            "C2PA accepts (emailProtection, documentSigning 1.3.6.1.5.5.7.3.36, timeStamping, "
            "OCSPSigning or c2pa-kp-claimSigning)"
        )
