"""Builds the classifier and generator instances the pipeline uses, once, at start-up.

Policies name backends; an unknown name fails here, at start-up or when a policy is loaded,
never at request time. Classifiers configured by the policy itself (the term list) are built per
policy revision and cached; model-backed classifiers (NudeNet, MiniLM, profanity) are loaded and
warmed once. Semantic concepts share the one MiniLM encoder and embed their policy exemplars once
per revision. Building and warming run in the worker pool (``prepare``, ``classify_text``).

Only the backends a loaded policy names are built, and their modules (with torch, transformers,
onnxruntime, open_clip, scipy) are imported only then: a gateway whose policies run no model never
imports one. ``prepare`` runs before a policy becomes active, so no request pays a first load.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from classifiers.audio.voices import ProtectedVoiceClassifier, VoiceIndex
from classifiers.base import (
    AudioClassifier,
    AudioClip,
    ClassifierUnavailable,
    ImageClassifier,
    Scores,
    TextClassifier,
)
from classifiers.image.clip_concepts import ClipConceptClassifier, ClipHead, ClipModel
from classifiers.image.nudenet import NudeNetClassifier
from classifiers.image.pdq_bank import PdqBankClassifier, PdqIndex
from classifiers.registry import AUDIO_CLASSIFIERS, IMAGE_CLASSIFIERS, TEXT_CLASSIFIERS
from classifiers.text.term_list import TermListClassifier
from gateway.errors import ApiError
from gateway.settings import Settings
from generators.base import CpuRunner, Generator, Modality, SteerableGenerator
from generators.espeak_tts import EspeakSpeechGenerator
from generators.openai_compat import OpenAICompatGenerator
from generators.procedural import ProceduralImageGenerator
from policies.loader import PolicyBundle
from policies.schema import ImageOutputSection, InputSection, NudeNetSection, Policy

if TYPE_CHECKING:
    from classifiers.text.encoder import MiniLMEncoder

# registry names of the backends built here from configuration (their modules import models)
_SEMANTIC_CONCEPTS = "semantic_concepts"
_TRANSFORMERS = "transformers"
_TRANSCRIPT = "transcript"

__all__ = ["ClassifierBackends", "GeneratorRouter", "UnknownBackend"]


class UnknownBackend(ValueError):
    """A policy names a classifier that is not registered."""


@dataclass
class ClassifierBackends:
    """Long-lived classifier instances plus per-policy-revision ones."""

    settings: Settings
    _shared: dict[str, object] = field(default_factory=dict)
    _per_revision: dict[tuple[str, str], object] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    # the enrolled protected voices, swapped whole by the pipeline when the Redis bank changes
    voice_index: VoiceIndex = field(default_factory=VoiceIndex)
    # the PDQ hash banks, swapped whole by the pipeline when the Redis banks change
    hash_index: PdqIndex = field(default_factory=PdqIndex)

    def check(self, policy: Policy) -> None:
        """Raise ``UnknownBackend`` naming the stage if ``policy`` refers to an unknown backend."""
        registries: dict[str, frozenset[str]] = {  # the names only: nothing is imported
            "text": frozenset(TEXT_CLASSIFIERS),
            "image": frozenset(IMAGE_CLASSIFIERS),
            "audio": frozenset(AUDIO_CLASSIFIERS),
        }
        where = {
            "text": "prompt.classifiers",
            "image": "output.image.classifiers or input.classifiers",
            "audio": "output.audio.classifiers",
        }
        for kind, names in policy.classifier_names().items():
            for name in sorted(names):
                if name not in registries[kind]:
                    valid = ", ".join(sorted(registries[kind])) or "(none yet)"
                    raise UnknownBackend(
                        f"policy {policy.id!r}: {where[kind]} names unknown {kind} classifier "
                        f"{name!r}; registered: {valid}"
                    )

    def prepare(self, bundle: PolicyBundle) -> None:
        """Load and warm every backend ``bundle`` uses (start-up, or when a policy changes)."""
        self.check(bundle.policy)
        for name in bundle.policy.prompt.classifiers:
            self.text(name, bundle).classify(["warm-up: a lighthouse at dawn"])
        for name in bundle.policy.output.image.classifiers:
            self.image(name, bundle.policy.output.image).classify(
                [Image.new("RGB", (64, 64), (128, 128, 128))]
            )
        for name in bundle.policy.input.classifiers:  # uploads of edits and variations
            self.image(name, bundle.policy.input).classify(
                [Image.new("RGB", (64, 64), (128, 128, 128))]
            )
        # at the synthesiser's rate (not the recogniser's), so the resampler loads here too
        silence = AudioClip(np.zeros(24_000, dtype=np.float32), 24_000)
        for name in bundle.policy.output.audio.classifiers:
            self.audio(name, bundle).classify([silence])
        if bundle.policy.provenance.watermark:  # the audio watermark resamples with scipy
            importlib.import_module("scipy.signal")

    def classify_text(self, name: str, bundle: PolicyBundle, texts: Sequence[str]) -> list[Scores]:
        """Build (first use of a revision) and run one text classifier; call in the pool."""
        return self.text(name, bundle).classify(texts)

    def text(self, name: str, bundle: PolicyBundle) -> TextClassifier:
        prompt = bundle.policy.prompt
        if name == TermListClassifier.name:
            return self._for_revision(
                name,
                bundle.revision,
                lambda: TermListClassifier(
                    prompt.terms, patterns=prompt.patterns, allow=prompt.allow
                ),
            )  # type: ignore[return-value]
        if name == _SEMANTIC_CONCEPTS:
            from classifiers.text.concepts import SemanticConceptClassifier

            return self._for_revision(
                name,
                bundle.revision,
                lambda: SemanticConceptClassifier(prompt.concepts, encoder=self.encoder()),
            )  # type: ignore[return-value]
        if name == _TRANSFORMERS:
            from classifiers.text.transformers_model import TransformersTextClassifier

            section = prompt.transformers
            if section is None:
                raise UnknownBackend("prompt.transformers is required by 'transformers'")
            # keyed by its configuration, so a policy edit elsewhere does not reload the model
            return self._for_revision(
                name,
                json.dumps(section.model_dump(mode="json"), sort_keys=True),
                lambda: TransformersTextClassifier(
                    section.path, section.labels, max_length=section.max_length
                ),
            )  # type: ignore[return-value]
        return self._get(name, lambda: TEXT_CLASSIFIERS[name]())  # type: ignore[return-value]

    def encoder(self) -> MiniLMEncoder:
        """The process's one MiniLM encoder, loaded (weights verified) on first use, read-only."""
        from classifiers.text.encoder import shared_minilm_encoder

        return self._get("minilm-encoder", shared_minilm_encoder)  # type: ignore[return-value]

    def _for_revision(self, name: str, key: str, build: Callable[[], object]) -> object:
        built = self._per_revision.get((name, key))
        if built is not None:  # the hot path never waits for another revision being built
            return built
        with self._lock:
            if (name, key) not in self._per_revision:
                self._per_revision[(name, key)] = build()
            return self._per_revision[(name, key)]

    def image(
        self, name: str, section: ImageOutputSection | InputSection | None = None
    ) -> ImageClassifier:
        """The shared instance of ``name``; with ``section``, configured by it (NudeNet's
        per-label thresholds and extra labels: a view sharing the one loaded model)."""
        if name == NudeNetClassifier.name:
            threads = self.settings.classifiers.nudenet_threads
            model: NudeNetClassifier = self._get(name, lambda: NudeNetClassifier(threads=threads))  # type: ignore[assignment]
            config = section.nudenet if section is not None else None
            if config is None or config == NudeNetSection():
                return model
            return self._for_revision(
                name,
                config.model_dump_json(),
                lambda: model.configured(
                    config.labels,
                    config.categories,
                    needs_context=config.needs_context,
                    context_threshold=config.context_threshold,
                    alone_threshold=config.alone_threshold,
                ),
            )  # type: ignore[return-value]
        if name == ClipConceptClassifier.name:
            return self._clip_concepts(section)
        if name == PdqBankClassifier.name:
            return self._get(name, lambda: PdqBankClassifier(self.hash_index))  # type: ignore[return-value]
        return self._get(name, lambda: IMAGE_CLASSIFIERS[name]())  # type: ignore[return-value]

    def _clip_concepts(
        self, section: ImageOutputSection | InputSection | None
    ) -> ClipConceptClassifier:
        """The policy's CLIP concepts over the one shared model; the concept texts are embedded
        once per distinct ``output.image.concepts`` (so at most once per policy revision)."""
        settings = self.settings.classifiers
        weights = settings.clip_weights
        if weights is None:
            raise ClassifierUnavailable(
                "the policy runs 'clip_concepts' but no CLIP weights are configured: set "
                "GENGUARD_CLASSIFIERS__CLIP_WEIGHTS to a local open_clip checkpoint for "
                f"GENGUARD_CLASSIFIERS__CLIP_MODEL={settings.clip_model!r}"
            )
        model: ClipModel = self._get(  # type: ignore[assignment]
            "clip-model", lambda: ClipModel(settings.clip_model, weights)
        )
        head_path = settings.clip_head
        head: ClipHead | None = (
            self._get("clip-head", lambda: ClipHead(head_path, dimensions=model.dimensions))  # type: ignore[assignment]
            if head_path is not None
            else None
        )
        concepts = dict(section.concepts) if section is not None else {}
        key = json.dumps({c.value: list(t) for c, t in concepts.items()}, sort_keys=True)
        return self._for_revision(  # type: ignore[return-value]
            ClipConceptClassifier.name,
            key,
            lambda: ClipConceptClassifier(
                concepts, model=model, head=head, head_category=settings.clip_head_category
            ),
        )

    def classify_audio(
        self, name: str, bundle: PolicyBundle, clips: Sequence[AudioClip]
    ) -> list[Scores]:
        """Build (first use of a revision) and run one audio classifier; call in the pool."""
        return self.audio(name, bundle).classify(clips)

    def audio(self, name: str, bundle: PolicyBundle) -> AudioClassifier:
        if name == _TRANSCRIPT:
            from classifiers.audio.recognizers import build_recognizer
            from classifiers.audio.transcript import TranscriptClassifier

            # the transcript goes through this revision's prompt classifiers; one recogniser
            settings = self.settings.classifiers
            recognizer = self._get(
                "recognizer",
                lambda: build_recognizer(
                    settings.recognizer,
                    settings.recognizer_path,
                    threads=settings.recognizer_threads,
                ),
            )
            return self._for_revision(
                name,
                bundle.revision,
                lambda: TranscriptClassifier(
                    [self.text(n, bundle) for n in bundle.policy.prompt.classifiers],
                    recognizer,  # type: ignore[arg-type]
                ),
            )  # type: ignore[return-value]
        if name == ProtectedVoiceClassifier.name:
            return self._get(name, lambda: ProtectedVoiceClassifier(self.voice_index))  # type: ignore[return-value]
        return self._get(name, lambda: AUDIO_CLASSIFIERS[name]())  # type: ignore[return-value]

    def _get(self, name: str, build: Callable[[], object]) -> object:
        built = self._shared.get(name)
        if built is not None:
            return built
        with self._lock:
            if name not in self._shared:
                self._shared[name] = build()
            return self._shared[name]


