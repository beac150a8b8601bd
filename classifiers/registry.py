"""The classifier registries: backend name -> class, one mapping per kind of input.

Policies refer to backends by name; ``class_for`` resolves a name at start-up and fails with the
valid names listed, so a typo never reaches request time. Each entry names the module that defines
its class, which is imported on first lookup: importing the registry (to validate a policy, list
the names, start a gateway) never imports a backend's module, let alone torch, transformers,
onnxruntime or scipy. A looked-up class must carry the name it is registered under.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Mapping
from typing import Literal, TypeVar, overload

from classifiers.base import (
    AudioClassifier,
    ImageClassifier,
    TextClassifier,
    UnknownClassifierError,
)

__all__ = [
    "AUDIO_CLASSIFIERS",
    "IMAGE_CLASSIFIERS",
    "TEXT_CLASSIFIERS",
    "ClassifierKind",
    "ClassifierRegistry",
    "class_for",
]

ClassifierKind = Literal["text", "image", "audio"]
C = TypeVar("C")


class ClassifierRegistry(Mapping[str, type[C]]):
    """Name -> class, the classes imported on first lookup (``"module:ClassName"`` entries).

    Iterating, ``len`` and ``in`` read the names only; ``registry[name]`` imports that one module.
    """

    def __init__(self, kind: str, entries: Mapping[str, str]) -> None:
        self._kind = kind
        self._entries = dict(entries)
        self._classes: dict[str, type[C]] = {}
        self._lock = threading.Lock()
        assert len(self._entries) == len(entries), f"duplicate {kind} classifier name"

    def __getitem__(self, name: str) -> type[C]:
        found = self._classes.get(name)
        if found is not None:
            return found
        module_name, _, class_name = self._entries[name].partition(":")  # KeyError if unknown
        with self._lock:
            cls: type[C] = getattr(importlib.import_module(module_name), class_name)
            registered = getattr(cls, "name", None)
            assert registered == name, (
                f"{self._entries[name]} is registered as {self._kind} classifier {name!r} "
                f"but its name is {registered!r}"
            )
            self._classes[name] = cls
        return cls

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


TEXT_CLASSIFIERS: ClassifierRegistry[TextClassifier] = ClassifierRegistry(
    "text",
    {
        "term_list": "classifiers.text.term_list:TermListClassifier",
        "semantic_concepts": "classifiers.text.concepts:SemanticConceptClassifier",
        "profanity": "classifiers.text.profanity:ProfanityClassifier",
        "prompt_head": "classifiers.text.head:PromptHeadClassifier",
        "transformers": "classifiers.text.transformers_model:TransformersTextClassifier",
    },
)
IMAGE_CLASSIFIERS: ClassifierRegistry[ImageClassifier] = ClassifierRegistry(
    "image",
    {
        "nudenet": "classifiers.image.nudenet:NudeNetClassifier",
        "clip_concepts": "classifiers.image.clip_concepts:ClipConceptClassifier",
        "pdq_bank": "classifiers.image.pdq_bank:PdqBankClassifier",
    },
)
AUDIO_CLASSIFIERS: ClassifierRegistry[AudioClassifier] = ClassifierRegistry(
    "audio",
    {
        "transcript": "classifiers.audio.transcript:TranscriptClassifier",
        "protected_voice": "classifiers.audio.voices:ProtectedVoiceClassifier",
    },
)

_REGISTRIES: dict[
    str,
    ClassifierRegistry[TextClassifier]
    | ClassifierRegistry[ImageClassifier]
    | ClassifierRegistry[AudioClassifier],
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
