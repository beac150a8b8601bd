"""Reading and validating the C2PA manifest of an asset (c2pa-python, backed by c2pa-rs).

``read_manifest`` is synchronous and CPU-bound (about 1-2 ms): run it in the worker pool. Each
call builds its own c2pa Context and Reader. It never touches the network: remote manifests and
OCSP are not fetched (an uploaded file must not make the gateway send requests to a URL of the
uploader's choosing); an asset that points to a remote manifest reports ``remote_manifest_url``.

Validation states are c2pa's: ``"Trusted"`` (valid, and the signer chains to a trust anchor),
``"Valid"`` (intact and well signed, signer not trusted: ``signingCredential.untrusted``) and
``"Invalid"`` (e.g. ``assertion.dataHash.mismatch`` after the asset was edited). Only a
``"Trusted"`` report's assertions, including ``genguard``, are attested by a known signer.
"""

from __future__ import annotations

import functools
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

import c2pa

from provenance.errors import CredentialsError, ManifestReadError, UnsupportedMedia
from provenance.manifest import GENGUARD_ASSERTION_LABEL
from provenance.media import canonical_mime_type
from provenance.pem import parse_certificates

__all__ = ["VerificationReport", "read_manifest"]

JsonObject = dict[str, Any]

ALGORITHM_UNSUPPORTED = "algorithm.unsupported"

_ACTIONS_LABEL = re.compile(r"^c2pa\.actions(\.v2)?(__\d+)?$")
# c2pa-rs refuses a remote manifest it may not fetch with "Remote: must fetch remote manifests
# from url <url>"; tests/provenance covers this wording.
_REMOTE_URL = re.compile(r"^Remote: .*\burl (\S+)")
# c2pa-rs logs ``algorithm.unsupported`` for a claim or hash whose algorithm is missing or
# unknown, then gives up on the store (its own test_no_alg checks the status); the C API only
# passes the error on, as "Other: unknown algorithm".
_UNKNOWN_ALGORITHM = re.compile(r"^Other: unknown algorithm$")


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """What an asset's C2PA manifest store says, and whether it validates.

    ``success_codes``, ``failure_codes`` and ``informational_codes`` belong to the active
    manifest (e.g. ``signingCredential.ocsp.notRevoked`` is a success code). The ingredients'
    status comes in three parts, because C2PA 2.x validators report only what differs from what
    the signer recorded: ``ingredient_failure_codes`` and ``ingredient_informational_codes`` are
    c2pa's ``ingredientDeltas`` (found now, in any ingredient manifest), and
    ``ingredient_recorded_codes`` are the statuses that signers recorded in the ingredient
    assertions of every manifest in the store when they imported that ingredient (for example
    ``claimSignature.mismatch`` of an ingredient whose signature was already broken then). Their
    union is the ingredients' full status. ``actions`` are the active manifest's
    ``c2pa.actions`` entries; ``genguard`` is its ``org.genguard.decision`` assertion, if any.
    ``raw`` is c2pa's JSON manifest store, unchanged.
    """

    has_manifest: bool
    validation_state: str | None = None
    failure_codes: tuple[str, ...] = ()
    informational_codes: tuple[str, ...] = ()
    ingredient_failure_codes: tuple[str, ...] = ()
    success_codes: tuple[str, ...] = ()
    ingredient_informational_codes: tuple[str, ...] = ()
    ingredient_recorded_codes: tuple[str, ...] = ()
    active_manifest_id: str | None = None
    claim_generator: str | None = None
    actions: tuple[JsonObject, ...] = ()
    genguard: JsonObject | None = None
    signer_issuer: str | None = None
    signer_common_name: str | None = None
    signed_at: str | None = None
    remote_manifest_url: str | None = None
    raw: JsonObject = field(default_factory=dict)

    @property
    def trusted(self) -> bool:
        return self.validation_state == "Trusted"


@functools.cache
def _readable_mime_types() -> frozenset[str]:
    return frozenset(c2pa.Reader.get_supported_mime_types())


