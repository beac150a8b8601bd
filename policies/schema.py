"""The policy schema: what compliance staff write in YAML, validated by pydantic.

A policy is data, never code: which classifiers run at each stage, the rules that turn their
scores into a decision, the safety negative prompt, and how much of the prompt the audit log
keeps. Every model forbids unknown keys so that a typo is an error with its line, not a rule
that silently never runs.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from classifiers.taxonomy import Category

__all__ = [
    "NOT_ENFORCED_ACTIONS",
    "Action",
    "AuditSection",
    "BlurSection",
    "HardenSection",
    "ImageOutputSection",
    "ModerationSection",
    "NudeNetSection",
    "OnError",
    "OutputSection",
    "Policy",
    "PromptSection",
    "ProvenanceSection",
    "Rule",
    "StageSection",
    "TransformersModelSection",
]


class Action(StrEnum):
    """What a rule does when it fires, in increasing severity."""

    ALLOW = "allow"
    FLAG = "flag"  # allowed, but marked for review in the audit log
    BLUR = "blur"  # output images only: the detected regions are obscured, then delivered
    REVIEW = "review"  # generated and signed, then held for a human reviewer (HTTP 202)
    BLOCK = "block"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Action.ALLOW: 0, Action.FLAG: 1, Action.BLUR: 2, Action.REVIEW: 3, Action.BLOCK: 4}

NOT_ENFORCED_ACTIONS = ("rewrite", "route-to-variant")
"""Declared in the policy language; rejected by validation until the pipeline enforces them."""

OnError = Literal["block", "allow"]
TermLists = dict[Category, tuple[str, ...]]
StageName = Literal["prompt", "output"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Strict):
    """Fires when any classifier scores ``category`` at or above ``threshold``."""

    id: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.:-]+$")]
    category: Category
    threshold: Annotated[float, Field(ge=0.0, le=1.0)]
    action: Action = Action.BLOCK
    classifiers: tuple[str, ...] | None = None  # None: any classifier of the stage
    description: str | None = None

    @field_validator("action", mode="before")
    @classmethod
    def _not_enforced_yet(cls, value: object) -> object:
        if isinstance(value, str) and value in NOT_ENFORCED_ACTIONS:
            raise ValueError(
                f"action {value!r} is part of the policy language but not enforced yet "
                "(use 'block' or 'flag' for now; see docs/policy-reference.md)"
            )
        return value


class StageSection(_Strict):
    classifiers: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    timeout_s: Annotated[float, Field(gt=0.0, le=600.0)] = 10.0
    on_error: OnError = "block"

    @model_validator(mode="after")
    def _unique_rule_ids(self) -> StageSection:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
            if rule.classifiers is not None:
                unknown = set(rule.classifiers) - set(self.classifiers)
                if unknown:
                    raise ValueError(
                        f"rule {rule.id!r} names classifiers {sorted(unknown)} that this stage "
                        f"does not run (it runs {list(self.classifiers)})"
                    )
        return self


class TransformersModelSection(_Strict):
    """A local ``transformers`` text-classification model and its label -> category map."""

    path: Annotated[str, Field(min_length=1)]
    labels: Annotated[dict[str, Category], Field(min_length=1)]
    max_length: Annotated[int, Field(ge=8, le=4096)] = 256


class PromptSection(StageSection):
    classifiers: tuple[str, ...] = ("term_list",)
    timeout_s: Annotated[float, Field(gt=0.0, le=600.0)] = 2.0
    terms: dict[Category, tuple[str, ...]] = Field(default_factory=dict)
    patterns: dict[Category, tuple[str, ...]] = Field(default_factory=dict)
    allow: tuple[str, ...] = ()  # phrases inside which a term or pattern hit does not count
    concepts: dict[Category, tuple[str, ...]] = Field(default_factory=dict)
    transformers: TransformersModelSection | None = None
    max_chars: Annotated[int, Field(ge=1, le=100_000)] = 4000

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(
        cls, value: dict[Category, tuple[str, ...]]
    ) -> dict[Category, tuple[str, ...]]:
        for category, patterns in value.items():
            for index, pattern in enumerate(patterns):
                try:
                    compiled = re.compile(pattern, re.IGNORECASE)
                except re.error as exc:
                    raise ValueError(
                        f"patterns[{category.value}][{index}] {pattern!r} is not a valid "
                        f"regular expression: {exc}"
                    ) from None
                if compiled.search("") is not None:
                    raise ValueError(
                        f"patterns[{category.value}][{index}] {pattern!r} matches the empty text"
                    )
        return value

    @field_validator("concepts")
    @classmethod
    def _no_empty_concepts(
        cls, value: dict[Category, tuple[str, ...]]
    ) -> dict[Category, tuple[str, ...]]:
        for category, sentences in value.items():
            for index, sentence in enumerate(sentences):
                if not sentence.strip():
                    raise ValueError(f"concepts[{category.value}][{index}] is empty")
        return value

    @model_validator(mode="after")
    def _classifier_configuration(self) -> PromptSection:
        if "transformers" in self.classifiers and self.transformers is None:
            raise ValueError(
                "prompt.classifiers lists 'transformers' but prompt.transformers "
                "(path and labels) is missing"
            )
        if "semantic_concepts" in self.classifiers and not self.concepts:
            raise ValueError(
                "prompt.classifiers lists 'semantic_concepts' but prompt.concepts is empty"
            )
        return self

    @field_validator("terms")
    @classmethod
    def _no_empty_terms(
        cls, value: dict[Category, tuple[str, ...]]
    ) -> dict[Category, tuple[str, ...]]:
        for category, terms in value.items():
            for index, term in enumerate(terms):
                if not term.strip() or term.strip() == "*":
                    raise ValueError(f"terms[{category.value}][{index}] is empty")
        return value


class HardenSection(_Strict):
    negative_prompt: str | None = None
    max_n: Annotated[int, Field(ge=1, le=10)] = 4
    max_pixels: Annotated[int, Field(ge=64 * 64)] = 2048 * 2048


class BlurSection(_Strict):
    """How a ``blur`` rule obscures the regions it fired on (output images only).

    ``pixelate``: each region is shrunk so its longer side has ``blocks`` cells, then enlarged
    without smoothing; ``gaussian``: a Gaussian blur of ``radius`` pixels, scaled to 1024 px.
    ``padding`` grows every box by that fraction of its size on each side.
    """

    method: Literal["pixelate", "gaussian"] = "pixelate"
    blocks: Annotated[int, Field(ge=1, le=64)] = 8
    radius: Annotated[float, Field(gt=0.0, le=200.0)] = 40.0
    padding: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1


class NudeNetSection(_Strict):
    """NudeNet per label: ``labels`` are thresholds (a detection of a label below its threshold
    is ignored; labels not named keep the detector's 0.25); ``categories`` maps more labels to
    categories (e.g. ``FACE_FEMALE: [protected-person]`` for a policy that blurs faces).

    Built in: each exposed label scores ``nudity``; exposed genitalia or anus also ``sexual``.
    """

    labels: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=dict)
    categories: dict[str, tuple[Category, ...]] = Field(default_factory=dict)

    @field_validator("labels", "categories")
    @classmethod
    def _known_labels(cls, value: dict[str, object]) -> dict[str, object]:
        from classifiers.image.labels import NUDENET_LABELS

        unknown = sorted(set(value) - set(NUDENET_LABELS))
        if unknown:
            raise ValueError(f"unknown NudeNet labels {unknown}; expected some of {NUDENET_LABELS}")
        return value


class ImageOutputSection(StageSection):
    """The output stage for images: its classifiers and rules, plus how ``blur`` obscures."""

    blur: BlurSection = BlurSection()
    nudenet: NudeNetSection = NudeNetSection()
    # clip_concepts: phrases per category, embedded once per revision (absent: not scored)
    concepts: dict[Category, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("concepts")
    @classmethod
    def _no_empty_concepts(
        cls, value: dict[Category, tuple[str, ...]]
    ) -> dict[Category, tuple[str, ...]]:
        for category, phrases in value.items():
            for index, phrase in enumerate(phrases):
                if not phrase.strip():
                    raise ValueError(f"concepts[{category.value}][{index}] is empty")
        return value


class OutputSection(_Strict):
    image: ImageOutputSection = ImageOutputSection(classifiers=("nudenet",))
    audio: StageSection = StageSection()


class ProvenanceSection(_Strict):
    c2pa: bool = True
    watermark: bool = True  # invisible watermark, registered for soft-binding recovery
    self_check: bool = False  # verify every output (manifest + watermark) before it leaves
    training_mining: Literal["allowed", "notAllowed", "constrained"] | None = None
    timeout_s: Annotated[float, Field(gt=0.0, le=600.0)] = 15.0
    on_error: OnError = "block"


class GenerateSection(_Strict):
    timeout_s: Annotated[float, Field(gt=0.0, le=3600.0)] = 120.0
    # generator backends this policy lets requests reach (registered names); None: any
    generators: tuple[str, ...] | None = None


class AuditSection(_Strict):
    """What the audit record keeps of the prompt, and whether to serve while the audit is down.

    ``prompt``: ``full``; ``redacted`` (e-mails, URLs, card and phone numbers and
    ``redact_names`` masked); ``omitted`` (hash only). ``when_unavailable``: ``serve`` (records
    go to the local spool and are replayed) or ``refuse`` (HTTP 503 while the spool is in use).
    """

    prompt: Literal["full", "redacted", "omitted"] = "full"
    redact_names: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list
    )
    when_unavailable: Literal["serve", "refuse"] = "serve"


class ModerationSection(_Strict):
    """Score thresholds per category for moderation reports.

    ``/v1/moderations`` itself follows the prompt rules: ``flagged`` is true exactly when the
    policy would block the text at the prompt stage (docs/prompt-safety.md).
    """

    flag_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    thresholds: dict[Category, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=dict
    )

    def threshold_for(self, category: Category) -> float:
        return self.thresholds.get(category, self.flag_threshold)


class Policy(_Strict):
    """One policy document (the YAML file's top level)."""

    id: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str = ""
    # a tenant's policy may say ``extends: base``: it then holds only its overrides, merged
    # key by key over the active base policy (lists are replaced, not concatenated)
    extends: Literal["base"] | None = None
    prompt: PromptSection = PromptSection()
    harden: HardenSection = HardenSection()
    generate: GenerateSection = GenerateSection()
    output: OutputSection = OutputSection()
    provenance: ProvenanceSection = ProvenanceSection()
    audit: AuditSection = AuditSection()
    moderation: ModerationSection = ModerationSection()

    @model_validator(mode="after")
    def _blur_only_on_output_images(self) -> Policy:
        stages = {"prompt": self.prompt.rules, "output.audio": self.output.audio.rules}
        for where, rules in stages.items():
            for rule in rules:
                if rule.action is Action.BLUR:
                    raise ValueError(
                        f"{where} rule {rule.id!r}: action 'blur' applies only to "
                        "output.image rules (it obscures regions of a generated image)"
                    )
        return self

    def classifier_names(self) -> dict[str, set[str]]:
        """Backends this policy refers to, by kind (text / image / audio)."""
        return {
            "text": set(self.prompt.classifiers),
            "image": set(self.output.image.classifiers),
            "audio": set(self.output.audio.classifiers),
        }
