"""alt-profanity-check (real model from its wheel), mapped to harassment only."""

from __future__ import annotations

from classifiers import Category, ProfanityClassifier


def test_insults_score_harassment_and_nothing_else() -> None:
    classifier = ProfanityClassifier()
    insult, benign, sexual = classifier.classify(
        ["you are a fucking idiot", "a watercolour of a lighthouse", "nude woman on a beach"]
    )
    assert insult.get(Category.HARASSMENT) >= 0.9
    assert benign.get(Category.HARASSMENT) < 0.3
    # it detects insults, not sexual content: never claims another category
    for scores in (insult, benign, sexual):
        assert set(scores.scores) == {Category.HARASSMENT}
    assert sexual.get(Category.HARASSMENT) < 0.5
    [evidence] = insult.evidence
    assert evidence.category is Category.HARASSMENT
    assert "offensive-language probability" in evidence.detail
    assert benign.evidence == ()
    assert classifier.classify([]) == []
