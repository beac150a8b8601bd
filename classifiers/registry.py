"""The classifier registries: backend name -> class, one dict per kind of input.

Policies refer to backends by name; ``class_for`` resolves a name at start-up and fails with the
valid names listed, so a typo never reaches request time.
"""

from __future__ import annotations

from typing import Literal, overload

from classifiers.audio.transcript import TranscriptClassifier
from classifiers.audio.voices import ProtectedVoiceClassifier
from classifiers.base import (
    AudioClassifier,
    ImageClassifier,
    TextClassifier,
    UnknownClassifierError,
)
from classifiers.image.clip_concepts import ClipConceptClassifier
from classifiers.image.nudenet import NudeNetClassifier
from classifiers.image.pdq_bank import PdqBankClassifier
from classifiers.text.concepts import SemanticConceptClassifier
from classifiers.text.head import PromptHeadClassifier
from classifiers.text.profanity import ProfanityClassifier
from classifiers.text.term_list import TermListClassifier
from classifiers.text.transformers_model import TransformersTextClassifier

__all__ = [
    "AUDIO_CLASSIFIERS",
    "IMAGE_CLASSIFIERS",
    "TEXT_CLASSIFIERS",
    "ClassifierKind",
    "class_for",
]

ClassifierKind = Literal["text", "image", "audio"]

_TEXT: tuple[type[TextClassifier], ...] = (
    TermListClassifier,
    SemanticConceptClassifier,
    ProfanityClassifier,
    PromptHeadClassifier,
    TransformersTextClassifier,
)
_IMAGE: tuple[type[ImageClassifier], ...] = (
    NudeNetClassifier,
    ClipConceptClassifier,
    PdqBankClassifier,
)
_AUDIO: tuple[type[AudioClassifier], ...] = (TranscriptClassifier, ProtectedVoiceClassifier)

TEXT_CLASSIFIERS: dict[str, type[TextClassifier]] = {c.name: c for c in _TEXT}
IMAGE_CLASSIFIERS: dict[str, type[ImageClassifier]] = {c.name: c for c in _IMAGE}
AUDIO_CLASSIFIERS: dict[str, type[AudioClassifier]] = {c.name: c for c in _AUDIO}
assert len(TEXT_CLASSIFIERS) == len(_TEXT), "duplicate text classifier name"
assert len(IMAGE_CLASSIFIERS) == len(_IMAGE), "duplicate image classifier name"
assert len(AUDIO_CLASSIFIERS) == len(_AUDIO), "duplicate audio classifier name"

_REGISTRIES: dict[
    str,
    dict[str, type[TextClassifier]]
    | dict[str, type[ImageClassifier]]
    | dict[str, type[AudioClassifier]],
] = {
    "text": TEXT_CLASSIFIERS,
    "image": IMAGE_CLASSIFIERS,
    "audio": AUDIO_CLASSIFIERS,
}


@overload
def class_for(kind: Literal["text"], name: str) -> type[TextClassifier]: ...
@overload
def class_for(kind: Literal["image"], name: str) -> type[ImageClassifier]: ...
@overload
def class_for(kind: Literal["audio"], name: str) -> type[AudioClassifier]: ...
def class_for(
    kind: ClassifierKind, name: str
) -> type[TextClassifier] | type[ImageClassifier] | type[AudioClassifier]:
    """The registered class of ``kind`` called ``name``; ``UnknownClassifierError`` otherwise."""
    registry = _REGISTRIES.get(kind)
    if registry is None:
        kinds = ", ".join(_REGISTRIES)
        raise UnknownClassifierError(f"unknown classifier kind {kind!r}; expected one of: {kinds}")
    try:
        return registry[name]
    except KeyError:
        valid = ", ".join(sorted(registry)) or "(none registered)"
        raise UnknownClassifierError(
            f"unknown {kind} classifier {name!r}; expected one of: {valid}"
        ) from None
