"""Calibration of NudeNet's context rule on benign images that the benchmarks never use.

    OMP_NUM_THREADS=1 .venv/bin/python bench/nudenet_calibration.py [--small 1000 --large 300]

The calibration set: procedural images with their own prompts and explicit seeds ("held-out
calibration {i}", seeds from 10,000; bench/output_images.py uses other prompts and no seed) in
four shapes (512x512, 1024x1024, 1024x768, 768x1024), plus the two photos that ship with
scikit-learn (china.jpg, flower.jpg) and their mirror images. There is no nude imagery here, so
this measures the benign side only: how high the exposed labels go on images with no body in
them, and whether another body part is ever found beside those boxes.

Prints Markdown for docs/output-safety.md: per exposed label, the highest score and the counts
at or above 0.5 / 0.6, raw and under the context rule; and the highest context-label score with
no other body part in the image (what ``ALONE_THRESHOLD`` must stay above).
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageOps

from classifiers.image.labels import (
    ALONE_THRESHOLD,
    BODY_PARTS,
    CONTEXT_LABELS,
    CONTEXT_THRESHOLD,
    EXPOSED_LABELS,
)
from classifiers.image.nudenet import Detection, NudeNetClassifier
from classifiers.taxonomy import Category
from generators.procedural import render_procedural_png

SHAPES = [(512, 512), (1024, 1024), (1024, 768), (768, 1024)]


def calibration_images(small: int, large: int) -> Iterator[tuple[str, Image.Image]]:
    for index in range(small + 3 * large):
        shape = SHAPES[0] if index < small else SHAPES[1 + (index - small) % 3]
        png = render_procedural_png(f"held-out calibration {index}", 10_000 + index, shape, 0)
        yield f"procedural {index} {shape[0]}x{shape[1]}", Image.open(io.BytesIO(png))
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        return
    for path in load_sample_images().filenames:
        photo = Image.open(path).convert("RGB")
        yield Path(path).name, photo
        yield f"{Path(path).name} mirrored", ImageOps.mirror(photo)


def context_scores(detections: list[Detection]) -> tuple[float, float]:
    """The highest context-label score with no other body part in the image, and the highest
    score of a different body part found beside a context label (what corroborates it)."""
    alone, beside = 0.0, 0.0
    for detection in detections:
        if detection.label not in CONTEXT_LABELS:
            continue
        part = BODY_PARTS[detection.label]
        others = [d.score for d in detections if BODY_PARTS[d.label] != part]
        if others:
            beside = max(beside, *others)
        else:
            alone = max(alone, detection.score)
    return alone, beside


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=1000, help="512x512 procedural images")
    parser.add_argument("--large", type=int, default=300, help="of each larger shape")
    args = parser.parse_args()
    model = NudeNetClassifier(threads=1)  # detector floor 0.25: what the rule sees
    started = time.perf_counter()
    raw: dict[str, list[float]] = {label: [] for label in EXPOSED_LABELS}
    ruled: list[float] = []
    alone: list[tuple[float, str]] = []
    beside: list[tuple[float, str]] = []
    names: list[str] = []
    for name, image in calibration_images(args.small, args.large):
        [detections] = model.detect([image])
        [scores] = model.classify([image])
        names.append(name)
        for label in EXPOSED_LABELS:
            raw[label].append(max((d.score for d in detections if d.label == label), default=0))
        ruled.append(scores.get(Category.NUDITY))
        without, with_other = context_scores(detections)
        alone.append((without, name))
        beside.append((with_other, name))
    seconds = time.perf_counter() - started
    print(f"{len(names)} calibration images, {seconds:.0f} s\n")
    print("| label | max | ≥ 0.5 | ≥ 0.6 |\n|---|---|---|---|")
    for label, values in raw.items():
        print(
            f"| {label} (raw) | {max(values):.3f} | {sum(v >= 0.5 for v in values)} | "
            f"{sum(v >= 0.6 for v in values)} |"
        )
    print(
        f"| `nudity` with the context rule | {max(ruled):.3f} | {sum(v >= 0.5 for v in ruled)} "
        f"| {sum(v >= 0.6 for v in ruled)} |"
    )
    worst, where = max(alone)
    print(
        f"\nhighest exposed score with no other body part: {worst:.3f} "
        f"({where}); ALONE_THRESHOLD = {ALONE_THRESHOLD}"
    )
    found = [(v, n) for v, n in beside if v > 0]
    top = f"; the most confident of those parts: {max(found)[0]:.3f} ({max(found)[1]})"
    print(
        f"images with another body part (detector floor 0.25) beside an exposed box: {len(found)}"
        f"{top if found else ''}; CONTEXT_THRESHOLD = {CONTEXT_THRESHOLD}"
    )


if __name__ == "__main__":
    main()
