"""The registries: names resolve to classes; an unknown name says which names exist."""

from __future__ import annotations

from typing import Any

import pytest

from classifiers import (
    AUDIO_CLASSIFIERS,
    IMAGE_CLASSIFIERS,
    TEXT_CLASSIFIERS,
    ClassifierError,
    NudeNetClassifier,
    SemanticConceptClassifier,
    TermListClassifier,
    UnknownClassifierError,
    class_for,
)
from classifiers.image.clip_concepts import ClipConceptClassifier
from classifiers.image.pdq_bank import PdqBankClassifier


def test_registered_names_resolve_to_their_classes() -> None:
    assert class_for("text", "term_list") is TermListClassifier
    assert class_for("image", "nudenet") is NudeNetClassifier
    assert class_for("text", "semantic_concepts") is SemanticConceptClassifier
    assert list(TEXT_CLASSIFIERS) == [
        "term_list",
        "semantic_concepts",
        "profanity",
        "prompt_head",
        "transformers",
    ]
    assert IMAGE_CLASSIFIERS["nudenet"] is NudeNetClassifier
    assert IMAGE_CLASSIFIERS["pdq_bank"] is PdqBankClassifier
    assert IMAGE_CLASSIFIERS["clip_concepts"] is ClipConceptClassifier
    assert list(AUDIO_CLASSIFIERS) == ["transcript", "protected_voice"]


def test_an_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownClassifierError) as caught:
        class_for("image", "nudenett")
    valid = ", ".join(sorted(IMAGE_CLASSIFIERS))
    assert str(caught.value) == f"unknown image classifier 'nudenett'; expected one of: {valid}"
    assert isinstance(caught.value, KeyError)
    assert isinstance(caught.value, ClassifierError)


def test_an_empty_registry_says_so() -> None:
    with pytest.raises(
        UnknownClassifierError, match=r"expected one of: protected_voice, transcript$"
    ):
        class_for("audio", "whisper")


def test_an_unknown_kind_lists_the_kinds() -> None:
    kind: Any = "video"
    with pytest.raises(
        UnknownClassifierError, match=r"^unknown classifier kind 'video'; expected one of: text"
    ):
        class_for(kind, "nudenet")
