"""PDQ hash banks: how often a banked image still matches after common edits, and how often an
unrelated image matches by accident.

Banks the 6 photos in ``/work/shared/eval/media/images`` (skipped when absent) plus generated
images, then queries each after a JPEG q75 re-encode, a 0.5x resize and a 10 % crop (5 % off
every edge), and 1,000 unrelated generated images, through the real ``PdqBankClassifier`` at the
default threshold (31 bits). Prints a Markdown table for docs/benchmarks.md.

    .venv/bin/python bench/pdq_bank.py [--generated 50] [--unrelated 1000]
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from classifiers.image.pdq_bank import (
    DEFAULT_THRESHOLD,
    BankedHash,
    PdqBankClassifier,
    PdqIndex,
    PdqSnapshot,
    hamming,
    parse_hex,
    pdq_hash,
    pdq_variants,
)
from classifiers.taxonomy import Category
from generators.procedural import render_procedural_png

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "eval" / "media" / "images"


def _jpeg(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=75)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _half(image: Image.Image) -> Image.Image:
    return image.resize((max(1, image.width // 2), max(1, image.height // 2)))


def _crop(image: Image.Image) -> Image.Image:
    dx, dy = image.width // 20, image.height // 20
    return image.crop((dx, dy, image.width - dx, image.height - dy))


EDITS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "JPEG q75": _jpeg,
    "resize 0.5x": _half,
    "crop 10 %": _crop,
}


def _generated(prompt: str, size: int = 512) -> Image.Image:
    return Image.open(io.BytesIO(render_procedural_png(prompt, 1, (size, size)))).convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--generated", type=int, default=50)
    parser.add_argument("--unrelated", type=int, default=1000)
    args = parser.parse_args()
    photos = sorted(p for p in PHOTOS.rglob("*") if p.suffix.lower() in (".png", ".jpg"))
    sets = {
        "photos": [Image.open(p).convert("RGB") for p in photos],
        "generated": [_generated(f"banked image {i}") for i in range(args.generated)],
    }
    banked = [(name, image) for name, images in sets.items() for image in images]
    entries = [
        BankedHash(f"{name}", pdq_hash(image).hex, Category.HASH_MATCH, DEFAULT_THRESHOLD)
        for name, image in banked
    ]
    index = PdqIndex(PdqSnapshot.of(1, entries))
    classifier = PdqBankClassifier(index)
    print(f"banked: {len(sets['photos'])} photos + {len(sets['generated'])} generated images\n")
    print("| edit | set | matched | distance to own hash (median / max) |")
    print("|---|---|---|---|")
    for edit_name, edit in EDITS.items():
        for set_name, images in sets.items():
            if not images:
                continue
            matched, distances = 0, []
            for image in images:
                own = parse_hex(pdq_hash(image).hex)[None, :]
                edited = edit(image)
                variants, _ = pdq_variants(edited)
                distances.append(int(hamming(variants, own).min()))
                [scores] = classifier.classify([edited])
                matched += scores.get(Category.HASH_MATCH) > 0
            print(
                f"| {edit_name} | {set_name} | {matched}/{len(images)} | "
                f"{int(np.median(distances))} / {max(distances)} |"
            )
    false, nearest = 0, []
    for i in range(args.unrelated):
        query = _generated(f"unrelated image {i}", 256)
        variants, _ = pdq_variants(query)
        nearest.append(int(hamming(variants, index.snapshot.matrix).min()))
        [scores] = classifier.classify([query])
        false += scores.get(Category.HASH_MATCH) > 0
    print(
        f"\nfalse matches: {false}/{args.unrelated} unrelated generated images "
        f"(nearest banked hash: min {min(nearest)}, median {int(np.median(nearest))} bits)"
    )


if __name__ == "__main__":
    main()
