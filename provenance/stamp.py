"""Durable content credentials on one generated artifact: watermark → sign → (register).

``ContentCredentials.stamp`` (sync, CPU-bound: the pipeline runs it in its worker pool) embeds the
watermark (``mark``, which the pipeline may run earlier, alongside the output classifiers), then
signs a C2PA manifest whose ``c2pa.soft-binding`` assertion names that watermark, and optionally
reads the result back (self-check: the manifest validates, the watermark decodes to the same id).
``register`` (async) stores the manifest store under the watermark id in the manifest
repository, so a copy stripped of its metadata can be traced back.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, replace

from PIL import Image

from generators.base import Artifact
from provenance.errors import ProvenanceError
from provenance.manifest import ManifestSpec, SoftBinding
from provenance.marking import AppliedWatermark, apply_watermark, detect_watermark
from provenance.payload import new_watermark_id
from provenance.repository import ManifestRepository, RegisteredOutput
from provenance.signer import C2paSigner, SignedAsset
from provenance.verify import read_manifest

__all__ = ["ContentCredentials", "MarkedArtifact", "SelfCheckFailed", "StampedAsset"]


class SelfCheckFailed(ProvenanceError):
    """A signed output did not verify before it left the gateway."""


@dataclass(frozen=True, slots=True)
class MarkedArtifact:
    """An artifact after the watermark step: its (marked) bytes, what was applied, and how long
    the step took (decode, mark, re-encode)."""

    artifact: Artifact
    watermark: AppliedWatermark
    watermark_ms: float


@dataclass(frozen=True, slots=True)
class StampedAsset:
    signed: SignedAsset
    watermark: AppliedWatermark
    spec: ManifestSpec
    # how long embedding the watermark (decode, mark, re-encode) and signing took
    watermark_ms: float = 0.0
    sign_ms: float = 0.0

    @property
    def watermark_id(self) -> str | None:
        return self.watermark.watermark_id


class ContentCredentials:
    """The signer, the audio watermark key, the trust anchors (for self-checks) and the
    repository that maps watermark ids back to manifests."""

    def __init__(
        self,
        signer: C2paSigner,
        *,
        audio_key: bytes,
        repository: ManifestRepository | None,
        trust_anchors_pem: bytes | None,
    ) -> None:
        self.signer = signer
        self.audio_key = audio_key
        self.repository = repository
        self.trust_anchors_pem = trust_anchors_pem

    def mark(
        self, artifact: Artifact, *, watermark: bool, pixels: Image.Image | None = None
    ) -> MarkedArtifact:
        """The watermark step of ``stamp`` alone (CPU-bound). It depends only on the artifact,
        not on any verdict, so the pipeline starts it alongside the output classifiers and
        hands the result to ``stamp(marked=...)`` when the output is delivered unchanged.
        ``pixels``: the artifact's image already decoded to RGB, so it is not decoded again."""
        started = time.perf_counter()
        if watermark:
            applied = apply_watermark(
                artifact.data,
                artifact.mime_type,
                new_watermark_id(),
                audio_key=self.audio_key,
                pixels=pixels,
            )
        else:
            applied = AppliedWatermark(artifact.data, None, None, skipped="disabled by policy")
        if applied.watermark_id is not None and applied.alg is not None:
            artifact = replace(artifact, data=applied.data)
        return MarkedArtifact(artifact, applied, (time.perf_counter() - started) * 1000)

    def stamp(
        self,
        artifact: Artifact,
        spec: ManifestSpec,
        *,
        watermark: bool,
        self_check: bool,
        pixels: Image.Image | None = None,
        marked: MarkedArtifact | None = None,
    ) -> StampedAsset:
        """``pixels``: the artifact's image already decoded to RGB (the pipeline's output stage
        decoded it), so the watermark does not decode it again. ``marked``: ``mark`` of this
        artifact already done (then ``watermark`` and ``pixels`` are not used)."""
        if marked is None:
            marked = self.mark(artifact, watermark=watermark, pixels=pixels)
        applied = marked.watermark
        if applied.watermark_id is not None and applied.alg is not None:
            spec = replace(spec, watermark=SoftBinding(applied.alg, applied.watermark_id))
        started = time.perf_counter()
        signed = self.signer.sign(marked.artifact, spec)
        if self_check:
            self._check(signed, applied)
        done = time.perf_counter()
        return StampedAsset(signed, applied, spec, marked.watermark_ms, (done - started) * 1000)

    def _check(self, signed: SignedAsset, applied: AppliedWatermark) -> None:
        report = read_manifest(
            signed.data, signed.mime_type, trust_anchors_pem=self.trust_anchors_pem
        )
        allowed = {"Trusted"} if self.trust_anchors_pem is not None else {"Trusted", "Valid"}
        if (
            report.validation_state not in allowed
            or report.active_manifest_id != signed.manifest_id
        ):
            raise SelfCheckFailed(
                f"self-check: the signed {signed.mime_type} reads back as "
                f"{report.validation_state} ({', '.join(report.failure_codes) or 'no codes'})"
            )
        if applied.watermark_id is None:
            return
        found = detect_watermark(
            signed.data,
            signed.mime_type,
            audio_key=self.audio_key,
            image_sizes=[(applied.width, applied.height)]
            if applied.width and applied.height
            else [],
            sample_rates=[applied.sample_rate] if applied.sample_rate else [],
        )
        if found.watermark_id != applied.watermark_id:
            raise SelfCheckFailed(
                f"self-check: watermark {applied.watermark_id} reads back as {found.watermark_id}"
            )

    async def register(self, stamped: StampedAsset, tenant: str) -> None:
        if self.repository is None or stamped.watermark.watermark_id is None:
            return
        spec, applied, signed = stamped.spec, stamped.watermark, stamped.signed
        output = RegisteredOutput(
            watermark_id=stamped.watermark.watermark_id,
            watermark_alg=applied.alg or "",
            manifest_id=signed.manifest_id,
            decision_id=spec.decision_id,
            tenant=tenant,
            policy_id=spec.policy_id,
            policy_revision=spec.policy_revision,
            generator=spec.generator,
            model=spec.model,
            mime_type=signed.mime_type,
            sha256=signed.sha256,
            size_bytes=len(signed.data),
            width=applied.width,
            height=applied.height,
            sample_rate=applied.sample_rate,
            created_at=dt.datetime.now(dt.UTC).isoformat(),
        )
        await self.repository.register(output, signed.manifest_store)