class GeneratorRouter:
    """Maps the ``model`` a client asks for to a generator (``GET /v1/models`` lists them)."""

    def __init__(self, settings: Settings, run_cpu: CpuRunner) -> None:
        self._generators: dict[Modality, Generator] = {}
        upstream = settings.upstream
        if "openai_compat" in (settings.image_generator, settings.speech_generator):
            assert upstream.base_url is not None  # enforced by Settings
        key = upstream.api_key.get_secret_value() if upstream.api_key else None
        if settings.image_generator == "openai_compat":
            self._generators[Modality.IMAGE] = OpenAICompatGenerator(
                base_url=upstream.base_url or "",
                api_key=key,
                models=upstream.image_models,
                timeout_s=upstream.timeout_s,
                modalities=frozenset({Modality.IMAGE}),
            )
        elif settings.image_generator == "diffusers_local":
            from generators.diffusers_edit import DiffusersEditGenerator  # torch + diffusers
            from generators.diffusers_local import DiffusersLocalGenerator

            local = settings.diffusers
            assert local.model_path is not None  # enforced by Settings
            # edits and variations: img2img / inpainting over the same loaded components
            self._generators[Modality.IMAGE] = DiffusersEditGenerator(
                DiffusersLocalGenerator(
                    local.model_path,
                    model_name=local.model_name,
                    variants_dir=local.variants_dir,
                    steps=local.steps,
                    guidance_scale=local.guidance_scale,
                    device=local.device,
                    run_cpu=run_cpu,
                ),
                steps=local.steps,
                guidance_scale=local.guidance_scale,
                run_cpu=run_cpu,
            )
        else:
            self._generators[Modality.IMAGE] = ProceduralImageGenerator(run_cpu=run_cpu)
        if settings.speech_generator == "openai_compat":
            self._generators[Modality.AUDIO] = OpenAICompatGenerator(
                base_url=upstream.base_url or "",
                api_key=key,
                models=upstream.speech_models,
                timeout_s=upstream.timeout_s,
                modalities=frozenset({Modality.AUDIO}),
            )
        else:
            self._generators[Modality.AUDIO] = EspeakSpeechGenerator(run_cpu=run_cpu)
        self._aliases = dict(settings.model_aliases)

    def resolve(self, modality: Modality, model: str | None) -> tuple[Generator, str]:
        generator = self._generators[modality]
        if model is None or model == "":
            return generator, generator.models[0]
        target = self._aliases.get(model, model)
        if target in generator.models:
            return generator, target
        known = sorted(
            set(generator.models) | {a for a, t in self._aliases.items() if t in generator.models}
        )
        raise ApiError(
            404,
            f"the model {model!r} does not exist for {modality.value} generation here; "
            f"available: {', '.join(known)}",
            "model_not_found",
            param="model",
        )

    def variants(self) -> frozenset[str]:
        """The concept-erased variants the image generator serves (what policies may route to)."""
        generator = self._generators[Modality.IMAGE]
        if isinstance(generator, SteerableGenerator):
            return frozenset(generator.variants)
        return frozenset()

    def models(self) -> list[tuple[str, Generator]]:
        out: list[tuple[str, Generator]] = []
        for generator in self._generators.values():
            out.extend((m, generator) for m in generator.models)
            out.extend((a, generator) for a, t in self._aliases.items() if t in generator.models)
        return out

    async def aclose(self) -> None:
        for generator in self._generators.values():
            await generator.aclose()
