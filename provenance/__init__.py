"""GenGuard provenance: C2PA signing and verification of generated media.

``C2paSigner.sign`` embeds a signed manifest (``c2pa.created``, trainedAlgorithmicMedia, the
generator and model, and GenGuard's decision id and policy revision; never the prompt);
``read_manifest`` reads and validates one. Credentials come from production PEM files
(``load_credentials``) or a development CA generated on first start
(``ensure_dev_credentials``), or a certificate chain alone (``load_certificate_chain``) with an
external signer (``HttpExternalSigner``, served by ``python -m provenance.signing_service``)
that keeps the private key out of the gateway. Both sign and read are synchronous, CPU-bound
and thread-safe.

The names below are imported on first access (PEP 562): ``import provenance.errors`` does not
import c2pa, OpenCV and SciPy (signing, watermarks) with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genguard_lazy import lazy_exports

if TYPE_CHECKING:
    from provenance.credentials import (
        SigningCredentials,
        ensure_dev_credentials,
        load_certificate_chain,
        load_credentials,
    )
    from provenance.errors import (
        CredentialsError,
        ManifestReadError,
        ProvenanceError,
        SigningFailed,
        UnsupportedMedia,
    )
    from provenance.external_signer import ExternalSigner, HttpExternalSigner
    from provenance.manifest import (
        GENGUARD_ASSERTION_LABEL,
        TRAINED_ALGORITHMIC_MEDIA,
        ManifestSpec,
        manifest_definition,
    )
    from provenance.marking import (
        AppliedWatermark,
        DetectedWatermark,
        apply_watermark,
        detect_watermark,
    )
    from provenance.media import SIGNABLE_MIME_TYPES, canonical_mime_type, mime_type_from_bytes
    from provenance.repository import ManifestRepository, RegisteredOutput
    from provenance.signer import C2paSigner, SignedAsset
    from provenance.stamp import ContentCredentials, SelfCheckFailed, StampedAsset
    from provenance.verifier import AssetInspection, inspect_asset, verify_asset
    from provenance.verify import VerificationReport, read_manifest

_WHERE = {
    "AppliedWatermark": "provenance.marking",
    "AssetInspection": "provenance.verifier",
    "C2paSigner": "provenance.signer",
    "ContentCredentials": "provenance.stamp",
    "CredentialsError": "provenance.errors",
    "DetectedWatermark": "provenance.marking",
    "ExternalSigner": "provenance.external_signer",
    "GENGUARD_ASSERTION_LABEL": "provenance.manifest",
    "HttpExternalSigner": "provenance.external_signer",
    "ManifestReadError": "provenance.errors",
    "ManifestRepository": "provenance.repository",
    "ManifestSpec": "provenance.manifest",
    "ProvenanceError": "provenance.errors",
    "RegisteredOutput": "provenance.repository",
    "SIGNABLE_MIME_TYPES": "provenance.media",
    "SelfCheckFailed": "provenance.stamp",
    "SignedAsset": "provenance.signer",
    "SigningCredentials": "provenance.credentials",
    "SigningFailed": "provenance.errors",
    "StampedAsset": "provenance.stamp",
    "TRAINED_ALGORITHMIC_MEDIA": "provenance.manifest",
    "UnsupportedMedia": "provenance.errors",
    "VerificationReport": "provenance.verify",
    "apply_watermark": "provenance.marking",
    "canonical_mime_type": "provenance.media",
    "detect_watermark": "provenance.marking",
    "ensure_dev_credentials": "provenance.credentials",
    "inspect_asset": "provenance.verifier",
    "load_certificate_chain": "provenance.credentials",
    "load_credentials": "provenance.credentials",
    "manifest_definition": "provenance.manifest",
    "mime_type_from_bytes": "provenance.media",
    "read_manifest": "provenance.verify",
    "verify_asset": "provenance.verifier",
}

__all__ = [
    "GENGUARD_ASSERTION_LABEL",
    "SIGNABLE_MIME_TYPES",
    "TRAINED_ALGORITHMIC_MEDIA",
    "AppliedWatermark",
    "AssetInspection",
    "C2paSigner",
    "ContentCredentials",
    "CredentialsError",
    "DetectedWatermark",
    "ExternalSigner",
    "HttpExternalSigner",
    "ManifestReadError",
    "ManifestRepository",
    "ManifestSpec",
    "ProvenanceError",
    "RegisteredOutput",
    "SelfCheckFailed",
    "SignedAsset",
    "SigningCredentials",
    "SigningFailed",
    "StampedAsset",
    "UnsupportedMedia",
    "VerificationReport",
    "apply_watermark",
    "canonical_mime_type",
    "detect_watermark",
    "ensure_dev_credentials",
    "inspect_asset",
    "load_certificate_chain",
    "load_credentials",
    "manifest_definition",
    "mime_type_from_bytes",
    "read_manifest",
    "verify_asset",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
