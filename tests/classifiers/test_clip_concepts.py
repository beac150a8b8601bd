"""CLIP concepts on a tiny random open_clip model: the mechanics, checked exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from classifiers import Category, ClassifierUnavailable
from classifiers.image.clip_concepts import ClipConceptClassifier, ClipHead, ClipModel
from gateway.backends import ClassifierBackends
from gateway.settings import ClassifierSettings, Settings
from policies.decision import decide
from policies.loader import parse_policy
from policies.schema import Action
from tests.classifiers.tiny_clip_model import build_tiny_clip, build_tiny_head

CONCEPTS = {
    Category.VIOLENCE: ("a man being stabbed", "blood on the floor"),
    Category.SEXUAL: ("a naked woman",),
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    return build_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def model(tiny: tuple[str, Path]) -> ClipModel:
    return ClipModel(*tiny)


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(7)
    return [
        Image.fromarray(rng.integers(0, 256, (40 + 8 * i, 56, 3), dtype=np.uint8)) for i in range(5)
    ] + [Image.new("L", (30, 30), 90)]


def _direct(model: ClipModel, images: list[Image.Image]) -> list[dict[Category, float]]:
    """The same scores computed straight from the open_clip model with torch."""
    net, preprocess = model._model, model._preprocess
    texts = [t for phrases in CONCEPTS.values() for t in phrases]
    owners = [c for c, phrases in CONCEPTS.items() for _ in phrases]
    with torch.inference_mode():
        image = net.encode_image(torch.stack([preprocess(i.convert("RGB")) for i in images]))
        text = net.encode_text(model._tokenizer(texts))
    image = image / image.norm(dim=-1, keepdim=True)
    text = text / text.norm(dim=-1, keepdim=True)
    cosine = image @ text.T
    out = []
    for row in cosine:
        best: dict[Category, float] = {}
        for value, owner in zip(row.tolist(), owners, strict=True):
            best[owner] = max(best.get(owner, -1.0), value)
        out.append({c: round(min(1.0, max(0.0, v)), 4) for c, v in best.items()})
    return out


def test_similarity_equals_a_direct_torch_computation(model: ClipModel) -> None:
    images = _images()
    results = ClipConceptClassifier(CONCEPTS, model=model).classify(images)
    expected = _direct(model, images)
    assert [dict(r.scores) for r in results] == expected
    assert {c for r in results for c in r.scores} == {Category.VIOLENCE, Category.SEXUAL}


def test_batching_gives_the_same_scores_as_one_by_one(model: ClipModel) -> None:
    classifier = ClipConceptClassifier(CONCEPTS, model=model)
    images = _images()
    assert classifier.classify(images) == [classifier.classify([i])[0] for i in images]


def test_categories_without_concepts_are_absent(model: ClipModel) -> None:
    classifier = ClipConceptClassifier(
        {Category.VIOLENCE: ("a man being stabbed",), Category.SEXUAL: ()}, model=model
    )
    assert classifier.categories == (Category.VIOLENCE,)
    for scores in classifier.classify(_images()):
        assert set(scores.scores) == {Category.VIOLENCE}
    assert ClipConceptClassifier({}, model=model).classify(_images()[:1])[0].scores == {}


def _settings(tiny: tuple[str, Path], head: Path | None = None) -> Settings:
    architecture, weights = tiny
    return Settings(
        classifiers=ClassifierSettings(
            clip_model=architecture, clip_weights=weights, clip_head=head
        )
    )


def _policy(concepts: str, threshold: float = 0.5, policy_id: str = "clip") -> str:
    return f"""
id: {policy_id}
output:
  image:
    classifiers: [clip_concepts]
    concepts: {concepts}
    rules:
      - {{id: violent, category: violence, threshold: {threshold}, action: block}}
