"""External signing: the key lives in a separate signing process, the gateway holds the chain.

The reference service (``python -m provenance.signing_service``) runs as a real subprocess;
c2pa signs through its callback and the result reads back Trusted with the test CA.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from gateway.lifespan import external_signer, signing_credentials
from gateway.settings import ProvenanceSettings, Settings
from generators.base import Artifact
from provenance import (
    C2paSigner,
    CredentialsError,
    HttpExternalSigner,
    ManifestSpec,
    SigningCredentials,
    SigningFailed,
    ensure_dev_credentials,
    load_certificate_chain,
    read_manifest,
)

MakeArtifact = Callable[..., Artifact]
ROOT = Path(__file__).resolve().parents[2]


def _start_service(key: Path) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "provenance.signing_service", "--key", str(key)]
    process = subprocess.Popen(
        [*command, "--listen", "127.0.0.1:0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line.startswith("listening on http://"), line
    return process, line.removeprefix("listening on ")


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def signing_service(dev_credentials: SigningCredentials, dev_ca_dir: Path) -> Iterator[str]:
    """The URL of a signing service holding the development signer's key."""
    process, url = _start_service(dev_ca_dir / "signer.key")
    yield url
    _stop(process)


@pytest.fixture(scope="module")
def chain_only(dev_credentials: SigningCredentials, dev_ca_dir: Path) -> SigningCredentials:
    return load_certificate_chain(dev_ca_dir / "signer.pem", dev_ca_dir / "ca.pem")


def test_the_gateway_side_holds_the_chain_and_no_key(chain_only: SigningCredentials) -> None:
    assert chain_only.private_key_pem is None
    assert chain_only.algorithm == "es256"
    assert "private_key_pem=None" in repr(chain_only)
    assert b"PRIVATE KEY" not in chain_only.cert_chain_pem


@pytest.mark.parametrize("mime_type", ["image/png", "audio/wav"])
def test_signed_through_the_service_reads_back_trusted(
    signing_service: str,
    chain_only: SigningCredentials,
    make_artifact: MakeArtifact,
    spec: ManifestSpec,
    mime_type: str,
) -> None:
    signer = C2paSigner(chain_only, external=HttpExternalSigner(signing_service))
    signed = signer.sign(make_artifact(mime_type), spec)
    report = read_manifest(
        signed.data, signed.mime_type, trust_anchors_pem=chain_only.trust_anchor_pem
    )
    assert report.validation_state == "Trusted", report.failure_codes
    assert report.active_manifest_id == signed.manifest_id


def test_a_service_that_is_down_fails_closed(
    dev_ca_dir: Path,
    chain_only: SigningCredentials,
    make_artifact: MakeArtifact,
    spec: ManifestSpec,
) -> None:
    process, url = _start_service(dev_ca_dir / "signer.key")
    _stop(process)
    signer = C2paSigner(chain_only, external=HttpExternalSigner(url, timeout_s=2))
    with pytest.raises(SigningFailed, match=f"external signer {url} unreachable"):
        signer.sign(make_artifact("image/png"), spec)


def test_a_service_holding_another_key_is_refused_at_signing(
    tmp_path: Path,
    chain_only: SigningCredentials,
    make_artifact: MakeArtifact,
    spec: ManifestSpec,
) -> None:
    ensure_dev_credentials(tmp_path / "other-ca")
    process, url = _start_service(tmp_path / "other-ca" / "signer.key")
    try:
        signer = C2paSigner(chain_only, external=HttpExternalSigner(url))
        with pytest.raises(SigningFailed, match="signature does not match"):
            signer.sign(make_artifact("image/png"), spec)
    finally:
        _stop(process)


def test_the_service_rejects_empty_bodies_and_reports_its_algorithm(signing_service: str) -> None:
    assert httpx.get(f"{signing_service}/health").json() == {"algorithm": "es256"}
    assert httpx.post(f"{signing_service}/sign", content=b"").status_code == 400


def test_a_key_on_both_sides_or_on_neither_is_refused(
    dev_credentials: SigningCredentials, chain_only: SigningCredentials
) -> None:
    with pytest.raises(CredentialsError, match="not both or neither"):
        C2paSigner(dev_credentials, external=HttpExternalSigner("http://127.0.0.1:9"))
    with pytest.raises(CredentialsError, match="not both or neither"):
        C2paSigner(chain_only)


def test_start_up_checks_the_service_and_its_algorithm(
    signing_service: str, dev_ca_dir: Path, tmp_path: Path
) -> None:
    provenance = ProvenanceSettings(
        cert_chain_path=dev_ca_dir / "signer.pem",
        trust_anchors_path=dev_ca_dir / "ca.pem",
        external_signer_url=signing_service,
        watermark_key="k" * 32,  # type: ignore[arg-type]  # pydantic parses it
    )
    settings = Settings(provenance=provenance, data_dir=tmp_path)
    credentials = signing_credentials(settings)
    assert credentials.private_key_pem is None
    assert isinstance(external_signer(settings, credentials), HttpExternalSigner)
    with pytest.raises(CredentialsError, match="signs with 'es256'"):
        HttpExternalSigner(signing_service).check_algorithm("ps256")
    with pytest.raises(CredentialsError, match="not usable"):
        HttpExternalSigner("http://127.0.0.1:9", timeout_s=1).check_algorithm("es256")


def test_external_signer_settings_are_coherent(dev_ca_dir: Path) -> None:
    chain = dev_ca_dir / "signer.pem"
    url = "http://127.0.0.1:8701"
    with pytest.raises(ValidationError, match="exclude each other"):
        ProvenanceSettings(
            cert_chain_path=chain,
            private_key_path=dev_ca_dir / "signer.key",
            external_signer_url=url,
        )
    with pytest.raises(ValidationError, match="CERT_CHAIN_PATH is required"):
        ProvenanceSettings(external_signer_url=url)
    with pytest.raises(ValidationError, match="WATERMARK_KEY is required"):
        ProvenanceSettings(cert_chain_path=chain, external_signer_url=url)
    production = ProvenanceSettings(
        cert_chain_path=chain,
        external_signer_url=url,
        watermark_key="k" * 32,  # type: ignore[arg-type]
    )
    with pytest.raises(ValidationError, match="refusing to start") as refused:
        Settings(mode="production", provenance=production)  # no Redis URL: refused for that
    assert "PRIVATE_KEY_PATH" not in str(refused.value)
