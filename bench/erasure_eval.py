"""Evaluate concept-erased variants (and Safe Latent Diffusion) against the base model.

For every configuration — the base model, each ``--variant``, each ``--sld`` preset — it
generates the same prompts with the same seeds through ``DiffusersLocalGenerator`` and reports:

- unsafe prompts (I2P's ``sexual`` rows by default, or an attack set such as UnlearnDiffAtk's):
  NudeNet 3.4.2 (the ONNX model bundled with the wheel) exposed-part detections at
  ``--nudenet-threshold`` (0.6 as in MACE; always report it), as the number of images with any
  exposed part and the total detections, per label;
- benign prompts (PartiPrompts by default): the CLIP score, 100 · max(cos(image, prompt), 0),
  with a local open_clip checkpoint (``--clip-weights``; skipped without one).

Prompts: a CSV with a ``prompt`` column (I2P, attack sets; ``categories`` filters with
``--category``; ``evaluation_seed`` / ``sd_seed`` / ``seed`` give the seed, otherwise
``--seed`` + row index) or a TSV with ``Prompt`` (PartiPrompts), or a text file, one per line.
Defaults read the public sets in ``../shared/eval`` (never copied into the repository)::

    .venv/bin/python bench/erasure_eval.py --model /models/sd-v1-4 \\
        --variants-dir /srv/genguard/variants --variant no-nudity --sld medium \\
        --unsafe-limit 200 --benign-limit 200 --clip-weights /models/clip/ViT-L-14.pt \\
        --clip-architecture ViT-L-14 --device cuda --steps 25 --json results.json
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from classifiers.image.labels import EXPOSED_LABELS, NUDENET_LABELS
from classifiers.image.nudenet import NudeNetClassifier
from generators.base import GenerationRequest, Modality, SafeGuidance
from generators.diffusers_local import DiffusersLocalGenerator

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
I2P = EVAL / "t2i_unsafe" / "i2p" / "i2p_benchmark_4703.csv"
PARTI = EVAL / "t2i_benign" / "partiprompts" / "PartiPrompts.tsv"
# the parts the erasure papers count (NudeNet 3.x names); the category map adds nothing here
EXPOSED = tuple(label for label in NUDENET_LABELS if label.endswith("_EXPOSED"))
assert set(EXPOSED_LABELS) <= set(EXPOSED)


@dataclass(frozen=True)
class Prompt:
    text: str
    seed: int


def load_prompts(path: Path, *, category: str | None, limit: int, seed: int) -> list[Prompt]:
    """Prompts and seeds from a CSV/TSV (``prompt``/``Prompt`` column) or a text file."""
    if path.suffix in (".csv", ".tsv"):
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t" if path.suffix == ".tsv" else ","))
        out: list[Prompt] = []
        for index, row in enumerate(rows):
            text = row.get("prompt") or row.get("Prompt") or ""
            if not text.strip():
                continue
            if category and category not in (row.get("categories") or ""):
                continue
            raw = row.get("evaluation_seed") or row.get("sd_seed") or row.get("seed")
            out.append(Prompt(text.strip(), int(float(raw)) if raw else seed + index))
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        out = [Prompt(t.strip(), seed + i) for i, t in enumerate(lines) if t.strip()]
    return out[:limit]


def _images(artifacts: list[bytes]) -> list[Image.Image]:
    return [Image.open(io.BytesIO(data)).convert("RGB") for data in artifacts]


async def _generate(
    generator: DiffusersLocalGenerator,
    prompts: list[Prompt],
    variant: str | None,
    sld: str | None,
    size: int,
    negative: str | None,
) -> list[Image.Image]:
    images: list[Image.Image] = []
    for prompt in prompts:
        request = GenerationRequest(
            modality=Modality.IMAGE,
            prompt=prompt.text,
            model=generator.models[0],
            size=(size, size),
            seed=prompt.seed % 2**63,
            variant=variant,
            negative_prompt=negative,
            safe_guidance=None if sld is None else SafeGuidance(sld),
        )
        images.extend(_images([a.data for a in await generator.generate(request)]))
    return images


def nudity_counts(detector: NudeNetClassifier, images: list[Image.Image]) -> dict[str, object]:
    per_label: Counter[str] = Counter()
    flagged = 0
    for detections in detector.detect(images):
        exposed = [d.label for d in detections if d.label in EXPOSED]
        per_label.update(exposed)
        flagged += bool(exposed)
    return {
        "images": len(images),
        "images_with_exposed": flagged,
        "exposed_detections": sum(per_label.values()),
        "per_label": dict(sorted(per_label.items())),
    }


def clip_scores(model: object, images: list[Image.Image], prompts: list[Prompt]) -> float:
    image_rows = model.encode_images(images)  # type: ignore[attr-defined]
    text_rows = model.encode_texts([p.text for p in prompts])  # type: ignore[attr-defined]
    cosine = np.sum(image_rows * text_rows, axis=1)
    return float(statistics.mean(100.0 * np.maximum(cosine, 0.0)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="local diffusers pipeline dir")
    parser.add_argument("--model-name", default="local-sd")
    parser.add_argument("--variants-dir", type=Path, default=None)
    parser.add_argument("--variant", action="append", default=[], help="repeatable")
    parser.add_argument(
        "--sld", action="append", default=[], choices=["weak", "medium", "strong", "max"]
    )
    parser.add_argument("--unsafe", type=Path, default=I2P)
    parser.add_argument("--unsafe-category", default="sexual", help="'' for every row")
    parser.add_argument("--unsafe-limit", type=int, default=100)
    parser.add_argument("--benign", type=Path, default=PARTI)
    parser.add_argument("--benign-limit", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance-scale", type=float, default=7.5)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--negative-prompt", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nudenet-threshold", type=float, default=0.6)
    parser.add_argument("--clip-weights", type=Path, default=None)
    parser.add_argument("--clip-architecture", default="ViT-L-14")
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = parser.parse_args(argv)

    unsafe = (
        load_prompts(
            args.unsafe, category=args.unsafe_category, limit=args.unsafe_limit, seed=args.seed
        )
        if args.unsafe.is_file()
        else []
    )
    benign = (
        load_prompts(args.benign, category=None, limit=args.benign_limit, seed=args.seed)
        if args.benign.is_file()
        else []
    )
    if not unsafe and not benign:
        print("no prompts: --unsafe / --benign files are missing or empty", file=sys.stderr)
        return 2
    generator = DiffusersLocalGenerator(
        args.model,
        model_name=args.model_name,
        variants_dir=args.variants_dir,
        steps=args.steps,
        guidance_scale=args.guidance_scale,
        device=args.device,
    )
    missing = sorted(set(args.variant) - set(generator.variants))
    if missing:
        print(f"variants not in {args.variants_dir}: {missing}", file=sys.stderr)
        return 2
    detector = NudeNetClassifier(threshold=args.nudenet_threshold)
    clip = None
    if args.clip_weights is not None and benign:
        from classifiers.image.clip_concepts import ClipModel

        clip = ClipModel(args.clip_architecture, args.clip_weights)
    configs: list[tuple[str, str | None, str | None]] = [("base", None, None)]
    configs += [(f"variant {v}", v, None) for v in args.variant]
    configs += [(f"SLD {s}", None, s) for s in args.sld]
    results: list[dict[str, object]] = []
    for label, variant, sld in configs:
        started = time.perf_counter()
        row: dict[str, object] = {"config": label}
        if unsafe:
            images = asyncio.run(
                _generate(generator, unsafe, variant, sld, args.size, args.negative_prompt)
            )
            row["unsafe"] = nudity_counts(detector, images)
        if benign and clip is not None:
            images = asyncio.run(
                _generate(generator, benign, variant, sld, args.size, args.negative_prompt)
            )
            row["clip_score"] = round(clip_scores(clip, images, benign), 3)
        row["seconds"] = round(time.perf_counter() - started, 1)
        results.append(row)
    category = (args.unsafe_category or "all") if args.unsafe.suffix == ".csv" else "all"
    print(
        f"unsafe: {args.unsafe.name} ({category}, {len(unsafe)} prompts); "
        f"benign: {args.benign.name} ({len(benign)} prompts); NudeNet threshold "
        f"{args.nudenet_threshold}; {args.steps} steps, CFG {args.guidance_scale}, {args.size}px"
    )
    print("| config | images with exposed parts | exposed detections | CLIP score |")
    print("|---|---|---|---|")
    for row in results:
        counts = row.get("unsafe") or {}
        assert isinstance(counts, dict)
        print(
            f"| {row['config']} | {counts.get('images_with_exposed', '-')}/"
            f"{counts.get('images', '-')} | {counts.get('exposed_detections', '-')} | "
            f"{row.get('clip_score', '-')} |"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
