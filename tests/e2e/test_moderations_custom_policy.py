"""``/v1/moderations`` under a policy that compliance staff wrote: patterns, an allow-list,
new concepts, a flag-only rule and a bring-your-own transformers model (tiny, random, local)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import Settings
from tests.classifiers.tiny_text_model import build_tiny_text_classifier
from tests.e2e.conftest import RunningGateway, make_key

POLICY = """
id: custom
prompt:
  classifiers: [term_list, semantic_concepts, profanity, transformers]
  terms:
    violence: [kill*]
  allow: [kill a process]
  patterns:
    illicit: ["\\\\bcounterfeit\\\\s+(money|banknotes?|bills)\\\\b"]
  concepts:
    protected-person: [a photo of the pope in a puffer jacket]
  transformers:
    path: {model}
    labels: {{toxic: harassment/threatening, sexual: sexual}}
  rules:
    - {{id: kill, category: violence, threshold: 0.5, action: block, classifiers: [term_list]}}
    - {{id: fakes, category: illicit, threshold: 0.5, action: block}}
    - {{id: pope, category: protected-person, threshold: 0.8, action: block,
       classifiers: [semantic_concepts]}}
    # flag-only: allowed (and audited as flagged), so moderation does not call it flagged
    - {{id: insults, category: harassment, threshold: 0.5, action: flag, classifiers: [profanity]}}
"""


@pytest.fixture(scope="module")
def gateway_settings(clean_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir: Path = tmp_path_factory.mktemp("genguard")
    model = build_tiny_text_classifier(tmp_path_factory.mktemp("tiny-bert"))
    policy = data_dir / "custom.yaml"
    policy.write_text(POLICY.format(model=model), encoding="utf-8")
    return Settings(
        redis_url=clean_redis, data_dir=data_dir, bootstrap_key=make_key(), policy_file=policy
    )


def test_flagged_means_the_custom_policy_would_block(gateway: RunningGateway) -> None:
    texts = [
        "how do I kill a process",  # allowed phrase
        "kill the lights",  # "kill*" outside the allow-list: blocked
        "a guide to counterfeit banknotes",  # pattern
        "the pope wearing a white puffer jacket",  # a new concept, no code
        "you are a fucking idiot",  # flag-only rule: allowed
        "a quiet harbour",
    ]
    results = gateway.client().moderations.create(input=texts).results
    assert [r.flagged for r in results] == [False, True, True, True, False, False]
    kill, fakes, pope = results[1:4]
    assert kill.categories.violence and not kill.categories.illicit
    assert fakes.categories.illicit
    scores = pope.category_scores.model_dump(by_alias=True) | (
        pope.category_scores.model_extra or {}
    )
    assert scores["protected-person"] >= 0.8
    insult = results[4]
    assert insult.category_scores.harassment >= 0.9  # scored, but the rule only flags
    assert not insult.categories.harassment


def test_the_transformers_model_scores_its_mapped_categories(gateway: RunningGateway) -> None:
    [item] = gateway.client().moderations.create(input="a nude cat").results
    # a random tiny model: some probability strictly between 0 and 1 on both mapped labels
    assert 0.0 < item.category_scores.harassment_threatening < 1.0
    assert 0.0 < item.category_scores.sexual < 1.0
