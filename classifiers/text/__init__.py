"""Prompt classifiers and the normalisation they share.

The names below are imported on first access (PEP 562): importing one prompt classifier module
does not import the others (the MiniLM encoder, the prompt head, transformers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genguard_lazy import lazy_exports

if TYPE_CHECKING:
    from classifiers.text.concepts import SemanticConceptClassifier
    from classifiers.text.encoder import MiniLMEncoder, SentenceEncoder, shared_minilm_encoder
    from classifiers.text.head import PromptHeadClassifier
    from classifiers.text.normalize import NormalizedPrompt, normalize_prompt
    from classifiers.text.profanity import ProfanityClassifier
    from classifiers.text.term_list import TermListClassifier
    from classifiers.text.transformers_model import TransformersTextClassifier

_WHERE = {
    "MiniLMEncoder": "classifiers.text.encoder",
    "NormalizedPrompt": "classifiers.text.normalize",
    "ProfanityClassifier": "classifiers.text.profanity",
    "PromptHeadClassifier": "classifiers.text.head",
    "SemanticConceptClassifier": "classifiers.text.concepts",
    "SentenceEncoder": "classifiers.text.encoder",
    "TermListClassifier": "classifiers.text.term_list",
    "TransformersTextClassifier": "classifiers.text.transformers_model",
    "normalize_prompt": "classifiers.text.normalize",
    "shared_minilm_encoder": "classifiers.text.encoder",
}

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


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