"""


def test_concepts_are_embedded_once_per_policy_revision(tiny: tuple[str, Path]) -> None:
    backends = ClassifierBackends(_settings(tiny))
    first = parse_policy(_policy("{violence: [a man being stabbed]}"))
    backends.prepare(first)
    calls: list[int] = []
    model = backends.image("clip_concepts", first.policy.output.image)._model  # type: ignore[attr-defined]
    model._model.token_embedding.register_forward_hook(lambda *_: calls.append(1))
    for _ in range(3):
        backends.image("clip_concepts", first.policy.output.image).classify(_images()[:2])
    assert calls == []  # embedded when the revision was prepared, never per request
    second = parse_policy(_policy("{violence: [a man being stabbed, a gun]}", policy_id="b"))
    assert second.revision != first.revision
    backends.prepare(second)
    for _ in range(3):
        backends.image("clip_concepts", second.policy.output.image).classify(_images()[:2])
    assert calls == [1]
    # the shared model is loaded once for every revision
    assert backends.image("clip_concepts", second.policy.output.image)._model is model  # type: ignore[attr-defined]


def test_thresholds_and_rules_decide(tiny: tuple[str, Path], model: ClipModel) -> None:
    image = _images()[:1]
    score = ClipConceptClassifier(
        {Category.VIOLENCE: ("a man being stabbed",)}, model=model
    ).classify(image)[0]
    value = score.get(Category.VIOLENCE)
    assert value > 0.0  # the fixed seed gives this image a positive cosine
    backends = ClassifierBackends(_settings(tiny))
    for threshold, action in ((value, Action.BLOCK), (round(value + 0.0001, 4), Action.ALLOW)):
        bundle = parse_policy(_policy("{violence: [a man being stabbed]}", threshold))
        section = bundle.policy.output.image
        decision = decide(
            "output", section, backends.image("clip_concepts", section).classify(image)
        )
        assert decision.action is action
        if action is Action.BLOCK:
            (reason,) = decision.reasons
            assert (reason.rule, reason.classifier, reason.score) == (
                "violent",
                "clip_concepts",
                value,
            )


def test_the_mlp_head_scores_its_category(tmp_path: Path, model: ClipModel) -> None:
    path = build_tiny_head(tmp_path)
    head = ClipHead(path, dimensions=model.dimensions)
    classifier = ClipConceptClassifier({}, model=model, head=head)
    images = _images()
    results = classifier.classify(images)
    state = torch.load(path, weights_only=True)
    with torch.inference_mode():
        embedding = model._model.encode_image(
            torch.stack([model._preprocess(i.convert("RGB")) for i in images]), normalize=True
        ).double()
        hidden = torch.relu(embedding @ state["0.weight"].double().T + state["0.bias"].double())
        logits = hidden @ state["3.weight"].double().T + state["3.bias"].double()
    expected = [round(float(p), 4) for p in torch.sigmoid(logits[:, 0])]
    assert [r.get(Category.SEXUAL) for r in results] == expected
    assert all(set(r.scores) == {Category.SEXUAL} for r in results)


def test_a_head_of_the_wrong_width_is_refused(tmp_path: Path) -> None:
    path = build_tiny_head(tmp_path, dimensions=8)
    with pytest.raises(ClassifierUnavailable, match="takes 8 inputs, expected 32"):
        ClipHead(path, dimensions=32)


def test_without_weights_start_up_fails_clearly() -> None:
    backends = ClassifierBackends(Settings())
    bundle = parse_policy(_policy("{violence: [a man being stabbed]}"))
    with pytest.raises(ClassifierUnavailable, match="GENGUARD_CLASSIFIERS__CLIP_WEIGHTS"):
        backends.prepare(bundle)


def test_weights_that_do_not_fit_are_refused(tmp_path: Path, tiny: tuple[str, Path]) -> None:
    torch.save({"nothing": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ClassifierUnavailable, match="do not fit architecture"):
        ClipModel(tiny[0], tmp_path / "bad.pt")
    with pytest.raises(ClassifierUnavailable, match="not found"):
        ClipModel(tiny[0], tmp_path / "missing.pt")
    with pytest.raises(ClassifierUnavailable, match="unknown open_clip architecture"):
        ClipModel("ViT-Nope", tiny[1])
