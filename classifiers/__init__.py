"""GenGuard classifiers: score prompts, images and audio per category; never decide.

Backends implement ``TextClassifier``, ``ImageClassifier`` or ``AudioClassifier`` (see
``classifiers.base``) and are listed by name in ``classifiers.registry``.
"""

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
from classifiers.taxonomy import GENGUARD_CATEGORIES, OPENAI_CATEGORIES, Category, parse_category
from classifiers.text.concepts import SemanticConceptClassifier
from classifiers.text.encoder import MiniLMEncoder, SentenceEncoder
from classifiers.text.head import PromptHeadClassifier
from classifiers.text.normalize import NormalizedPrompt, normalize_prompt
from classifiers.text.profanity import ProfanityClassifier
from classifiers.text.term_list import TermListClassifier
from classifiers.text.transformers_model import TransformersTextClassifier

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
