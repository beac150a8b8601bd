"""The pipeline: six stages, one direction, one audit record per request.

    1 prompt     normalise + text classifiers (worker pool, concurrently) → policy decision
    2 harden     safety negative prompt, parameter limits from the policy
    3 generate   the generator (skipped when stage 1 blocked)
    4 output     image / audio classifiers on what was generated → policy decision
    5 provenance C2PA manifest signed onto every output
    6 audit      one hash-chained record, always (blocks and errors too), awaited

Each stage runs under the policy's timeout; a failing or timed-out stage is handled as the policy
says (``on_error: block`` by default, i.e. fail closed) and the failure is in the audit record.
Blocks are values (``Decision``), never exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from classifiers.audio.voice_bank import RedisVoiceBank
from classifiers.audio.voices import ProtectedVoiceClassifier, shared_voice_encoder
from classifiers.base import AudioClip, Scores
from classifiers.image.clip_concepts import ClipConceptClassifier
from classifiers.image.hash_banks import RedisHashBanks
from classifiers.image.nudenet import NudeNetClassifier
from classifiers.image.pdq_bank import PdqBankClassifier, PdqHash, pdq_hash
from classifiers.text.concepts import SemanticConceptClassifier
from classifiers.text.head import PromptHeadClassifier
from classifiers.text.normalize import text_for_embedding
from gateway.backends import ClassifierBackends, GeneratorRouter
from gateway.batching import MicroBatcher
from gateway.context import RequestContext
from gateway.errors import ApiError, error_for_exception
from gateway.input_stage import ParentLink, find_parents, input_runs, validate_inputs
from gateway.media import (
    DeliveredAsset,
    MediaDecodeError,
    decode_clips,
    decode_image,
    decode_images,
    decode_wav,
)
from gateway.recording import AuditRecorder, StageLog
from gateway.redaction import RedactedArtifact, redact_artifacts
from gateway.review import RedisReviewQueue
from gateway.settings import BatchingSettings
from gateway.storage import FileDelivery
from gateway.workers import WorkerPool
from generators.base import (
    Artifact,
    GenerationRequest,
    Generator,
    Modality,
    Operation,
    SafeGuidance,
    SteerableGenerator,
    operations_of,
)
from genguard_errors import GenGuardError
from policies.combined import StageEvidence, decide_combined
from policies.decision import Decision, Reason, decide, from_reasons, merge
from policies.loader import PolicyBundle
from policies.schema import Action, ImageOutputSection, OnError, StageSection
from policies.steering import speech_fallback, steering_for
from policies.store import PolicyStore
from provenance.ingredients import Ingredient, ingredients_of_inputs
from provenance.manifest import ManifestSpec
from provenance.stamp import ContentCredentials, MarkedArtifact, StampedAsset
from provenance.verifier import verify_asset

__all__ = ["GenerationResult", "ModerationResult", "Pipeline"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GenerationResult:
    decision_id: str
    action: str  # allow | flag | block | error
    decision: Decision
    assets: tuple[DeliveredAsset, ...] = ()
    revised_prompts: tuple[str | None, ...] = ()
    error: ApiError | None = None
    overhead_ms: float = 0.0
    policy_revision: str = ""


@dataclass(frozen=True, slots=True)
class ModerationResult:
    decision_id: str
    model: str
    scores: tuple[dict[str, float], ...]
    flagged: tuple[bool, ...]  # the policy would block this input at the prompt stage
    overhead_ms: float
    error: ApiError | None = None
    blocking: tuple[frozenset[str], ...] = ()  # per input: categories of the blocking rules
    # per input: "text" (prompt stage) or "image" (image output stage); texts first
    input_types: tuple[str, ...] = ()


class Pipeline:
    def __init__(
        self,
        *,
        pool: WorkerPool,
        policies: PolicyStore,
        classifiers: ClassifierBackends,
        generators: GeneratorRouter,
        signer: ContentCredentials | None,
        recorder: AuditRecorder,
        voices: RedisVoiceBank | None = None,
        reviews: RedisReviewQueue | None = None,
        hash_banks: RedisHashBanks | None = None,
        files: FileDelivery | None = None,
        max_input_pixels: int = 4096 * 4096,
        batching: BatchingSettings | None = None,
    ) -> None:
        self._batching = batching if batching is not None else BatchingSettings()
        # one MicroBatcher per model instance (gateway.batching), built on first use
        self._batchers: dict[int, tuple[object, MicroBatcher[object, object]]] = {}
        self._files = files
        self._max_input_pixels = max_input_pixels
        self._voices = voices
        self._hash_banks = hash_banks
        self._reviews = reviews
        self._pool = pool
        self._policies = policies
        self._classifiers = classifiers
        self._generators = generators
        self._signer = signer
        self._recorder = recorder

    async def policy_for(self, tenant: str) -> PolicyBundle:
        return await self._policies.current(tenant)

    # -- image and speech generation -------------------------------------------------------

    async def generate(
        self,
        ctx: RequestContext,
        request: GenerationRequest,
        params: dict[str, object],
        *,
        delivery: Literal["b64_json", "url"] = "b64_json",
    ) -> GenerationResult:
        """Run the stages; edits and variations (``request.images``) first pass the input
        stage; ``delivery="url"`` stores the delivered outputs for signed links."""
        bundle = await self._policies.current(ctx.tenant)
        log = StageLog()
        upstream_ms = 0.0
        decision = Decision(Action.ALLOW)
        assets: tuple[DeliveredAsset, ...] = ()
        artifacts: list[Artifact] = []
        outputs: list[_DecodedOutput | None] = []
        error: ApiError | None = None
        try:
            policy = bundle.policy
            if len(request.prompt) > policy.prompt.max_chars:
                raise ApiError(
                    400,
                    f"prompt is {len(request.prompt)} characters; this policy "
                    f"allows at most {policy.prompt.max_chars}",
                    "string_above_max_length",
                    param="prompt" if request.modality is Modality.IMAGE else "input",
                )
            # 1 prompt (edits and variations: with the input stage on the uploads)
            if request.images:
                decision, request, parents = await self._classify_with_inputs(
                    ctx, bundle, request, log
                )
                params = {**params, "parent_decisions": [p.decision_id for p in parents]}
            else:
                decision = await self._classify_text(bundle, [request.prompt], log)
            if request.modality is Modality.AUDIO:
                decision = speech_fallback(decision)  # speech cannot be routed to a variant
            if not decision.blocked:
                # 2 harden
                request = self._harden(bundle, request, decision, log)
                # 3 generate
                started = time.perf_counter()
                try:
                    artifacts = await self._generate(bundle, request, log)
                finally:
                    upstream_ms = (time.perf_counter() - started) * 1000
                # 4 output
                output, artifacts, outputs = await self._classify_output(
                    bundle, request.modality, artifacts, log
                )
                decision = merge([decision, output])
            if not decision.blocked:
                # 5 provenance (on the pixels the output stage decoded, and the watermark it
                # started, where it did)
                assets = await self._sign(ctx, bundle, artifacts, log, request, outputs=outputs)
                if decision.action is Action.REVIEW:
                    await self._hold_for_review(ctx, decision, assets, log)
                elif delivery == "url":
                    assets = await self._store_for_links(ctx, bundle, assets, log)
        except ApiError as exc:
            error = exc
        except Exception as exc:  # fail closed: any failure is an error response, audited
            error = error_for_exception(exc)
            if not isinstance(exc, GenGuardError):  # stages log their own errors
                log.add_error("pipeline", None, exc)
        finally:
            _discard_marks(outputs)  # blocked or failed: the early watermarks are not used
        action = "error" if error else decision.action.value
        overhead_ms = await self._recorder.record(
            ctx,
            bundle=bundle,
            prompt=request.prompt,
            params=params,
            log=log,
            decision=decision,
            action=action,
            assets=assets,
            error=error,
            upstream_ms=upstream_ms,
        )
        return GenerationResult(
            decision_id=ctx.decision_id,
            action=action,
            decision=decision,
            assets=() if action == Action.REVIEW.value else assets,  # held, not delivered
            revised_prompts=tuple(a.revised_prompt for a in artifacts)[: len(assets)],
            error=error,
            overhead_ms=overhead_ms,
            policy_revision=bundle.revision,
        )

    def _harden(
        self,
        bundle: PolicyBundle,
        request: GenerationRequest,
        decision: Decision,
        log: StageLog,
    ) -> GenerationRequest:
        started = time.perf_counter()
        harden = bundle.policy.harden
        if request.n > harden.max_n:
            raise ApiError(
                400,
                f"n={request.n} exceeds this policy's limit of {harden.max_n}",
                "integer_above_max_value",
                param="n",
            )
        if request.size is not None and request.size[0] * request.size[1] > harden.max_pixels:
            raise ApiError(
                400,
                f"size {request.size[0]}x{request.size[1]} exceeds this policy's "
                f"limit of {harden.max_pixels} pixels",
                "unsupported_value",
                param="size",
            )
        changes: list[str] = []
        if request.modality is Modality.IMAGE and harden.negative_prompt:
            parts = [p for p in (request.negative_prompt, harden.negative_prompt) if p]
            request = replace(request, negative_prompt=", ".join(parts))
            changes.append("negative_prompt")
        detail: dict[str, object] = {"applied": changes}
        steering = steering_for(bundle.policy, decision)
        if request.modality is Modality.IMAGE and steering is not None:
            # the policy's concept-erased variant / safe guidance (docs/erasure.md)
            request = replace(
                request,
                variant=steering.variant or request.variant,
                safe_guidance=None
                if steering.safe_guidance is None
                else SafeGuidance(steering.safe_guidance, steering.concept),
            )
            changes.extend(k for k in ("variant", "safe_guidance") if getattr(steering, k))
            detail["steering"] = steering.to_json()
        log.add("harden", None, latency_ms=_ms(started), verdict="ok", detail=detail)
        return request

    async def _generate(
        self, bundle: PolicyBundle, request: GenerationRequest, log: StageLog
    ) -> list[Artifact]:
        generator, _ = self._generators.resolve(request.modality, request.model)
        allowed = bundle.policy.generate.generators
        if allowed is not None and generator.name not in allowed:
            raise ApiError(
                403,
                f"this policy does not allow the generator {generator.name!r} "
                f"(allowed: {', '.join(allowed) or 'none'})",
                "generator_not_allowed",
                type="permission_error",
                param="model",
            )
        _require_steering(generator, request)
        started = time.perf_counter()
        try:
            artifacts = await asyncio.wait_for(
                generator.generate(request), bundle.policy.generate.timeout_s
            )
        except TimeoutError as exc:
            log.add_error("generate", generator.name, exc, started)
            raise ApiError(
                504,
                f"the generator did not finish within {bundle.policy.generate.timeout_s:g}s",
                "generation_timeout",
                type="upstream_error",
            ) from exc
        except Exception as exc:
            log.add_error("generate", generator.name, exc, started)
            raise
        log.add(
            "generate",
            generator.name,
            latency_ms=_ms(started),
            verdict="ok",
            detail={
                "model": request.model,
                "count": len(artifacts),
                **({"variant": request.variant} if request.variant else {}),
                **(
                    {"safe_guidance": request.safe_guidance.preset} if request.safe_guidance else {}
                ),
            },
        )
        return artifacts

    async def _sign(
        self,
        ctx: RequestContext,
        bundle: PolicyBundle,
        artifacts: Sequence[Artifact],
        log: StageLog,
        request: GenerationRequest | None = None,
        *,
        outputs: Sequence[_DecodedOutput | None] = (),
    ) -> tuple[DeliveredAsset, ...]:
        """Watermark, sign and register every artifact; ``outputs[i]``, when given, is
        ``artifacts[i]`` already decoded by the output stage (so it is not decoded again) and
        its watermark, when the output stage started it early."""
        section = bundle.policy.provenance
        credentials = self._signer
        if not section.c2pa or credentials is None:
            log.add("provenance", None, latency_ms=0.0, verdict="skipped")
            return tuple(DeliveredAsset.unsigned(a) for a in artifacts)
        started = time.perf_counter()
        # one verdict per stage, no classifier names; stage 1 is "input" in the manifest, so the
        # word "prompt" never travels with an asset
        per_stage = {_MANIFEST_STAGES.get(r.stage, r.stage): r.verdict for r in log.records()}
        ingredients = _ingredients(request)
        verdicts = tuple(per_stage.items())

        decoded = list(outputs) if len(outputs) == len(artifacts) else [None] * len(artifacts)

        async def stamp_one(artifact: Artifact, output: _DecodedOutput | None) -> StampedAsset:
            # watermark → sign (the manifest names the watermark) → register, below
            spec = ManifestSpec(
                generator=artifact.generator,
                model=artifact.model,
                decision_id=ctx.decision_id,
                policy_id=bundle.id,
                policy_revision=bundle.revision,
                stage_verdicts=verdicts,
                training_mining=section.training_mining,
                redaction=artifact.redaction if isinstance(artifact, RedactedArtifact) else None,
                ingredients=ingredients,
            )
            marked = None
            if output is not None and output.marked is not None:
                marked = await asyncio.shield(output.marked)
            return await self._pool.cpu(
                credentials.stamp,
                artifact,
                spec,
                watermark=section.watermark,
                self_check=section.self_check,
                pixels=output.pixels if output is not None else None,
                marked=marked,
            )

        async def stamp_all() -> list[StampedAsset]:
            stamped = await asyncio.gather(
                *(stamp_one(a, i) for a, i in zip(artifacts, decoded, strict=True))
            )
            await asyncio.gather(*(credentials.register(s, ctx.tenant) for s in stamped))
            return list(stamped)

        try:
            stamped = await asyncio.wait_for(stamp_all(), section.timeout_s)
            signed = [DeliveredAsset.stamped(s) for s in stamped]
        except Exception as exc:
            log.add_error("provenance", "c2pa", exc, started)
            if section.on_error == "allow":
                return tuple(DeliveredAsset.unsigned(a) for a in artifacts)
            raise
        log.add(
            "provenance",
            "c2pa",
            latency_ms=_ms(started),
            verdict="ok",
            detail={
                "manifests": [s.manifest_id for s in signed],
                "watermarks": [s.watermark_id for s in signed],
                "unmarked": [s.watermark.skipped for s in stamped if s.watermark.skipped],
                "watermark_ms": [round(s.watermark_ms, 3) for s in stamped],
                # marked in parallel with the output classifiers (before this entry's start)
                "watermark_early": [o is not None and o.marked is not None for o in decoded],
                "sign_ms": [round(s.sign_ms, 3) for s in stamped],
            },
        )
        return tuple(signed)

    async def _classify_with_inputs(
        self, ctx: RequestContext, bundle: PolicyBundle, request: GenerationRequest, log: StageLog
    ) -> tuple[Decision, GenerationRequest, tuple[ParentLink, ...]]:
        """Stage 1 of edits and variations: the uploads validated, then the prompt stage, the
        input stage (image classifiers on every upload and the mask) and the lineage lookup
        concurrently, then ``input.combined`` on the evidence of both stages."""
        generator, _ = self._generators.resolve(request.modality, request.model)
        if request.operation not in operations_of(generator):
            raise ApiError(
                400,
                f"the model {request.model!r} ({generator.name}) cannot make image "
                f"{request.operation.value}s",
                "unsupported_value",
                param="model",
            )
        checked = await validate_inputs(self._pool, request, log, self._max_input_pixels)
        request = checked.request
        section = bundle.policy.input
        labels: dict[str, float] = {}

        async def prompt_stage() -> tuple[Decision, list[Scores]]:
            if request.operation is Operation.VARIATION:  # no prompt to judge
                log.add("prompt", None, latency_ms=0.0, verdict="skipped")
                return Decision(Action.ALLOW), []
            prompt = bundle.policy.prompt
            runs = self._text_runs(bundle)
            texts = [request.prompt]
            prefetch = self._prefetch_embeddings(bundle, texts)
            found, failures = await self._score_stage(
                "prompt", prompt, runs, texts, log, prepare=prefetch
            )
            scores = [item for result in found for item in result]
            decision = from_reasons([*decide("prompt", prompt, scores).reasons, *failures])
            log.set_verdict("prompt", decision.action.value)
            return decision, scores

        async def input_stage() -> tuple[Decision, list[Scores]]:
            if not section.classifiers:
                log.add("input", None, latency_ms=0.0, verdict="skipped")
                return Decision(Action.ALLOW), []
            await self._sync_hash_banks(section.classifiers)
            runs = input_runs(section, lambda name: self._classifiers.image(name, section), labels)
            found, failures = await self._score_stage("input", section, runs, checked.pixels, log)
            scores = [item for result in found for item in result]
            decision = from_reasons([*decide("input", section, scores).reasons, *failures])
            log.set_verdict("input", decision.action.value)
            return decision, scores

        async def lineage() -> tuple[ParentLink, ...]:
            if not section.lineage:
                return ()
            return await find_parents(self._pool, self._signer, ctx.tenant, request.images, log)

        (
            (prompt_decision, prompt_scores),
            (input_decision, input_scores),
            parents,
        ) = await asyncio.gather(prompt_stage(), input_stage(), lineage())
        evidence = {
            "prompt": StageEvidence(prompt_scores),
            "input": StageEvidence(input_scores, labels),
        }
        combined = decide_combined(section.combined, evidence)
        if section.classifiers:  # the labels are kept for replays of candidate policies
            log.add(
                "combined",
                None,
                latency_ms=0.0,
                verdict=combined.action.value,
                detail={
                    "labels": {k: round(v, 4) for k, v in sorted(labels.items())},
                    "fired": [r.rule for r in combined.reasons],
                },
            )
        return merge([prompt_decision, input_decision, combined]), request, parents

    async def _store_for_links(
        self,
        ctx: RequestContext,
        bundle: PolicyBundle,
        assets: tuple[DeliveredAsset, ...],
        log: StageLog,
    ) -> tuple[DeliveredAsset, ...]:
        """``response_format=url``: keep the signed outputs for the policy's retention."""
        files = self._files
        if files is None:
            raise ApiError(
                503,
                "response_format=url is not available: this gateway has no file storage",
                "storage_unavailable",
                type="server_error",
            )
        started = time.perf_counter()
        section = bundle.policy.delivery
        try:
            keys = await asyncio.gather(
                *(files.put(ctx.tenant, a.data, a.mime_type, section.retention_s) for a in assets)
            )
        except Exception as exc:
            log.add_error("deliver", files.store.name, exc, started)
            raise
        expires = int(time.time()) + section.url_ttl_s
        log.add(
            "deliver",
            files.store.name,
            latency_ms=_ms(started),
            verdict="ok",
            detail={"files": [k.key for k in keys], "link_expires": expires},
        )
        return tuple(
            replace(a, location=k.key, location_expires=expires)
            for a, k in zip(assets, keys, strict=True)
        )

    async def verify(self, data: bytes, trust_anchors_pem: bytes | None) -> dict[str, object]:
        """``POST /v1/provenance/verify``: C2PA report, watermark, recovered manifest.

        ``trust_anchors_pem`` None: the anchors of the gateway's own signing credentials."""
        credentials = self._signer
        if trust_anchors_pem is None and credentials is not None:
            trust_anchors_pem = credentials.trust_anchors_pem
        return await verify_asset(
            data,
            cpu=self._pool.cpu,
            repository=credentials.repository if credentials else None,
            trust_anchors_pem=trust_anchors_pem,
            audio_key=credentials.audio_key if credentials else b"",
        )

    async def embed_voice(self, wav: bytes) -> tuple[NDArray[np.float32], float]:
        """A protected voice's embedding and its length in seconds, for enrolment."""
        clip = await self._pool.cpu(decode_wav, wav)
        embedding = await self._pool.cpu(shared_voice_encoder().embed, clip)
        if embedding is None:
            raise ApiError(
                400,
                f"the clip holds too little speech to enrol a voice ({clip.duration_s:.1f}s; "
                "send several seconds of the speaker talking)",
                "invalid_value",
                param="audio_b64",
            )
        return embedding, clip.duration_s

    async def hash_image(self, data: bytes) -> PdqHash:
        """An image's PDQ hash, for adding it to a hash bank (decoded and hashed in the pool)."""
        try:
            image = await self._pool.cpu(decode_image, data)
        except MediaDecodeError as exc:
            message = f"the file is not a readable image: {exc}"
            raise ApiError(400, message, "invalid_image", param="file") from exc
        return await self._pool.cpu(pdq_hash, image)

    async def _sync_hash_banks(self, classifiers: Sequence[str]) -> None:
        if PdqBankClassifier.name in classifiers and self._hash_banks is not None:
            # one GET; the in-memory index is rebuilt only when the banks' version moved
            await self._hash_banks.sync(self._classifiers.hash_index)

    # -- classification stages -------------------------------------------------------------

    async def _classify_text(
        self, bundle: PolicyBundle, texts: list[str], log: StageLog
    ) -> Decision:
        section = bundle.policy.prompt
        prefetch = self._prefetch_embeddings(bundle, texts)
        runs = self._text_runs(bundle)
        return await self._run_stage("prompt", section, runs, texts, log, prepare=prefetch)

    def _text_runs(
        self, bundle: PolicyBundle
    ) -> list[tuple[str, Callable[[Sequence[str]], list[Scores]]]]:
        # Resolving a classifier may build it (first use of a policy revision embeds the concept
        # exemplars), so resolution runs in the pool together with the classification.
        return [
            (name, functools.partial(self._classifiers.classify_text, name, bundle))
            for name in bundle.policy.prompt.classifiers
        ]

    async def _classify_output(
        self,
        bundle: PolicyBundle,
        modality: Modality,
        artifacts: Sequence[Artifact],
        log: StageLog,
    ) -> tuple[Decision, list[Artifact], list[_DecodedOutput | None]]:
        """The output stage's decision, the artifacts to deliver (blurred where it said) and,
        per artifact, its decoded pixels (and early watermark) when they are still what is
        delivered (else None)."""
        unchanged: list[_DecodedOutput | None] = [None] * len(artifacts)
        if modality is Modality.IMAGE:
            return await self._classify_images(bundle, artifacts, log)
        section = bundle.policy.output.audio
        if not section.classifiers:
            log.add("output", None, latency_ms=0.0, verdict="skipped")
            return Decision(Action.ALLOW), list(artifacts), unchanged
        clips = await self._pool.cpu(decode_clips, [a.data for a in artifacts])
        audio_runs = await self._audio_runs(bundle)
        decision = await self._run_stage("output", section, audio_runs, clips, log)
        return decision, list(artifacts), unchanged

    async def _classify_images(
        self, bundle: PolicyBundle, artifacts: Sequence[Artifact], log: StageLog
    ) -> tuple[Decision, list[Artifact], list[_DecodedOutput | None]]:
        """Each image decided on its own scores; ``blur`` obscures the regions its rules fired
        on (``gateway.redaction``) and the edit is logged and later signed into the manifest.
        The images are decoded once here, shared by the classifiers and handed on to the
        watermark, which starts at once, alongside the classifiers: it does not depend on their
        verdict. Its result is used only for an image delivered unchanged; a blurred image is
        marked again (on its new pixels) by provenance, a blocked one not at all."""
        section = bundle.policy.output.image
        if not section.classifiers:
            log.add("output", None, latency_ms=0.0, verdict="skipped")
            return Decision(Action.ALLOW), list(artifacts), [None] * len(artifacts)
        started = time.perf_counter()
        images = await self._pool.cpu(decode_images, [a.data for a in artifacts])
        log.add("output", "decode", latency_ms=_ms(started), verdict="ok")
        # submitted before the classifiers: on a small pool the longest job starts first
        marks = [self._mark_early(bundle, a, i) for a, i in zip(artifacts, images, strict=True)]
        await self._sync_hash_banks(section.classifiers)
        runs = [
            (name, self._classifiers.image(name, section).classify) for name in section.classifiers
        ]
        per_classifier, failures = await self._score_stage(
            "output", section, runs, images, log, batched=self._image_batchers(section)
        )
        per_image_scores = [[s[i] for s in per_classifier] for i in range(len(images))]
        per_image = [decide("output", section, scores) for scores in per_image_scores]
        decision = from_reasons([*merge(per_image).reasons, *failures])
        delivered = list(artifacts)
        if decision.action is Action.BLUR:
            started = time.perf_counter()
            outcome = await self._pool.cpu(
                redact_artifacts, section, artifacts, images, per_image_scores, per_image
            )
            delivered = outcome.artifacts
            decision = from_reasons([*decision.reasons, *outcome.unblurrable])
            log.add(
                "output",
                "blur",
                latency_ms=_ms(started),
                verdict=decision.action.value,
                detail={"blurred": outcome.notes},
            )
        log.set_verdict("output", decision.action.value)
        outputs: list[_DecodedOutput | None] = []
        for kept, original, image, mark in zip(delivered, artifacts, images, marks, strict=True):
            output: _DecodedOutput | None = _DecodedOutput(image, mark)
            if kept is not original:  # blurred: these pixels and their mark are not delivered
                _discard_marks([output])
                output = None
            outputs.append(output)
        return decision, delivered, outputs

    def _mark_early(
        self, bundle: PolicyBundle, artifact: Artifact, image: Image.Image
    ) -> asyncio.Future[MarkedArtifact] | None:
        """Start ``ContentCredentials.mark`` of a decoded output in the pool, where provenance
        will watermark it (the policy signs and marks, and there are credentials)."""
        section = bundle.policy.provenance
        credentials = self._signer
        if not (section.c2pa and section.watermark) or credentials is None:
            return None
        future = asyncio.ensure_future(
            self._pool.cpu(credentials.mark, artifact, watermark=True, pixels=image)
        )
        future.add_done_callback(_retrieve)
        return future

    async def _audio_runs(
        self, bundle: PolicyBundle
    ) -> list[tuple[str, Callable[[Sequence[AudioClip]], list[Scores]]]]:
        runs: list[tuple[str, Callable[[Sequence[AudioClip]], list[Scores]]]] = []
        for name in bundle.policy.output.audio.classifiers:
            if name == ProtectedVoiceClassifier.name and self._voices is not None:
                # one GET; the in-memory index is rebuilt only when the bank's version moved
                await self._voices.sync(self._classifiers.voice_index)
            # resolving ``transcript`` may build it for this revision: resolve in the pool
            runs.append((name, functools.partial(self._classifiers.classify_audio, name, bundle)))
        return runs

    async def _hold_for_review(
        self,
        ctx: RequestContext,
        decision: Decision,
        assets: tuple[DeliveredAsset, ...],
        log: StageLog,
    ) -> None:
        """Keep the signed outputs in the review queue instead of delivering them."""
        started = time.perf_counter()
        if self._reviews is None:
            raise ApiError(
                503,
                "a review rule fired but this gateway has no review queue",
                "review_unavailable",
            )
        try:
            await self._reviews.hold(
                decision_id=ctx.decision_id,
                tenant=ctx.tenant,
                key_id=ctx.key_id,
                route=ctx.route,
                reasons=[r.to_json() for r in decision.reasons],
                assets=assets,
            )
        except Exception as exc:
            log.add_error("review", "queue", exc, started)
            raise
        log.add("review", "queue", latency_ms=_ms(started), verdict="review", detail={})

    async def _run_stage(
        self,
        stage: str,
        section: StageSection,
        runs: Sequence[tuple[str, Callable[[Sequence[T]], list[Scores]]]],
        inputs: Sequence[T],
        log: StageLog,
        *,
        prepare: Mapping[str, asyncio.Future[Any]] | None = None,
    ) -> Decision:
        """Run a stage's classifiers concurrently in the pool, each under the stage timeout."""
        per_classifier, failures = await self._score_stage(
            stage, section, runs, inputs, log, prepare=prepare
        )
        collected = [scores for result in per_classifier for scores in result]
        decision = from_reasons([*decide(stage, section, collected).reasons, *failures])
        log.set_verdict(stage, decision.action.value)
        return decision

    async def _score_stage(
        self,
        stage: str,
        section: StageSection,
        runs: Sequence[tuple[str, Callable[[Sequence[T]], list[Scores]]]],
        inputs: Sequence[T],
        log: StageLog,
        *,
        prepare: Mapping[str, asyncio.Future[Any]] | None = None,
        batched: Mapping[str, MicroBatcher[Any, Any]] | None = None,
    ) -> tuple[list[list[Scores]], list[Reason]]:
        """Each classifier's scores (one per input) and the ``on_error`` reasons of failures.

        The classifiers run concurrently. ``prepare[name]``: work that classifier waits for
        first (the shared MiniLM pass); ``batched[name]``: the classifier's calls go through
        that micro-batcher instead of straight to the pool."""

        async def one(name: str, fn: Callable[[Sequence[T]], list[Scores]]) -> list[Scores]:
            started = time.perf_counter()
            score = self._score_one(name, fn, inputs, prepare, batched)
            try:
                scores = await asyncio.wait_for(score, section.timeout_s)
            except Exception as exc:
                log.add_error(stage, name, exc, started)
                raise
            log.add_scores(stage, name, scores, latency_ms=_ms(started))
            return scores

        results = await asyncio.gather(*(one(n, f) for n, f in runs), return_exceptions=True)
        per_classifier: list[list[Scores]] = []
        failures: list[Reason] = []
        for (name, _), result in zip(runs, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                failures.extend(_failure_reason(stage, name, result, section.on_error))
            else:
                per_classifier.append(result)
        return per_classifier, failures

    async def _score_one(
        self,
        name: str,
        fn: Callable[[Sequence[T]], list[Scores]],
        inputs: Sequence[T],
        prepare: Mapping[str, asyncio.Future[Any]] | None,
        batched: Mapping[str, MicroBatcher[Any, Any]] | None,
    ) -> list[Scores]:
        ready = prepare.get(name) if prepare else None
        if ready is not None:
            # a failed shared pass is not this classifier's verdict: ``fn`` embeds again and
            # raises (and is logged, and handled per on_error) on its own
            with contextlib.suppress(Exception):
                await asyncio.shield(ready)
        batcher = batched.get(name) if batched else None
        if batcher is not None:
            return list(await batcher.run(inputs))
        return await self._pool.cpu(fn, inputs)

    # -- micro-batching (gateway.batching) -------------------------------------------------

    def _batcher(
        self, model: object, fn: Callable[[Sequence[Any]], Sequence[Any]], name: str
    ) -> MicroBatcher[Any, Any]:
        """The one batcher of ``model`` (kept alive with it, so its id is never reused)."""
        entry = self._batchers.get(id(model))
        if entry is None or entry[0] is not model:
            settings = self._batching
            batcher: MicroBatcher[Any, Any] = MicroBatcher(
                fn,
                pool=self._pool,
                max_wait_ms=settings.max_wait_ms,
                max_batch=settings.max_batch,
                name=name,
            )
            entry = (model, batcher)
            self._batchers[id(model)] = entry
        return entry[1]

    def _prefetch_embeddings(
        self, bundle: PolicyBundle, texts: Sequence[str]
    ) -> dict[str, asyncio.Future[Any]]:
        """Start the MiniLM forward pass of ``texts`` once for the prompt classifiers that read
        it (semantic concepts, the trained head), micro-batched with concurrent requests; they
        then find the vectors in the encoder's cache instead of each running the model."""
        users = [n for n in bundle.policy.prompt.classifiers if n in _MINILM_CLASSIFIERS]
        if not users or not texts or not self._batching.enabled:
            return {}
        embed = functools.partial(_embed_prompt_views, self._classifiers)
        batcher = self._batcher(_MINILM_PASS, embed, "minilm")
        future = asyncio.ensure_future(batcher.run(texts))
        future.add_done_callback(_retrieve)
        return dict.fromkeys(users, future)

    def _image_batchers(self, section: ImageOutputSection) -> dict[str, MicroBatcher[Any, Any]]:
        """Batchers for the section's model-backed image classifiers (NudeNet, CLIP)."""
        if not self._batching.enabled:
            return {}
        out: dict[str, MicroBatcher[Any, Any]] = {}
        for name in section.classifiers:
            if name in _BATCHED_IMAGE_CLASSIFIERS:
                classifier = self._classifiers.image(name, section)
                out[name] = self._batcher(classifier, classifier.classify, name)
        return out

    # -- moderations -----------------------------------------------------------------------

    async def moderate(
        self,
        ctx: RequestContext,
        texts: list[str],
        params: dict[str, object],
        images: Sequence[bytes] = (),
    ) -> ModerationResult:
        """Texts are judged by the prompt stage; ``images`` (encoded bytes) by the policy's image
        output stage, each on its own: flagged when that stage would not deliver it as it is
        (``block`` or ``blur``). Results: texts first, then images."""
        bundle = await self._policies.current(ctx.tenant)
        log = StageLog()
        error: ApiError | None = None
        count = len(texts) + len(images)
        per_input: list[dict[str, float]] = [{} for _ in range(count)]
        flagged: list[bool] = [False for _ in range(count)]
        blocking: list[frozenset[str]] = [frozenset() for _ in range(count)]
        decision = Decision(Action.ALLOW)
        try:
            decisions = await self._moderate_texts(bundle, texts, log) if texts else []
            if images:
                decisions.extend(await self._moderate_images(bundle, images, log))
            for index, (item_decision, item_scores) in enumerate(decisions):
                for entry in item_scores:
                    for category, value in entry.scores.items():
                        key = category.value
                        per_input[index][key] = max(per_input[index].get(key, 0.0), value)
                # flagged exactly when the prompt stage of this policy would not allow the text
                # (for an image: when the image output stage would not deliver it unchanged)
                flagged[index] = item_decision.action.severity >= Action.BLUR.severity
                blocking[index] = frozenset(
                    r.category
                    for r in item_decision.reasons
                    if r.action.severity >= Action.BLUR.severity
                )
            decision = merge(d for d, _ in decisions)
        except ApiError as exc:
            error = exc
        except Exception as exc:
            error = error_for_exception(exc)
            log.add_error("pipeline", None, exc)
        action = "error" if error else ("flag" if any(flagged) else "allow")
        overhead_ms = await self._recorder.record(
            ctx,
            bundle=bundle,
            prompt="\n".join(texts),
            params=params,
            log=log,
            decision=decision,
            action=action,
            assets=(),
            error=error,
            upstream_ms=0.0,
        )
        return ModerationResult(
            decision_id=ctx.decision_id,
            model=str(params.get("model") or "genguard-moderation"),
            scores=tuple(per_input),
            flagged=tuple(flagged),
            overhead_ms=overhead_ms,
            error=error,
            blocking=tuple(blocking),
            input_types=("text",) * len(texts) + ("image",) * len(images),
        )

    async def _moderate_images(
        self, bundle: PolicyBundle, blobs: Sequence[bytes], log: StageLog
    ) -> list[tuple[Decision, list[Scores]]]:
        """The image output stage on each image, decided on its own (no blur is applied)."""
        section = bundle.policy.output.image
        try:
            images = await self._pool.cpu(decode_images, list(blobs))
        except MediaDecodeError as exc:
            raise ApiError(
                400,
                f"an image_url part could not be decoded as an image: {exc}",
                "invalid_image",
                param="input",
            ) from exc
        if not section.classifiers:
            log.add("output", None, latency_ms=0.0, verdict="skipped")
            return [(Decision(Action.ALLOW), []) for _ in images]
        await self._sync_hash_banks(section.classifiers)
        runs = [
            (name, self._classifiers.image(name, section).classify) for name in section.classifiers
        ]
        per_classifier, failures = await self._score_stage(
            "output", section, runs, images, log, batched=self._image_batchers(section)
        )
        out: list[tuple[Decision, list[Scores]]] = []
        for index in range(len(images)):
            scores = [result[index] for result in per_classifier]
            item = from_reasons([*decide("output", section, scores).reasons, *failures])
            out.append((item, scores))
        log.set_verdict("output", merge(d for d, _ in out).action.value)
        return out

    async def _moderate_texts(
        self, bundle: PolicyBundle, texts: list[str], log: StageLog
    ) -> list[tuple[Decision, list[Scores]]]:
        """Score every text in one batch per classifier; decide each text on its own."""
        section = bundle.policy.prompt
        runs = self._text_runs(bundle)
        prefetch = self._prefetch_embeddings(bundle, texts)

        async def one(
            name: str, fn: Callable[[Sequence[str]], list[Scores]]
        ) -> tuple[list[Scores], float]:
            started = time.perf_counter()
            score = self._score_one(name, fn, texts, prefetch, None)
            scores = await asyncio.wait_for(score, section.timeout_s)
            return scores, _ms(started)

        results = await asyncio.gather(*(one(n, f) for n, f in runs), return_exceptions=True)
        out: list[tuple[Decision, list[Scores]]] = []
        for index in range(len(texts)):
            item_log = StageLog()
            item_scores: list[Scores] = []
            failures: list[Reason] = []
            for (name, _), result in zip(runs, results, strict=True):
                if isinstance(result, BaseException):
                    if not isinstance(result, Exception):
                        raise result
                    item_log.add_error("prompt", name, result)
                    failures.extend(_failure_reason("prompt", name, result, section.on_error))
                    continue
                scores, latency_ms = result
                item_log.add_scores("prompt", name, [scores[index]], latency_ms=latency_ms)
                item_scores.append(scores[index])
            item = from_reasons([*decide("prompt", section, item_scores).reasons, *failures])
            item_log.set_verdict("prompt", item.action.value)
            log.extend(item_log, label=f"input[{index}]")
            out.append((item, item_scores))
        return out


def _require_steering(generator: Generator, request: GenerationRequest) -> None:
    """Fail closed: a variant or safe guidance the generator cannot honour refuses the request."""
    if request.variant is None and request.safe_guidance is None:
        return
    wanted = f"variant {request.variant!r}" if request.variant else "safe latent guidance"
    if not isinstance(generator, SteerableGenerator):
        raise ApiError(
            503,
            f"this request must be generated with the {wanted}, which the generator "
            f"{generator.name!r} cannot do (configure image_generator = diffusers_local)",
            "variant_unavailable",
            type="server_error",
        )
    if request.variant is not None and request.variant not in generator.variants:
        raise ApiError(
            503,
            f"the variant {request.variant!r} is not loaded here "
            f"(loaded: {', '.join(generator.variants) or 'none'}; see genguard variants list)",
            "variant_unavailable",
            type="server_error",
        )


_MINILM_CLASSIFIERS = frozenset({SemanticConceptClassifier.name, PromptHeadClassifier.name})
"""Prompt classifiers that read the shared MiniLM encoder (one forward pass per prompt)."""

_BATCHED_IMAGE_CLASSIFIERS = frozenset({NudeNetClassifier.name, ClipConceptClassifier.name})
"""Output image classifiers whose model takes a batch: concurrent requests are merged."""

_MINILM_PASS = object()
"""The key of the MiniLM micro-batcher (one per pipeline)."""


def _embed_prompt_views(classifiers: ClassifierBackends, texts: Sequence[str]) -> list[object]:
    """One MiniLM pass over the texts the MiniLM classifiers embed (``text_for_embedding``):
    fills the encoder's sentence and token caches. Runs in the pool (may load the encoder)."""
    views = [text_for_embedding(text)[1] for text in texts]
    return list(classifiers.encoder().encode_tokens(views))


@dataclass(frozen=True, slots=True)
class _DecodedOutput:
    """An output image as the output stage decoded it (RGB) and, when started, its watermark
    (``Pipeline._mark_early``) running in the pool."""

    pixels: Image.Image
    marked: asyncio.Future[MarkedArtifact] | None


def _discard_marks(outputs: Sequence[_DecodedOutput | None]) -> None:
    """Cancel early watermarks that will not be used (a no-op for those already awaited)."""
    for output in outputs:
        if output is not None and output.marked is not None:
            output.marked.cancel()


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a shared future's exception as seen (its users report failures themselves)."""
    if not future.cancelled():
        future.exception()


_MANIFEST_STAGES = {"prompt": "input", "input": "uploads"}
"""Stage names as the manifest shows them: the word "prompt" never travels with an asset."""


def _ingredients(request: GenerationRequest | None) -> tuple[Ingredient, ...]:
    if request is None or not request.images:
        return ()
    mask = request.mask
    return ingredients_of_inputs(
        [(image.data, image.mime_type) for image in request.images],
        (mask.data, mask.mime_type) if mask is not None else None,
    )


def _failure_reason(stage: str, classifier: str, exc: Exception, on_error: OnError) -> list[Reason]:
    action = Action.BLOCK if on_error == "block" else Action.FLAG
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, TimeoutError):
        detail = "timed out"
    return [
        Reason(
            stage=stage,
            rule=f"on_error:{on_error}",
            category="classifier-error",
            classifier=classifier,
            score=1.0,
            threshold=0.0,
            action=action,
            detail=detail,
        )
    ]


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
