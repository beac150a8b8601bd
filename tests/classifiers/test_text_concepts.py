"""Semantic concepts with the real MiniLM model (loaded once per test session)."""

from __future__ import annotations

import numpy as np
import pytest

from classifiers import Category, ClassifierUnavailable, SemanticConceptClassifier
from classifiers.text.encoder import MINILM_SHA256, MiniLMEncoder, shared_minilm_encoder

CONCEPTS = {
    Category.VIOLENCE_GRAPHIC: ["a person being stabbed, blood everywhere", "a decapitated head"],
    Category.SEXUAL: ["a naked woman", "people having sex"],
}


@pytest.fixture(scope="module")
def classifier() -> SemanticConceptClassifier:
    return SemanticConceptClassifier(CONCEPTS, encoder=shared_minilm_encoder())


def test_embeddings_are_normalised_batched_and_cached() -> None:
    encoder = shared_minilm_encoder()
    vectors = encoder.encode(["a red bicycle", "a red bicycle", "a quiet lake"])
    assert vectors.shape == (3, encoder.dimensions)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors[0], vectors[1])
    again = encoder.encode(["a quiet lake"])
    assert np.array_equal(again[0], vectors[2])


def test_a_changed_weights_digest_is_refused() -> None:
    wrong = "0" * 64
    assert wrong != MINILM_SHA256
    with pytest.raises(ClassifierUnavailable, match="refusing to load an unverified model"):
        MiniLMEncoder(expected_sha256=wrong)


def test_a_paraphrase_scores_high_without_sharing_a_word(
    classifier: SemanticConceptClassifier,
) -> None:
    harmful, benign = classifier.classify(
        ["a man knifed to death, his blood pooling on the floor", "a lighthouse at dawn"]
    )
    assert harmful.get(Category.VIOLENCE_GRAPHIC) >= 0.5
    assert benign.get(Category.VIOLENCE_GRAPHIC) < 0.3
    assert harmful.get(Category.VIOLENCE_GRAPHIC) > harmful.get(Category.SEXUAL)
    [evidence] = [e for e in harmful.evidence if e.category is Category.VIOLENCE_GRAPHIC]
    assert "a person being stabbed" in evidence.detail
    assert "original text" in evidence.detail


def test_obfuscated_text_is_also_embedded_de_obfuscated(
    classifier: SemanticConceptClassifier,
) -> None:
    clean, hidden = classifier.classify(["a n\u0430ked w\u043em\u0430n", "a n.a.k.e.d woman"])
    for scores in (clean, hidden):
        assert scores.get(Category.SEXUAL) >= 0.8
        assert any("de-obfuscated text" in e.detail for e in scores.evidence)


def test_every_configured_category_is_scored(classifier: SemanticConceptClassifier) -> None:
    [scores] = classifier.classify(["an empty room"])
    assert set(scores.scores) == set(CONCEPTS)
    assert classifier.categories == tuple(CONCEPTS)


def test_new_exemplars_change_scores_without_code() -> None:
    prompt = "a dragon made of cheese"
    before = SemanticConceptClassifier(CONCEPTS, encoder=shared_minilm_encoder())
    after = SemanticConceptClassifier(
        {**CONCEPTS, Category.PROTECTED_PERSON: ["a cheese dragon"]},
        encoder=shared_minilm_encoder(),
    )
    assert before.classify([prompt])[0].get(Category.PROTECTED_PERSON) == 0.0
    assert after.classify([prompt])[0].get(Category.PROTECTED_PERSON) >= 0.8


@pytest.mark.parametrize(
    ("concepts", "message"),
    [
        ({Category.SEXUAL: "a naked woman"}, "must be a list of sentences, got str"),
        ({Category.SEXUAL: ["ok", "  "]}, r"concept sexual\[1\] must be a sentence"),
        ({"gory": ["x"]}, "unknown category 'gory'"),
    ],
)
def test_construction_errors_are_precise(concepts: dict[object, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SemanticConceptClassifier(concepts, encoder=shared_minilm_encoder())  # type: ignore[arg-type]
