"""Prompt classifiers and the normalisation they share."""

from classifiers.text.concepts import SemanticConceptClassifier
from classifiers.text.encoder import MiniLMEncoder, SentenceEncoder, shared_minilm_encoder
from classifiers.text.head import PromptHeadClassifier
from classifiers.text.normalize import NormalizedPrompt, normalize_prompt
from classifiers.text.profanity import ProfanityClassifier
from classifiers.text.term_list import TermListClassifier
from classifiers.text.transformers_model import TransformersTextClassifier

__all__ = [
    "MiniLMEncoder",
    "NormalizedPrompt",
    "ProfanityClassifier",
    "PromptHeadClassifier",
    "SemanticConceptClassifier",
    "SentenceEncoder",
    "TermListClassifier",
    "TransformersTextClassifier",
    "normalize_prompt",
    "shared_minilm_encoder",
]
