"""Image output stage figures: latency per 1024x1024 image and false positives on benign images.

    .venv/bin/python bench/output_images.py [--runs 30]

Latency is what the pipeline does per generated image in the default policy's output stage:
decode the PNG, run NudeNet (320n, one thread), apply the rules; plus the ``blur`` action on one
region (pixelate) and re-encode, for a policy that blurs; plus NudeNet's resize to its input
(direct antialiased bilinear vs reduce-first, the one it uses). False positives: the default
image rules on the skimage photos in ../shared/eval/media/images/ and on 200 procedural images
(these prompts and seeds are not in bench/nudenet_calibration.py's calibration set), with and
without NudeNet's context rule. Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from classifiers.image.nudenet import EXPOSED_LABELS, NudeNetClassifier
from classifiers.image.redaction import Redaction, encode_image, redact_regions
from classifiers.taxonomy import Category
from gateway.media import decode_image
from generators.base import GenerationRequest, Modality
from generators.procedural import ProceduralImageGenerator
from policies.decision import decide
from policies.loader import default_policy_text, parse_policy

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "eval" / "media" / "images" / "skimage"


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def procedural(count: int, size: int) -> list[bytes]:
    async def run_cpu(fn, *args):  # type: ignore[no-untyped-def]
        return fn(*args)

    generator = ProceduralImageGenerator(run_cpu=run_cpu)
    out: list[bytes] = []
    prompts = ["a lighthouse", "a forest", "a city at night", "a bowl of fruit", "a portrait"]
    for index in range(count):
        request = GenerationRequest(
            modality=Modality.IMAGE,
            prompt=f"{prompts[index % len(prompts)]} #{index}",
            model=generator.models[0],
            n=1,
            size=(size, size),
        )
        out.extend(a.data for a in await generator.generate(request))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--benign", type=int, default=200)
    args = parser.parse_args()
    section = parse_policy(default_policy_text()).policy.output.image
    model = NudeNetClassifier(threads=1)
    photo = Image.open(PHOTOS / "astronaut.png").convert("RGB").resize((1024, 1024))
    blobs = [png(photo), *asyncio.run(procedural(4, 1024))]
    stage: list[float] = []
    blur: list[float] = []
    direct: list[float] = []
    reduced: list[float] = []
    for run in range(args.runs):
        blob = blobs[run % len(blobs)]
        started = time.perf_counter()
        image = decode_image(blob)
        scores = model.classify([image])
        decide("output", section, scores)
        stage.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        encode_image(redact_regions(image, [(346, 164, 202, 194)], Redaction()), "image/png")
        blur.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        image.resize((320, 320), Image.Resampling.BILINEAR)
        direct.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        image.resize((320, 320), Image.Resampling.BILINEAR, reducing_gap=1.5)
        reduced.append((time.perf_counter() - started) * 1000)
    print(f"Machine: {platform.machine()}, {platform.python_version()}; runs {args.runs}\n")
    print("| per 1024x1024 image | p50 | p90 |\n|---|---|---|")
    for label, values in (
        ("default image stage (PNG decode + NudeNet + rules)", stage),
        ("blur action (pixelate one region + PNG re-encode)", blur),
        ("NudeNet input resize, direct antialiased bilinear", direct),
        ("NudeNet input resize, reduce 2x first (used)", reduced),
    ):
        print(f"| {label} | {statistics.median(values):.1f} ms | {percentile(values, 90):.1f} ms |")
    benign: dict[str, Image.Image] = {p.name: Image.open(p) for p in sorted(PHOTOS.glob("*.*g"))}
    for index, blob in enumerate(asyncio.run(procedural(args.benign, 512))):
        benign[f"procedural-{index}"] = decode_image(blob)
    for label, classifier in (
        ("default (context rule on)", model),
        ("context rule off", model.configured({}, needs_context=())),
    ):
        blocks: list[str] = []
        worst = {Category.NUDITY: ("", 0.0), Category.SEXUAL: ("", 0.0)}
        for name, image in benign.items():
            scores = classifier.classify([image])
            if decide("output", section, scores).blocked:
                blocks.append(name)
            for category in worst:
                if scores[0].get(category) > worst[category][1]:
                    worst[category] = (name, scores[0].get(category))
        print(f"\n{label}: {len(benign)} benign images, blocked by the default rules: {blocks}")
        for category, (name, value) in worst.items():
            print(f"- max {category.value} score: {value:.3f} ({name or 'none above 0'})")
    detected = [
        (d.score, d.label, name)
        for name, image in benign.items()
        for d in model.detect([image])[0]
        if d.label in EXPOSED_LABELS
    ]
    if detected:
        score, label, name = max(detected)
        print(f"- highest exposed-label detection: {label} {score:.3f} ({name})")


if __name__ == "__main__":
    main()
