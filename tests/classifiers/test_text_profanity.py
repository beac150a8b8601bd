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


def test_the_probability_is_the_wheels_own_predict_prob() -> None:
    """The classifier computes the calibrated ensemble as one sparse product (much faster than
    scikit-learn's per-call validation); it must give predict_prob's numbers."""
    from pathlib import Path

    import numpy as np
    import profanity_check

    root = Path(__file__).resolve().parents[2] / "bench" / "data"
    texts = (root / "prompt_benign_text.txt").read_text(encoding="utf-8").splitlines()
    for line in (root / "prompt_minimal_pairs.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        texts.extend(line.split("\t")[1:])
    texts += ["you stupid idiot", "shut up, you worthless piece of garbage", "", "ok"]
    classifier = ProfanityClassifier()
    assert classifier._folds is not None  # the fast path, not the fallback
    expected = np.asarray(profanity_check.predict_prob(texts), dtype=np.float64)
    np.testing.assert_allclose(classifier.probabilities(texts), expected, rtol=0, atol=1e-12)
    assert expected.max() > 0.9 and expected.min() < 0.1  # both ends of the scale covered
