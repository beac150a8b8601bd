"""Bring-your-own transformers model: a tiny random BERT built here, loaded from its directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifiers import Category, ClassifierUnavailable, TransformersTextClassifier
from tests.classifiers.tiny_text_model import build_tiny_text_classifier


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_text_classifier(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def multi_label_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_text_classifier(tmp_path_factory.mktemp("tiny-bert-ml"), multi_label=True)


def test_mapped_labels_become_category_scores(model_dir: Path) -> None:
    classifier = TransformersTextClassifier(
        model_dir, {"toxic": "harassment", "sexual": Category.SEXUAL}
    )
    assert classifier.categories == (Category.HARASSMENT, Category.SEXUAL)
    results = classifier.classify(["a nude cat", "the lighthouse at dawn"])
    assert len(results) == 2
    for scores in results:
        assert set(scores.scores) == {Category.HARASSMENT, Category.SEXUAL}
        assert scores.classifier == "transformers"
    # softmax over three labels: the two mapped probabilities leave room for "safe"
    first = results[0]
    assert 0.0 < first.get(Category.HARASSMENT) + first.get(Category.SEXUAL) < 1.0
    # the tokenizer really reads words: different texts, different probabilities
    assert results[0].scores != results[1].scores


def test_two_labels_on_one_category_take_the_higher(model_dir: Path) -> None:
    both = TransformersTextClassifier(model_dir, {"toxic": "harassment", "sexual": "harassment"})
    apart = TransformersTextClassifier(model_dir, {"toxic": "harassment", "sexual": "sexual"})
    [merged] = both.classify(["you idiot"])
    [separate] = apart.classify(["you idiot"])
    expected = max(separate.get(Category.HARASSMENT), separate.get(Category.SEXUAL))
    assert merged.get(Category.HARASSMENT) == pytest.approx(expected)


def test_multi_label_models_use_a_sigmoid_per_label(multi_label_dir: Path) -> None:
    classifier = TransformersTextClassifier(
        multi_label_dir, {"safe": "violence", "toxic": "harassment", "sexual": "sexual"}
    )
    [scores] = classifier.classify(["kill the dog"])
    # independent sigmoids need not sum to one (a softmax over all labels would)
    assert sum(scores.scores.values()) != pytest.approx(1.0, abs=1e-3)
    assert all(0.0 < value < 1.0 for value in scores.scores.values())


def test_a_label_the_model_lacks_is_refused_naming_its_labels(model_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"names \['insult'\].*labels are \['safe', 'sexual'"):
        TransformersTextClassifier(model_dir, {"insult": "harassment"})


def test_a_directory_without_a_model_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ClassifierUnavailable, match=r"no config\.json"):
        TransformersTextClassifier(tmp_path, {"toxic": "harassment"})


def test_an_unknown_category_is_refused(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown category 'rude'"):
        TransformersTextClassifier(model_dir, {"toxic": "rude"})
