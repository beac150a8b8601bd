"""The ``blur`` action's pixels, and NudeNet's per-label thresholds and extra labels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from classifiers import Category, ClassifierError, NudeNetClassifier
from classifiers.image.redaction import Redaction, padded, redact_regions
from policies.errors import PolicyValidationError
from policies.schema import Action
from policies.validate import validate_policy_text
from tests.conftest import SHARED_EVAL

ASTRONAUT = SHARED_EVAL / "media" / "images" / "skimage" / "astronaut.png"


def noise(size: tuple[int, int] = (200, 100)) -> Image.Image:
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def test_padding_grows_and_clips_boxes() -> None:
    assert padded((10, 10, 20, 40), 0.1, (200, 100)) == (8, 6, 24, 48)
    assert padded((190, 90, 20, 20), 0.5, (200, 100)) == (180, 80, 20, 20)
    assert padded((300, 10, 5, 5), 0.0, (200, 100)) is None


def test_pixelate_makes_cells_and_leaves_the_rest_alone() -> None:
    image = noise()
    out = redact_regions(image, [(20, 20, 64, 32)], Redaction("pixelate", blocks=4, padding=0.0))
    before, after = np.asarray(image), np.asarray(out)
    region = after[20:52, 20:84]
    # 4 cells across the longer side (64 px): each 16x16 cell is one colour
    assert len(np.unique(region.reshape(-1, 3), axis=0)) == 4 * 2
    assert (region[0:16, 0:16] == region[0, 0]).all()
    mask = np.ones(before.shape[:2], bool)
    mask[20:52, 20:84] = False
    assert (before[mask] == after[mask]).all()
    assert np.asarray(image).tobytes() == before.tobytes()  # the input is not modified


def test_gaussian_smooths_only_the_region() -> None:
    image = noise()
    out = redact_regions(image, [(100, 0, 100, 100)], Redaction("gaussian", radius=20))
    after = np.asarray(out).astype(float)
    assert after[:, 120:180].std() < np.asarray(image).astype(float)[:, 120:180].std() / 3
    assert (np.asarray(out)[:, :90] == np.asarray(image)[:, :90]).all()


def test_redaction_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="pixelate or gaussian"):
        Redaction("mosaic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="blocks"):
        Redaction(blocks=0)


@pytest.mark.skipif(not ASTRONAUT.is_file(), reason="skimage photos not present")
def test_nudenet_per_label_thresholds_and_extra_labels() -> None:
    model = NudeNetClassifier()
    photo = Image.open(ASTRONAUT)
    [plain] = model.classify([photo])
    assert plain.evidence == ()  # a face is not nudity
    faces = model.configured({}, {"FACE_FEMALE": [Category.PROTECTED_PERSON]})
    [scored] = faces.classify([photo])
    assert scored.get(Category.PROTECTED_PERSON) == pytest.approx(0.8258, abs=1e-3)
    [evidence] = scored.evidence
    assert evidence.box == (173, 82, 101, 97)
    assert scored.to_json()["evidence"] == [
        {
            "category": "protected-person",
            "detail": evidence.detail,
            "score": round(evidence.score, 6),
            "box": [173, 82, 101, 97],
        }
    ]
    strict = model.configured({"FACE_FEMALE": 0.9}, {"FACE_FEMALE": [Category.PROTECTED_PERSON]})
    [ignored] = strict.classify([photo])
    assert ignored.get(Category.PROTECTED_PERSON) == 0.0 and ignored.evidence == ()
    with pytest.raises(ClassifierError, match="unknown labels"):
        model.configured({"NOSE_EXPOSED": 0.5})


def test_blur_is_valid_on_output_images_only() -> None:
    ok = validate_policy_text(
        "id: x\noutput:\n  image:\n    classifiers: [nudenet]\n    blur: {method: gaussian}\n"
        "    rules:\n      - {id: r, category: nudity, threshold: 0.5, action: blur}\n"
    )
    assert ok.policy.output.image.rules[0].action is Action.BLUR
    assert ok.policy.output.image.blur.method == "gaussian"
    with pytest.raises(PolicyValidationError, match=r"applies only to output\.image rules"):
        validate_policy_text(
            "id: x\noutput:\n  audio:\n    rules:\n"
            "      - {id: r, category: nudity, threshold: 0.5, action: blur}\n"
        )
    with pytest.raises(PolicyValidationError, match="unknown NudeNet labels"):
        validate_policy_text("id: x\noutput:\n  image:\n    nudenet: {labels: {NOSE: 0.5}}\n")
