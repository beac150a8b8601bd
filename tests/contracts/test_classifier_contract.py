"""Every registered classifier goes through the same contract.

A backend added to ``classifiers.registry`` must add a row to ``CONSTRUCTION`` below (how to
build it offline) or this module fails, so no backend escapes the contract.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from classifiers import (
    AUDIO_CLASSIFIERS,
    IMAGE_CLASSIFIERS,
    TEXT_CLASSIFIERS,
    AudioClip,
    Category,
    Scores,
)
from classifiers.audio.voices import VoiceIndex, VoiceSnapshot
from classifiers.image.clip_concepts import ClipHead, ClipModel
from classifiers.image.pdq_bank import BankedHash, PdqIndex, PdqSnapshot, pdq_hash
from classifiers.text.term_list import TermListClassifier
from tests.classifiers.tiny_clip_model import build_tiny_clip, build_tiny_head
from tests.classifiers.tiny_text_model import build_tiny_text_classifier

REGISTRIES: dict[str, dict[str, Any]] = {
    "text": dict(TEXT_CLASSIFIERS),
    "image": dict(IMAGE_CLASSIFIERS),
    "audio": dict(AUDIO_CLASSIFIERS),
}
ENTRIES = [(kind, name) for kind, registry in REGISTRIES.items() for name in sorted(registry)]

# Keyword arguments that build each backend offline (a callable, given an empty directory, when
# the backend needs files first).
CONSTRUCTION: dict[tuple[str, str], dict[str, Any] | Callable[[Path], dict[str, Any]]] = {
    ("text", "term_list"): {
        "terms": {Category.SEXUAL: ["nude", "porn*"], "violence": ["gore"]},
        "patterns": {Category.SELF_HARM_INTENT: [r"\bwant to die\b"]},
        "allow": ["nude colour*"],
    },
    ("text", "semantic_concepts"): {
        "concepts": {Category.SEXUAL: ["a naked woman"], "violence": ["a man being stabbed"]}
    },
    ("text", "profanity"): {},
    ("text", "prompt_head"): {},
    ("text", "transformers"): lambda directory: {
        "path": build_tiny_text_classifier(directory),
        "labels": {"toxic": "harassment", "sexual": "sexual"},
    },
    ("image", "nudenet"): {"threads": 1},
    ("image", "clip_concepts"): lambda directory: {
        "concepts": {Category.VIOLENCE: ["a man being stabbed"], "sexual": ["a naked woman"]},
        "model": ClipModel(*build_tiny_clip(directory)),
        "head": ClipHead(build_tiny_head(directory), dimensions=32),
    },
    # banks the noise image of ``_images``, so a match (and its evidence) is exercised
    ("image", "pdq_bank"): lambda _: {
        "index": PdqIndex(
            PdqSnapshot.of(
                1, [BankedHash("contract", pdq_hash(_images()[1]).hex, Category.HASH_MATCH, 31)]
            )
        )
    },
    ("audio", "transcript"): {
        "text_classifiers": [TermListClassifier({Category.VIOLENCE: ["gore"]})],
    },
    ("audio", "protected_voice"): {
        "index": VoiceIndex(VoiceSnapshot.of(1, {"unit": np.eye(256, dtype=np.float32)[0]})),
    },
}


def _texts() -> list[Any]:
    return ["a red bicycle", "nude", "p0rn and gore", "", "\u200b\u202e" + "x" * 500]


def _images() -> list[Any]:
    rng = np.random.default_rng(3)
    return [
        Image.new("RGB", (64, 48), (200, 30, 30)),
        Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)),
        Image.new("L", (32, 32), 128),
        Image.new("RGBA", (50, 80), (0, 0, 255, 128)),
    ]


def _clips() -> list[Any]:
    tone = np.sin(np.linspace(0, 440 * 2 * np.pi, 16_000)).astype(np.float32) * 0.5
    return [AudioClip(tone, 16_000), AudioClip(np.zeros(8_000, np.float32), 16_000)]


INPUTS: dict[str, Callable[[], list[Any]]] = {"text": _texts, "image": _images, "audio": _clips}


def test_every_registry_entry_has_a_construction_row() -> None:
    assert set(CONSTRUCTION) == set(ENTRIES)


@pytest.fixture(scope="module", params=ENTRIES, ids=[f"{k}:{n}" for k, n in ENTRIES])
def entry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str, Any]:
    kind, name = request.param
    construction = CONSTRUCTION[(kind, name)]
    kwargs = construction(tmp_path_factory.mktemp(name)) if callable(construction) else construction
    return kind, name, REGISTRIES[kind][name](**kwargs)


def _check(name: str, inputs: Sequence[Any], results: list[Scores]) -> None:
    assert isinstance(results, list)
    assert len(results) == len(inputs)
    for scores in results:
        assert isinstance(scores, Scores)
        assert scores.classifier == name
        for category, value in scores.scores.items():
            assert isinstance(category, Category)
            assert 0.0 <= value <= 1.0
        for evidence in scores.evidence:
            assert isinstance(evidence.category, Category)
            assert 0.0 <= evidence.score <= 1.0
            assert evidence.detail


def test_name_matches_the_registry_key(entry: tuple[str, str, Any]) -> None:
    kind, name, instance = entry
    assert type(instance).name == name
    assert REGISTRIES[kind][name] is type(instance)


def test_one_scores_per_input_in_order(entry: tuple[str, str, Any]) -> None:
    kind, name, instance = entry
    inputs = INPUTS[kind]()
    results = instance.classify(inputs)
    _check(name, inputs, results)
    # Order: classifying one input at a time gives the same results as the batch.
    assert [instance.classify([item])[0] for item in inputs] == results
    assert instance.classify(list(reversed(inputs))) == list(reversed(results))


def test_empty_input_gives_empty_output(entry: tuple[str, str, Any]) -> None:
    _, _, instance = entry
    assert instance.classify([]) == []


def test_results_serialise_to_json(entry: tuple[str, str, Any]) -> None:
    kind, _, instance = entry
    for scores in instance.classify(INPUTS[kind]()[:2]):
        payload = scores.to_json()
        assert set(payload) == {"classifier", "scores", "evidence"}
