"""Development CA generation and reuse, and precise errors for production PEM files."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provenance import (
    CredentialsError,
    SigningCredentials,
    ensure_dev_credentials,
    load_credentials,
)
from provenance.dev_ca import DOCUMENT_SIGNING, IssuedCertificate, issue_dev_ca, issue_dev_signer

DEV_FILES = ("ca.pem", "ca.key", "signer.pem", "signer.key")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def _store(directory: Path, ca: IssuedCertificate, signer: IssuedCertificate) -> None:
    directory.mkdir(mode=0o700)
    _write(directory / "ca.pem", ca.certificate_pem)
    _write(directory / "ca.key", ca.private_key_pem, 0o600)
    _write(directory / "signer.pem", signer.certificate_pem + ca.certificate_pem)
    _write(directory / "signer.key", signer.private_key_pem, 0o600)


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _leaf(
    ca: IssuedCertificate,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    *,
    usages: list[x509.ObjectIdentifier] | None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Production Signer")]))
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
    )
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(ca.private_key, hashes.SHA256())


# --- development credentials ---------------------------------------------------------------


def test_dev_credentials_are_created_private_and_marked_development(
    dev_ca_dir: Path, dev_credentials: SigningCredentials
) -> None:
    assert _mode(dev_ca_dir) == 0o700
    assert _mode(dev_ca_dir / "ca.key") == 0o600
    assert _mode(dev_ca_dir / "signer.key") == 0o600
    assert dev_credentials.development is True
    assert dev_credentials.algorithm == "es256"
    assert dev_credentials.trust_anchor_pem == (dev_ca_dir / "ca.pem").read_bytes()
    assert dev_credentials.cert_chain_pem == (dev_ca_dir / "signer.pem").read_bytes()
    assert dev_credentials.private_key_pem == (dev_ca_dir / "signer.key").read_bytes()


def test_dev_certificates_meet_the_c2pa_profile(dev_credentials: SigningCredentials) -> None:
    leaf, ca = x509.load_pem_x509_certificates(dev_credentials.cert_chain_pem)
    common_name = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name == "GenGuard Development CA (untrusted)"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    ca_public_key = ca.public_key()
    assert isinstance(ca_public_key, ec.EllipticCurvePublicKey)
    assert ca_public_key.curve.name == "secp256r1"

    key_usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical and key_usage.value.digital_signature
    usages = set(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usages == {ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING}
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski.digest and aki.key_identifier == ca_ski.digest
    leaf.verify_directly_issued_by(ca)
    now = dt.datetime.now(dt.UTC)
    assert leaf.not_valid_before_utc < now < leaf.not_valid_after_utc
    assert leaf.not_valid_after_utc - now > dt.timedelta(days=300)


def test_dev_credentials_are_reused_on_later_calls(
    dev_ca_dir: Path, dev_credentials: SigningCredentials
) -> None:
    before = {name: (dev_ca_dir / name).stat().st_ino for name in DEV_FILES}
    again = ensure_dev_credentials(dev_ca_dir)
    assert again == dev_credentials
    assert {name: (dev_ca_dir / name).stat().st_ino for name in DEV_FILES} == before


def test_repr_never_shows_the_private_key(dev_credentials: SigningCredentials) -> None:
    text = repr(dev_credentials)
    body = dev_credentials.private_key_pem.decode().splitlines()[1]
    assert "PRIVATE KEY" not in text
    assert body not in text
    assert "<redacted>" in text
    assert str(dev_credentials) == text


def test_an_expiring_dev_signer_is_reissued_by_the_same_ca(tmp_path: Path) -> None:
    two_years_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=731)
    ca = issue_dev_ca(now=two_years_ago)
    directory = tmp_path / "dev-ca"
    _store(directory, ca, issue_dev_signer(ca, now=two_years_ago))
    old_key = (directory / "signer.key").read_bytes()

    credentials = ensure_dev_credentials(directory)

    leaf, chain_ca = x509.load_pem_x509_certificates(credentials.cert_chain_pem)
    assert chain_ca == ca.certificate
    assert credentials.trust_anchor_pem == ca.certificate_pem
    assert leaf.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=300)
    assert credentials.private_key_pem != old_key
    assert _mode(directory / "signer.key") == 0o600


def test_an_incomplete_dev_directory_is_an_error(tmp_path: Path) -> None:
    directory = tmp_path / "dev-ca"
    ensure_dev_credentials(directory)
    (directory / "signer.key").unlink()
    with pytest.raises(CredentialsError, match=r"incomplete .* signer\.key missing"):
        ensure_dev_credentials(directory)


def test_a_dev_key_readable_by_others_is_an_error(tmp_path: Path) -> None:
    directory = tmp_path / "dev-ca"
    ensure_dev_credentials(directory)
    (directory / "ca.key").chmod(0o644)
    with pytest.raises(CredentialsError, match=r"ca\.key is readable by group or others"):
        ensure_dev_credentials(directory)


def test_a_file_where_the_dev_directory_should_be_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "dev-ca", b"")
    with pytest.raises(CredentialsError, match="is not a directory"):
        ensure_dev_credentials(path)


# --- production credentials ----------------------------------------------------------------


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a P-384 leaf signed by it, and assorted broken files."""
    directory = tmp_path_factory.mktemp("production")
    ca = issue_dev_ca()
    key = ec.generate_private_key(ec.SECP384R1())
    leaf = _leaf(ca, key, usages=[DOCUMENT_SIGNING])
    other_key = ec.generate_private_key(ec.SECP256R1())
    server_only = _leaf(ca, other_key, usages=[ExtendedKeyUsageOID.SERVER_AUTH])
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"hunter2"),
    )
    files = {
        "chain": _pem(leaf) + ca.certificate_pem,
        "key": _key_pem(key),
        "anchors": ca.certificate_pem,
        "other_key": _key_pem(other_key),
        "reversed_chain": ca.certificate_pem + _pem(leaf),
        "ca_key": ca.private_key_pem,
        "server_only_chain": _pem(server_only) + ca.certificate_pem,
        "encrypted_key": encrypted,
        "der": leaf.public_bytes(serialization.Encoding.DER),
        "garbled": b"-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    }
    return {name: _write(directory / f"{name}.pem", data) for name, data in files.items()}


def test_production_credentials_load_with_the_algorithm_of_the_key(
    production: dict[str, Path],
) -> None:
    credentials = load_credentials(production["chain"], production["key"], production["anchors"])
    assert credentials.development is False
    assert credentials.algorithm == "es384"
    assert credentials.cert_chain_pem == production["chain"].read_bytes()
    assert credentials.trust_anchor_pem == production["anchors"].read_bytes()
    assert load_credentials(production["chain"], production["key"], None).trust_anchor_pem is None


@pytest.mark.parametrize(
    ("chain", "key", "anchors", "message"),
    [
        ("missing", "key", None, r"certificate chain file not found: .*missing\.pem"),
        ("chain", "missing", None, r"private key file not found: .*missing\.pem"),
        ("chain", "key", "missing", r"trust anchors file not found: .*missing\.pem"),
        ("der", "key", None, r"der\.pem is not PEM: expected .*BEGIN CERTIFICATE"),
        ("garbled", "key", None, r"garbled\.pem holds a malformed PEM certificate"),
        ("chain", "chain", None, r"chain\.pem is not PEM: expected .*BEGIN PRIVATE KEY"),
        ("chain", "encrypted_key", None, r"encrypted_key\.pem is encrypted"),
        ("chain", "other_key", None, r"other_key\.pem does not match the leaf certificate"),
        ("reversed_chain", "ca_key", None, r"certificate 1 .* is not issued by certificate 2"),
        ("server_only_chain", "other_key", None, r"no extended key usage that C2PA accepts"),
        ("chain", "key", "key", r"trust anchors .*key\.pem is not PEM"),
    ],
)
def test_bad_production_files_fail_precisely(
    production: dict[str, Path], chain: str, key: str, anchors: str | None, message: str
) -> None:
    def path(name: str) -> Path:
        return production.get(name, production["chain"].with_name(f"{name}.pem"))

    with pytest.raises(CredentialsError, match=message):
        load_credentials(path(chain), path(key), None if anchors is None else path(anchors))


def test_an_expired_leaf_is_refused(tmp_path: Path) -> None:
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=800)
    ca = issue_dev_ca(now=long_ago)
    leaf = issue_dev_signer(ca, now=long_ago)
    chain = _write(tmp_path / "chain.pem", leaf.certificate_pem + ca.certificate_pem)
    key = _write(tmp_path / "key.pem", leaf.private_key_pem, 0o600)
    with pytest.raises(CredentialsError, match=r"leaf certificate .* expired on"):
        load_credentials(chain, key, None)


def test_an_rsa_key_signs_with_ps256(tmp_path: Path) -> None:
    ca = issue_dev_ca()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = _leaf(ca, key, usages=[ExtendedKeyUsageOID.EMAIL_PROTECTION])
    chain = _write(tmp_path / "chain.pem", _pem(leaf) + ca.certificate_pem)
    key_path = _write(tmp_path / "key.pem", _key_pem(key), 0o600)
    assert load_credentials(chain, key_path, None).algorithm == "ps256"


def test_an_unknown_algorithm_is_refused(dev_credentials: SigningCredentials) -> None:
    with pytest.raises(CredentialsError, match="unknown signing algorithm 'md5'"):
        SigningCredentials(
            cert_chain_pem=dev_credentials.cert_chain_pem,
            private_key_pem=dev_credentials.private_key_pem,
            trust_anchor_pem=None,
            development=True,
            algorithm="md5",
        )
