"""Errors raised by the provenance package.

Exception tree::

    GenGuardError
    └── ProvenanceError            signing or reading Content Credentials failed
        ├── CredentialsError       a certificate, key or trust anchor is missing or unusable
        ├── UnsupportedMedia       a media type that we cannot sign or read
        ├── SigningFailed          c2pa could not sign the asset
        └── ManifestReadError      the asset or its manifest store could not be parsed

A file without Content Credentials is not an error: ``read_manifest`` reports
``has_manifest=False``. c2pa's own exceptions never leave this package; the backend modules
(``signer.py``, ``verify.py``) translate them with ``raise ... from exc``.
"""

from __future__ import annotations

from genguard_errors import GenGuardError

__all__ = [
    "CredentialsError",
    "ManifestReadError",
    "ProvenanceError",
    "SigningFailed",
    "UnsupportedMedia",
]


class ProvenanceError(GenGuardError):
    """Signing or reading Content Credentials failed."""


class CredentialsError(ProvenanceError):
    """A signing certificate, private key or trust anchor is missing, malformed or unusable."""


class UnsupportedMedia(ProvenanceError):
    """The media type cannot be signed or read (or the bytes are not what the type says)."""


class SigningFailed(ProvenanceError):
    """c2pa could not sign the asset."""


class ManifestReadError(ProvenanceError):
    """The asset or its C2PA manifest store could not be parsed."""
