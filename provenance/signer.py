"""Signing generated artifacts with a C2PA manifest (c2pa-python, backed by c2pa-rs).

``C2paSigner.sign`` is synchronous and CPU-bound (about 2 ms without a thumbnail): the gateway
runs it in its worker pool. It is safe to call from many threads at once because the signer
holds only immutable credentials; every call creates, uses and closes its own c2pa Context,
Signer and Builder, so no c2pa handle is ever shared between threads. c2pa errors are
translated here into ``CredentialsError`` / ``SigningFailed``.

With credentials that carry no private key, c2pa signs through a callback that asks an
``ExternalSigner`` (a separate signing process, a KMS, an HSM) for the signature; if that fails
the whole signature fails with ``SigningFailed`` naming the cause (fail closed).
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from dataclasses import dataclass
from typing import Any

import c2pa

from generators.base import Artifact
from provenance.credentials import SigningCredentials
from provenance.errors import CredentialsError, SigningFailed, UnsupportedMedia
from provenance.external_signer import ExternalSigner
from provenance.ingredients import Ingredient, add_ingredients
from provenance.manifest import ManifestSpec, manifest_definition
from provenance.media import mime_type_from_bytes, signable_mime_type

__all__ = ["C2paSigner", "SignedAsset"]


@dataclass(frozen=True, slots=True)
class SignedAsset:
    """The signed bytes, their canonical media type, the active manifest's label
    (``urn:c2pa:<uuid>``), the sha256 (hex) of the signed bytes and the signed manifest store
    (JUMBF, what the manifest repository keeps for soft-binding recovery)."""

    data: bytes
    mime_type: str
    manifest_id: str
    sha256: str
    manifest_store: bytes = b""


class C2paSigner:
    """Embeds a signed C2PA manifest in PNG, JPEG, WebP, WAV, MP3 and FLAC artifacts.

    ``thumbnail=True`` embeds c2pa's default thumbnail of images (about 150 KB and 35-50 ms
    more per signature); it is off by default. ``tsa_url`` names an RFC 3161 time-stamp
    authority that c2pa asks for a countersignature at every signature (a network call).
    ``external`` signs instead of a private key; it is required exactly when the credentials
    carry none.
    """

    def __init__(
        self,
        credentials: SigningCredentials,
        *,
        thumbnail: bool = False,
        tsa_url: str | None = None,
        external: ExternalSigner | None = None,
    ) -> None:
        if (credentials.private_key_pem is None) != (external is not None):
            raise CredentialsError(
                "sign either with a private key or with an external signer, not both or neither"
            )
        self._credentials = credentials
        self._external = external
        self._thumbnail = thumbnail
        self._tsa_url = tsa_url
        self._settings = json.dumps({"builder": {"thumbnail": {"enabled": thumbnail}}})

    def __repr__(self) -> str:
        external = "" if self._external is None else f", external={self._external!r}"
        return f"C2paSigner({self._credentials!r}, thumbnail={self._thumbnail}{external})"

    def sign(self, artifact: Artifact, spec: ManifestSpec) -> SignedAsset:
        """Sign ``artifact`` with a manifest built from ``spec``.

        Raises ``UnsupportedMedia`` for a media type we do not sign (or bytes that
        are not what the media type says), ``CredentialsError`` when c2pa rejects the
        credentials, ``SigningFailed`` for any other c2pa failure.
        """
        mime_type = signable_mime_type(artifact.mime_type)
        sniffed = mime_type_from_bytes(artifact.data)
        if sniffed != mime_type:
            raise UnsupportedMedia(
                f"artifact from generator {artifact.generator!r} is declared {artifact.mime_type} "
                f"but its bytes are {sniffed}"
            )
        definition = manifest_definition(spec, mime_type)
        # We choose the label so the manifest id is known without reading the asset back.
        manifest_id = f"urn:c2pa:{uuid.uuid4()}"
        definition["label"] = manifest_id
        signed, manifest_store = self._embed(
            artifact.data, mime_type, definition, manifest_id, spec.ingredients
        )
        return SignedAsset(
            data=signed,
            mime_type=mime_type,
            manifest_id=manifest_id,
            sha256=hashlib.sha256(signed).hexdigest(),
            manifest_store=manifest_store,
        )

    def _c2pa_signer(self, failures: list[Exception]) -> c2pa.Signer:
        credentials = self._credentials
        if credentials.private_key_pem is None:
            assert self._external is not None  # checked in __init__
            external = self._external

            def sign(data: bytes) -> bytes:
                # c2pa-python logs and swallows a callback's exception: keep it for the caller
                try:
                    return external.sign(data)
                except Exception as exc:
                    failures.append(exc)
                    raise

            algorithm = c2pa.C2paSigningAlg[credentials.algorithm.upper()]
            chain = credentials.cert_chain_pem.decode()
            return c2pa.Signer.from_callback(sign, algorithm, chain, self._tsa_url)
        signer_info = c2pa.C2paSignerInfo(
            credentials.algorithm.encode(),
            credentials.cert_chain_pem,
            credentials.private_key_pem,
            self._tsa_url.encode() if self._tsa_url else None,
        )
        return c2pa.Signer.from_info(signer_info)

    def _embed(
        self,
        data: bytes,
        mime_type: str,
        definition: dict[str, Any],
        manifest_id: str,
        ingredients: tuple[Ingredient, ...] = (),
    ) -> tuple[bytes, bytes]:
        failures: list[Exception] = []
        try:
            signer = self._c2pa_signer(failures)
        except c2pa.C2paError as exc:
            raise CredentialsError(f"c2pa rejected the signing credentials: {exc}") from exc
        destination = io.BytesIO()
        try:
            with (
                signer,
                c2pa.Context.from_json(self._settings) as context,
                c2pa.Builder(definition, context=context) as builder,
            ):
                add_ingredients(builder, ingredients)
                manifest_store = builder.sign(signer, mime_type, io.BytesIO(data), destination)
        except c2pa.C2paError as exc:
            if failures:
                raise SigningFailed(f"could not sign the {mime_type} asset: {failures[0]}") from (
                    failures[0]
                )
            raise SigningFailed(f"c2pa could not sign the {mime_type} asset: {exc}") from exc
        if failures:  # c2pa went on without the signature: never deliver that
            raise SigningFailed(f"could not sign the {mime_type} asset: {failures[0]}")
        if manifest_id.encode() not in manifest_store:
            raise SigningFailed(f"c2pa did not label the manifest {manifest_id} as requested")
        return destination.getvalue(), bytes(manifest_store)
