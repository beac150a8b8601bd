"""NudeNet on real images: benign photos score low, every input mode works, bad input is an error.

There is no nude imagery in the repository or the evaluation data, so these tests cannot show
that nudity is *detected*; they show the detector runs correctly (it finds the faces in the
sample photos, where they are) and that its detections become scores and evidence as documented.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifiers import Category, ClassifierError, ClassifierUnavailable, NudeNetClassifier
from classifiers.image.labels import ALONE_THRESHOLD, CONTEXT_THRESHOLD
from classifiers.image.nudenet import EXPOSED_LABELS, MAX_BATCH
from generators.procedural import render_procedural_png
from tests.conftest import SHARED_EVAL

PHOTOS = SHARED_EVAL / "media" / "images" / "skimage"
needs_photos = pytest.mark.skipif(not PHOTOS.is_dir(), reason=f"{PHOTOS} not present")


@pytest.fixture(scope="module")
def nudenet() -> NudeNetClassifier:
    return NudeNetClassifier(threads=2)


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    loaded: dict[str, Image.Image] = {}
    for path in sorted(PHOTOS.glob("*.*g")):
        with Image.open(path) as image:
            image.load()
            loaded[path.name] = image
    return loaded


def synthetic_images() -> dict[str, Image.Image]:
    rng = np.random.default_rng(7)
    ramp = np.tile(np.linspace(0, 255, 512, dtype=np.uint8), (512, 1))
    checks = ((np.indices((512, 512)).sum(axis=0) // 32) % 2 * 255).astype(np.uint8)
    skin = np.clip(np.array([224, 172, 140]) + rng.normal(0, 20, (512, 512, 3)), 0, 255)
    return {
        "black": Image.new("RGB", (512, 512)),
        "white": Image.new("RGB", (512, 512), (255, 255, 255)),
        "skin tone": Image.new("RGB", (512, 512), (224, 172, 140)),
        "noisy skin tone": Image.fromarray(skin.astype(np.uint8)),
        "noise": Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)),
        "gradient": Image.fromarray(ramp).convert("RGB"),
        "checkerboard": Image.fromarray(checks).convert("RGB"),
        "tall strip": Image.new("RGB", (40, 900), (20, 120, 30)),
        "one pixel": Image.new("RGB", (1, 1), (200, 150, 120)),
    }


def lone_shape() -> Image.Image:
    """Abstract art on which NudeNet sees an "exposed breast" (0.83) and no other body part:
    image 506 of the calibration set (bench/nudenet_calibration.py)."""
    png = render_procedural_png("held-out calibration 506", 10_506, (512, 512), 0)
    return Image.open(io.BytesIO(png)).convert("RGB")


def test_synthetic_benign_images_score_low(nudenet: NudeNetClassifier) -> None:
    images = synthetic_images()
    results = nudenet.classify(list(images.values()))
    for name, scores in zip(images, results, strict=True):
        assert scores.get(Category.NUDITY) < 0.25, (name, scores.evidence)
        assert scores.get(Category.SEXUAL) < 0.25, (name, scores.evidence)


@needs_photos
def test_benign_photos_score_low(
    nudenet: NudeNetClassifier, photos: dict[str, Image.Image]
) -> None:
    assert photos, f"no photos in {PHOTOS}"
    results = nudenet.classify(list(photos.values()))
    nudity = {name: s.get(Category.NUDITY) for name, s in zip(photos, results, strict=True)}
    assert max(nudity.values()) < 0.25, nudity
    assert all(s.get(Category.SEXUAL) < 0.25 for s in results)


@needs_photos
def test_the_detector_finds_faces_where_they_are(
    nudenet: NudeNetClassifier, photos: dict[str, Image.Image]
) -> None:
    [astronaut, camera] = nudenet.detect([photos["astronaut.png"], photos["camera.png"]])
    face = next(d for d in astronaut if d.label == "FACE_FEMALE")
    x, y, width, height = face.box
    assert face.score > 0.5
    assert 150 < x < 200 and 60 < y < 110  # Eileen Collins' face, in 512 x 512 pixels
    assert 80 < width < 130 and 80 < height < 130
    assert camera[0].label == "FACE_MALE"  # grayscale ("L") input
    assert all(d.score >= nudenet.threshold for d in astronaut + camera)


def test_scores_and_evidence_follow_the_exposed_detections() -> None:
    # A near-zero threshold lets the real model report its faint exposed-label guesses on
    # benign images, which exercises the detection -> score/evidence mapping end to end (with
    # the context rule off: every exposed detection counts).
    sensitive = NudeNetClassifier(threshold=0.01).configured({}, needs_context=())
    images = list(synthetic_images().values())
    exposed_seen = 0
    for scores, detections in zip(
        sensitive.classify(images), sensitive.detect(images), strict=True
    ):
        exposed = [d for d in detections if d.label in EXPOSED_LABELS]
        exposed_seen += len(exposed)
        for category in (Category.NUDITY, Category.SEXUAL):
            expected = max(
                (d.score for d in exposed if category in EXPOSED_LABELS[d.label]), default=0.0
            )
            assert scores.get(category) == pytest.approx(expected)
        assert len(scores.evidence) == sum(len(EXPOSED_LABELS[d.label]) for d in exposed)
        for evidence in scores.evidence:
            label = evidence.detail.split(" ", 1)[0]
            assert evidence.category in EXPOSED_LABELS[label]
            assert " at x=" in evidence.detail
    assert exposed_seen > 0, "the test needs at least one exposed-label detection"


def test_a_batch_gives_one_result_per_image_in_order(nudenet: NudeNetClassifier) -> None:
    images = synthetic_images()
    noise, gradient = images["noise"], images["gradient"]
    batch = nudenet.classify([noise, gradient, noise])
    assert len(batch) == 3
    assert [s.classifier for s in batch] == ["nudenet"] * 3
    assert batch[0] == batch[2]
    assert batch[1] == nudenet.classify([gradient])[0]
    assert set(batch[0].scores) == {Category.NUDITY, Category.SEXUAL}
    assert nudenet.classify([]) == []


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "PA", "1", "CMYK", "I", "F", "I;16"])
def test_every_common_image_mode_is_accepted(nudenet: NudeNetClassifier, mode: str) -> None:
    rgb = synthetic_images()["gradient"]
    image = rgb.convert("L").convert(mode) if mode in {"I", "F", "I;16"} else rgb.convert(mode)
    [scores] = nudenet.classify([image])
    assert 0.0 <= scores.get(Category.NUDITY) <= 1.0


@needs_photos
def test_transparent_images_are_scored_over_a_background(
    nudenet: NudeNetClassifier, photos: dict[str, Image.Image]
) -> None:
    astronaut = photos["astronaut.png"].convert("RGBA")
    alpha = np.full((512, 512), 255, dtype=np.uint8)
    alpha[:, :64] = 0  # a transparent strip on the left
    astronaut.putalpha(Image.fromarray(alpha))
    [detections] = nudenet.detect([astronaut])
    assert any(d.label == "FACE_FEMALE" for d in detections)
    palette = photos["chelsea.png"].convert("P")
    palette.info["transparency"] = 0
    [scores] = nudenet.classify([palette])
    assert scores.get(Category.NUDITY) < 0.25


def test_an_empty_image_is_a_classifier_error(nudenet: NudeNetClassifier) -> None:
    with pytest.raises(ClassifierError, match=r"image 1: empty image \(0x0\)"):
        nudenet.classify([Image.new("RGB", (8, 8)), Image.new("RGB", (0, 0))])


def test_a_truncated_file_is_a_classifier_error(nudenet: NudeNetClassifier) -> None:
    buffer = io.BytesIO()
    synthetic_images()["noise"].save(buffer, format="PNG")
    truncated = Image.open(io.BytesIO(buffer.getvalue()[:5000]))  # decoded lazily
    with pytest.raises(ClassifierError, match=r"image 0: cannot decode"):
        nudenet.classify([truncated])


def test_something_that_is_not_an_image_is_a_classifier_error(
    nudenet: NudeNetClassifier,
) -> None:
    with pytest.raises(ClassifierError, match=r"image 0: expected a PIL image, got ndarray"):
        nudenet.classify([np.zeros((8, 8, 3), dtype=np.uint8)])  # type: ignore[list-item]


def test_concurrent_calls_from_a_pool_agree_with_sequential_ones(
    nudenet: NudeNetClassifier,
) -> None:
    images = list(synthetic_images().values())[:6]
    sequential = [nudenet.classify([image])[0] for image in images]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda image: nudenet.classify([image])[0], images * 3))
    assert concurrent == sequential * 3


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="threads must be at least 1, got 0"):
        NudeNetClassifier(threads=0)
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\], got 0.0"):
        NudeNetClassifier(threshold=0.0)


def test_a_missing_model_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ClassifierUnavailable, match=r"model file .* not found"):
        NudeNetClassifier(model_path=tmp_path / "missing.onnx")


def test_a_corrupt_model_is_unavailable(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx model")
    with pytest.raises(ClassifierUnavailable, match="cannot load model"):
        NudeNetClassifier(model_path=corrupt)


def test_an_exposed_detection_with_no_body_around_it_does_not_count(
    nudenet: NudeNetClassifier,
) -> None:
    image = lone_shape()
    [detections] = nudenet.detect([image])
    assert {d.label for d in detections} == {"FEMALE_BREAST_EXPOSED"}
    best = max(d.score for d in detections)
    assert 0.6 <= best < ALONE_THRESHOLD  # the default policy would block it without the rule
    [scores] = nudenet.classify([image])
    assert scores.get(Category.NUDITY) == 0.0 and scores.evidence == ()
    # the rule off, or a lower bar for a detection on its own: it counts again
    for view in (
        nudenet.configured({}, needs_context=()),
        nudenet.configured({}, alone_threshold=best),
        nudenet.configured({}, needs_context=["BUTTOCKS_EXPOSED"]),
    ):
        [counted] = view.classify([image])
        assert counted.get(Category.NUDITY) == pytest.approx(best)
        assert counted.evidence[0].detail.startswith("FEMALE_BREAST_EXPOSED at x=0 y=0")


@needs_photos
def test_an_exposed_detection_beside_a_confident_face_counts(
    nudenet: NudeNetClassifier, photos: dict[str, Image.Image]
) -> None:
    image = lone_shape()
    face = photos["astronaut.png"].convert("RGB").crop((140, 40, 320, 220))
    image.paste(face, (332, 332))  # Eileen Collins' face in the bottom-right corner
    [detections] = nudenet.detect([image])
    [found] = [d for d in detections if d.label == "FACE_FEMALE"]
    assert found.score >= CONTEXT_THRESHOLD
    best = max(d.score for d in detections if d.label == "FEMALE_BREAST_EXPOSED")
    [scores] = nudenet.classify([image])
    assert scores.get(Category.NUDITY) == pytest.approx(best)
    # a face the detector is less sure of than the context threshold does not corroborate
    [unsure] = nudenet.configured({}, context_threshold=found.score + 0.01).classify([image])
    assert unsure.get(Category.NUDITY) == 0.0


def test_more_images_than_one_network_call_match_one_by_one(nudenet: NudeNetClassifier) -> None:
    transparent = lone_shape().convert("RGBA")
    transparent.putalpha(128)  # two variants (over white, over black) in the batch
    images = [*synthetic_images().values(), lone_shape(), transparent]
    assert len(images) + 1 > MAX_BATCH  # two network calls
    every = nudenet.configured({}, needs_context=())  # so that the lone shapes give evidence
    one_by_one = [every.classify([image])[0] for image in images]
    together = every.classify(images)
    assert sum(len(s.evidence) for s in together) >= 2
    for batched, single in zip(together, one_by_one, strict=True):
        assert batched.scores == pytest.approx(single.scores, abs=1e-5)
        assert [e.box for e in batched.evidence] == [e.box for e in single.evidence]
    boxes = [[(d.label, d.box) for d in found] for found in nudenet.detect(images)]
    assert boxes == [[(d.label, d.box) for d in nudenet.detect([i])[0]] for i in images]


def test_invalid_context_settings_are_rejected(nudenet: NudeNetClassifier) -> None:
    with pytest.raises(ClassifierError, match=r"unknown labels \['ELBOW_EXPOSED'\]"):
        nudenet.configured({}, needs_context=["ELBOW_EXPOSED"])
    with pytest.raises(ClassifierError, match=r"alone_threshold must be in \[0, 1\], got 1.5"):
        nudenet.configured({}, alone_threshold=1.5)
