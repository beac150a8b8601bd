"""Signing credentials: production PEM files, or a development CA generated on first start.

``load_credentials`` checks production PEMs up front (file present, PEM, key matches the leaf,
chain order, validity, C2PA certificate profile). ``ensure_dev_credentials`` creates a
development root CA and a signing certificate once, stores them in a private directory and
reuses them afterwards; they are marked ``development=True`` and never trusted outside it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from provenance.dev_ca import IssuedCertificate, issue_dev_ca, issue_dev_signer
from provenance.errors import CredentialsError
from provenance.pem import (
    algorithm_for_key,
    check_chain,
    check_key_matches,
    parse_certificates,
    parse_private_key,
    read_pem_file,
)

__all__ = [
    "SIGNING_ALGORITHMS",
    "SigningCredentials",
    "ensure_dev_credentials",
    "load_certificate_chain",
    "load_credentials",
]

SIGNING_ALGORITHMS = frozenset({"es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"})

DEV_FILES = ("ca.pem", "ca.key", "signer.pem", "signer.key")
RENEW_BEFORE = dt.timedelta(days=7)  # reissue the development signer this long before it expires


@dataclass(frozen=True, slots=True, repr=False)
class SigningCredentials:
    """A C2PA signing certificate chain (leaf first, PEM), its private key and a trust anchor.

    ``private_key_pem`` is ``None`` when the key lives in an external signer (a KMS, an HSM,
    ``provenance.signing_service``) and only the chain is here. ``trust_anchor_pem`` is the
    root(s) a verifier needs to report "Trusted" for what these credentials sign;
    ``development`` marks the generated development CA.
    """

    cert_chain_pem: bytes
    private_key_pem: bytes | None
    trust_anchor_pem: bytes | None
    development: bool
    algorithm: str = "es256"

    def __post_init__(self) -> None:
        if self.algorithm not in SIGNING_ALGORITHMS:
            allowed = ", ".join(sorted(SIGNING_ALGORITHMS))
            raise CredentialsError(f"unknown signing algorithm {self.algorithm!r}: use {allowed}")

    def __repr__(self) -> str:
        certificates = self.cert_chain_pem.count(b"-----BEGIN CERTIFICATE-----")
        anchor = "None" if self.trust_anchor_pem is None else "<PEM>"
        key = "None" if self.private_key_pem is None else "<redacted>"
        return (
            f"SigningCredentials(algorithm={self.algorithm!r}, development={self.development}, "
            f"cert_chain_pem=<{certificates} certificate(s)>, private_key_pem={key}, "
            f"trust_anchor_pem={anchor})"
        )


def load_credentials(
    cert_chain_path: Path, private_key_path: Path, trust_anchors_path: Path | None
) -> SigningCredentials:
    """Read and check production PEM files; the algorithm follows from the key type.

    Raises ``CredentialsError`` naming the file and the problem: missing file, not PEM,
    encrypted key, key does not match the leaf certificate, chain out of order, leaf expired
    or not usable for C2PA.
    """
    chain_source = f"certificate chain {cert_chain_path}"
    key_source = f"private key {private_key_path}"
    chain_pem = read_pem_file(cert_chain_path, "certificate chain")
    key_pem = read_pem_file(private_key_path, "private key")
    chain = parse_certificates(chain_pem, chain_source)
    key = parse_private_key(key_pem, key_source)
    check_key_matches(key, chain[0], str(private_key_path))
    check_chain(chain, chain_source, dt.datetime.now(dt.UTC))
    anchors_pem: bytes | None = None
    if trust_anchors_path is not None:
        anchors_pem = read_pem_file(trust_anchors_path, "trust anchors")
        parse_certificates(anchors_pem, f"trust anchors {trust_anchors_path}")
    return SigningCredentials(
        cert_chain_pem=chain_pem,
        private_key_pem=key_pem,
        trust_anchor_pem=anchors_pem,
        development=False,
        algorithm=algorithm_for_key(key, key_source),
    )


def load_certificate_chain(
    cert_chain_path: Path, trust_anchors_path: Path | None
) -> SigningCredentials:
    """Credentials without a private key, for an external signer: the chain is checked as in
    ``load_credentials`` and the algorithm follows from the leaf's public key."""
    chain_source = f"certificate chain {cert_chain_path}"
    chain_pem = read_pem_file(cert_chain_path, "certificate chain")
    chain = parse_certificates(chain_pem, chain_source)
    check_chain(chain, chain_source, dt.datetime.now(dt.UTC))
    anchors_pem: bytes | None = None
    if trust_anchors_path is not None:
        anchors_pem = read_pem_file(trust_anchors_path, "trust anchors")
        parse_certificates(anchors_pem, f"trust anchors {trust_anchors_path}")
    return SigningCredentials(
        cert_chain_pem=chain_pem,
        private_key_pem=None,
        trust_anchor_pem=anchors_pem,
        development=False,
        algorithm=algorithm_for_key(chain[0].public_key(), chain_source),
    )