def read_manifest(
    data: bytes, mime_type: str, *, trust_anchors_pem: bytes | None = None
) -> VerificationReport:
    """Read and validate the C2PA manifest embedded in ``data``.

    ``trust_anchors_pem`` lists the roots whose signers count as trusted. No manifest gives
    ``has_manifest=False``; a media type c2pa cannot read raises ``UnsupportedMedia``; bytes or
    a manifest store that cannot be parsed raise ``ManifestReadError``; anchors that are not
    PEM certificates raise ``CredentialsError``.
    """
    canonical = canonical_mime_type(mime_type)
    if canonical not in _readable_mime_types():
        raise UnsupportedMedia(f"cannot read C2PA manifests from {mime_type!r} media")
    if not data:
        raise ManifestReadError(f"cannot read an empty {canonical} asset")
    settings: JsonObject = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if trust_anchors_pem is not None:
        parse_certificates(trust_anchors_pem, "trust anchors")
        try:
            settings["trust"] = {"trust_anchors": trust_anchors_pem.decode("ascii")}
        except UnicodeDecodeError:
            raise CredentialsError("trust anchors PEM contains non-ASCII bytes") from None
    try:
        with (
            c2pa.Context.from_dict(settings) as context,
            c2pa.Reader(canonical, io.BytesIO(data), context=context) as reader,
        ):
            store = json.loads(reader.json())
    except c2pa.C2paError.ManifestNotFound:
        return VerificationReport(has_manifest=False)
    except c2pa.C2paError.NotSupported as exc:
        raise UnsupportedMedia(f"c2pa cannot read this {canonical} asset: {exc}") from exc
    except c2pa.C2paError as exc:
        remote = _REMOTE_URL.match(str(exc))
        if remote is not None:
            return VerificationReport(has_manifest=False, remote_manifest_url=remote.group(1))
        if _UNKNOWN_ALGORITHM.match(str(exc)):
            return VerificationReport(
                has_manifest=True,
                validation_state="Invalid",
                failure_codes=(ALGORITHM_UNSUPPORTED,),
            )
        raise ManifestReadError(
            f"cannot read the C2PA manifest of this {canonical} asset: {exc}"
        ) from exc
    except json.JSONDecodeError as exc:
        raise ManifestReadError(f"c2pa returned a manifest store that is not JSON: {exc}") from exc
    return _report(store)


def _codes(statuses: Any) -> tuple[str, ...]:
    if not isinstance(statuses, list):
        return ()
    return tuple(str(s["code"]) for s in statuses if isinstance(s, dict) and "code" in s)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _object(value: Any) -> JsonObject:
    return value if isinstance(value, dict) else {}


def _claim_generator(manifest: JsonObject) -> str | None:
    if isinstance(manifest.get("claim_generator"), str):
        return str(manifest["claim_generator"])
    infos = manifest.get("claim_generator_info")
    if not isinstance(infos, list) or not infos:
        return None
    info = _object(infos[0])
    name, version = info.get("name"), info.get("version")
    if not isinstance(name, str):
        return None
    return f"{name}/{version}" if isinstance(version, str) else name


def _recorded_codes(ingredient: JsonObject) -> tuple[str, ...]:
    """The statuses recorded in an ingredient assertion: ``validation_status`` (v1/v2) or the
    failures of ``validation_results.activeManifest`` (v3)."""
    results = _object(_object(ingredient.get("validation_results")).get("activeManifest"))
    return _codes(ingredient.get("validation_status")) + _codes(results.get("failure"))


def _report(store: JsonObject) -> VerificationReport:
    manifests = _object(store.get("manifests"))
    active_id = store.get("active_manifest")
    active = _object(manifests.get(active_id)) if isinstance(active_id, str) else {}
    results = _object(store.get("validation_results"))
    active_results = _object(results.get("activeManifest"))
    if results:
        failures = _codes(active_results.get("failure"))
    else:  # older stores carry only the flat validation_status list
        failures = _codes(store.get("validation_status"))
    deltas = [
        _object(_object(d).get("validationDeltas")) for d in results.get("ingredientDeltas") or []
    ]
    recorded = tuple(
        code
        for manifest in manifests.values()
        for ingredient in _object(manifest).get("ingredients") or []
        for code in _recorded_codes(_object(ingredient))
    )
    assertions = [_object(a) for a in active.get("assertions") or []]
    actions = tuple(
        _object(action)
        for assertion in assertions
        if _ACTIONS_LABEL.match(str(assertion.get("label", "")))
        for action in _object(assertion.get("data")).get("actions") or []
    )
    genguard = next(
        (_object(a.get("data")) for a in assertions if a.get("label") == GENGUARD_ASSERTION_LABEL),
        None,
    )
    signature = _object(active.get("signature_info"))
    return VerificationReport(
        has_manifest=bool(manifests),
        validation_state=_text(store.get("validation_state")),
        failure_codes=failures,
        informational_codes=_codes(active_results.get("informational")),
        ingredient_failure_codes=tuple(c for d in deltas for c in _codes(d.get("failure"))),
        success_codes=_codes(active_results.get("success")),
        ingredient_informational_codes=tuple(
            c for d in deltas for c in _codes(d.get("informational"))
        ),
        ingredient_recorded_codes=recorded,
        active_manifest_id=_text(active_id),
        claim_generator=_claim_generator(active),
        actions=actions,
        genguard=genguard,
        signer_issuer=_text(signature.get("issuer")),
        signer_common_name=_text(signature.get("common_name")),
        signed_at=_text(signature.get("time")),
        remote_manifest_url=None,
        raw=store,
    )
