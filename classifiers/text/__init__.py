"""Prompt classifiers and the normalisation they share."""

from classifiers.text.normalize import NormalizedPrompt, normalize_prompt
from classifiers.text.term_list import TermListClassifier

__all__ = ["NormalizedPrompt", "TermListClassifier", "normalize_prompt"]