def ensure_dev_credentials(directory: Path) -> SigningCredentials:
    """The development CA and signer in ``directory``, generated on the first call.

    ``directory`` is created with mode 0700; ``ca.key`` and ``signer.key`` are written 0600,
    ``ca.pem`` and ``signer.pem`` (leaf + CA) 0644, each atomically. Later calls reuse the same
    files (the signer is reissued by the same CA shortly before it expires). Several processes
    may call this at once: a lock file serialises them. A partial set of files, or a key file
    readable by others, is an error rather than something silently replaced.
    """
    _ensure_private_directory(directory)
    with _locked(directory / ".lock"):
        present = [name for name in DEV_FILES if (directory / name).exists()]
        if not present:
            ca = issue_dev_ca()
            _store_ca(directory, ca)
            _store_signer(directory, ca, issue_dev_signer(ca))
        elif len(present) < len(DEV_FILES):
            missing = ", ".join(name for name in DEV_FILES if name not in present)
            raise CredentialsError(
                f"incomplete development credentials in {directory}: {missing} missing; "
                "delete the directory to generate a new development CA"
            )
        else:
            for key_file in ("ca.key", "signer.key"):
                _check_private_mode(directory / key_file)
            _renew_dev_signer_if_expiring(directory)
        credentials = load_credentials(
            directory / "signer.pem", directory / "signer.key", directory / "ca.pem"
        )
    return replace(credentials, development=True)


def _renew_dev_signer_if_expiring(directory: Path) -> None:
    ca_certificate = parse_certificates(
        read_pem_file(directory / "ca.pem", "development CA"), f"{directory / 'ca.pem'}"
    )[0]
    chain = parse_certificates(
        read_pem_file(directory / "signer.pem", "development signer"), f"{directory / 'signer.pem'}"
    )
    if chain[-1] != ca_certificate:
        raise CredentialsError(
            f"{directory / 'signer.pem'} was not issued by {directory / 'ca.pem'}; "
            "delete the directory to generate a new development CA"
        )
    now = dt.datetime.now(dt.UTC)
    if chain[0].not_valid_after_utc - RENEW_BEFORE > now:
        return
    if ca_certificate.not_valid_after_utc - RENEW_BEFORE <= now:
        raise CredentialsError(
            f"development CA in {directory} expires on "
            f"{ca_certificate.not_valid_after_utc.isoformat()}; delete the directory to "
            "generate a new one"
        )
    ca_key = parse_private_key(
        read_pem_file(directory / "ca.key", "development CA key"), f"{directory / 'ca.key'}"
    )
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise CredentialsError(f"{directory / 'ca.key'} is not the development CA's EC key")
    ca = IssuedCertificate(ca_certificate, ca_key)
    _store_signer(directory, ca, issue_dev_signer(ca))


def _store_ca(directory: Path, ca: IssuedCertificate) -> None:
    _write_atomically(directory / "ca.key", ca.private_key_pem, 0o600)
    _write_atomically(directory / "ca.pem", ca.certificate_pem, 0o644)


def _store_signer(directory: Path, ca: IssuedCertificate, signer: IssuedCertificate) -> None:
    _write_atomically(directory / "signer.key", signer.private_key_pem, 0o600)
    _write_atomically(directory / "signer.pem", signer.certificate_pem + ca.certificate_pem, 0o644)


def _ensure_private_directory(directory: Path) -> None:
    if directory.exists():
        if not directory.is_dir():
            raise CredentialsError(f"development credentials path {directory} is not a directory")
        return
    directory.mkdir(mode=0o700, parents=True)
    directory.chmod(0o700)


def _check_private_mode(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise CredentialsError(
            f"{path} is readable by group or others (mode {mode:04o}); run `chmod 600 {path}`"
        )


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write to a temporary file created with ``mode`` and rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # exact mode, whatever the umask
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
