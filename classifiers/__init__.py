"""GenGuard classifiers: score prompts, images and audio per category; never decide.

Backends implement ``TextClassifier``, ``ImageClassifier`` or ``AudioClassifier`` (see
``classifiers.base``) and are listed by name in ``classifiers.registry``.

The names below are imported on first access (PEP 562), so ``import classifiers.base`` or
``from classifiers import Scores`` does not import every backend and the libraries they need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genguard_lazy import lazy_exports

if TYPE_CHECKING:
    from classifiers.base import (
        AudioClassifier,
        AudioClip,
        ClassifierError,
        ClassifierUnavailable,
        Evidence,
        ImageClassifier,
        Scores,
        TextClassifier,
        UnknownClassifierError,
    )
    from classifiers.image.nudenet import Detection, NudeNetClassifier
    from classifiers.registry import (
        AUDIO_CLASSIFIERS,
        IMAGE_CLASSIFIERS,
        TEXT_CLASSIFIERS,
        ClassifierKind,
        class_for,
    )
    from classifiers.taxonomy import (
        GENGUARD_CATEGORIES,
        OPENAI_CATEGORIES,
        Category,
        parse_category,
    )
    from classifiers.text.concepts import SemanticConceptClassifier
    from classifiers.text.encoder import MiniLMEncoder, SentenceEncoder
    from classifiers.text.head import PromptHeadClassifier
    from classifiers.text.normalize import NormalizedPrompt, normalize_prompt
    from classifiers.text.profanity import ProfanityClassifier
    from classifiers.text.term_list import TermListClassifier
    from classifiers.text.transformers_model import TransformersTextClassifier

_WHERE = {
    "AUDIO_CLASSIFIERS": "classifiers.registry",
    "GENGUARD_CATEGORIES": "classifiers.taxonomy",
    "IMAGE_CLASSIFIERS": "classifiers.registry",
    "OPENAI_CATEGORIES": "classifiers.taxonomy",
    "TEXT_CLASSIFIERS": "classifiers.registry",
    "AudioClassifier": "classifiers.base",
    "AudioClip": "classifiers.base",
    "Category": "classifiers.taxonomy",
    "ClassifierError": "classifiers.base",
    "ClassifierKind": "classifiers.registry",
    "ClassifierUnavailable": "classifiers.base",
    "Detection": "classifiers.image.nudenet",
    "Evidence": "classifiers.base",
    "ImageClassifier": "classifiers.base",
    "MiniLMEncoder": "classifiers.text.encoder",
    "NormalizedPrompt": "classifiers.text.normalize",
    "NudeNetClassifier": "classifiers.image.nudenet",
    "ProfanityClassifier": "classifiers.text.profanity",
    "PromptHeadClassifier": "classifiers.text.head",
    "Scores": "classifiers.base",
    "SemanticConceptClassifier": "classifiers.text.concepts",
    "SentenceEncoder": "classifiers.text.encoder",
    "TermListClassifier": "classifiers.text.term_list",
    "TextClassifier": "classifiers.base",
    "TransformersTextClassifier": "classifiers.text.transformers_model",
    "UnknownClassifierError": "classifiers.base",
    "class_for": "classifiers.registry",
    "normalize_prompt": "classifiers.text.normalize",
    "parse_category": "classifiers.taxonomy",
}

__all__ = [
    "AUDIO_CLASSIFIERS",
    "GENGUARD_CATEGORIES",
    "IMAGE_CLASSIFIERS",
    "OPENAI_CATEGORIES",
    "TEXT_CLASSIFIERS",
    "AudioClassifier",
    "AudioClip",
    "Category",
    "ClassifierError",
    "ClassifierKind",
    "ClassifierUnavailable",
    "Detection",
    "Evidence",
    "ImageClassifier",
    "MiniLMEncoder",
    "NormalizedPrompt",
    "NudeNetClassifier",
    "ProfanityClassifier",
    "PromptHeadClassifier",
    "Scores",
    "SemanticConceptClassifier",
    "SentenceEncoder",
    "TermListClassifier",
    "TextClassifier",
    "TransformersTextClassifier",
    "UnknownClassifierError",
    "class_for",
    "normalize_prompt",
    "parse_category",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
