"""Input stage latency per 1024x1024 upload (edits and variations, issue #10).

    OMP_NUM_THREADS=1 .venv/bin/python bench/input_stage.py [--runs 20] [--bank 10000]

What the gateway does with one uploaded 1024x1024 PNG before anything is generated, with the
default policy's input stage (``nudenet`` + ``pdq_bank``) and lineage on:

- validate: sniff the type, read the header (pixel limit), decode in full (``inspect_image``);
- nudenet: one detector pass (its scores and the per-label evidence of combined rules);
- pdq_bank: 8 dihedral PDQ hashes against a bank of ``--bank`` random hashes;
- lineage: look for a GenGuard watermark at the upload's size and 2 more registered sizes;
- stage: all of it as the pipeline runs it (validation first, then the three concurrently in a
  2-thread pool, as on this 2-core machine);
- ingredient: the extra cost of signing the output with the upload as a C2PA ingredient.

Also the refusal of a 20000x20000 pixel bomb (header only). Prints Markdown for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import struct
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np

from classifiers.image.nudenet import NudeNetClassifier
from classifiers.image.pdq_bank import BankedHash, PdqBankClassifier, PdqIndex, PdqSnapshot
from classifiers.taxonomy import Category
from gateway.errors import ApiError
from gateway.input_stage import input_runs
from gateway.uploads import inspect_image
from generators.base import Artifact, Modality
from generators.procedural import render_procedural_png
from policies.loader import default_policy_text, parse_policy
from provenance.credentials import ensure_dev_credentials
from provenance.ingredients import ingredients_of_inputs
from provenance.manifest import ManifestSpec
from provenance.marking import detect_watermark
from provenance.signer import C2paSigner

SIZE = (1024, 1024)


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    fn()  # warm
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def bomb(side: int = 20_000) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--bank", type=int, default=10_000)
    args = parser.parse_args()
    policy = parse_policy(default_policy_text()).policy
    section = policy.input
    upload = render_procedural_png("an upload", 1, SIZE)
    max_pixels = 4096 * 4096

    rng = np.random.default_rng(0)
    entries = tuple(
        BankedHash("bench", rng.bytes(32).hex(), Category.HASH_MATCH, 31) for _ in range(args.bank)
    )
    index = PdqIndex(PdqSnapshot.of(1, entries))
    nudenet = NudeNetClassifier()
    classifiers = {"nudenet": nudenet, "pdq_bank": PdqBankClassifier(index)}
    labels: dict[str, float] = {}
    runs = dict(input_runs(section, classifiers.__getitem__, labels))
    _, pixels = inspect_image(upload, "image[0]", max_pixels)
    sizes = [(1024, 1024), (512, 512), (256, 256)]

    figures = {
        "validate (sniff, header, full decode)": timed(
            lambda: inspect_image(upload, "image[0]", max_pixels), args.runs
        ),
        "nudenet (one pass: scores + labels)": timed(lambda: runs["nudenet"]([pixels]), args.runs),
        f"pdq_bank ({args.bank} hashes, 8 variants)": timed(
            lambda: runs["pdq_bank"]([pixels]), args.runs
        ),
        "lineage (watermark at 3 sizes)": timed(
            lambda: detect_watermark(upload, "image/png", audio_key=b"k", image_sizes=sizes),
            args.runs,
        ),
    }

    pool = ThreadPoolExecutor(max_workers=2)

    async def stage() -> None:
        loop = asyncio.get_running_loop()
        _, decoded = await loop.run_in_executor(pool, inspect_image, upload, "image[0]", max_pixels)
        await asyncio.gather(
            loop.run_in_executor(pool, runs["nudenet"], [decoded]),
            loop.run_in_executor(pool, runs["pdq_bank"], [decoded]),
            loop.run_in_executor(
                pool,
                lambda: detect_watermark(upload, "image/png", audio_key=b"k", image_sizes=sizes),
            ),
        )

    figures["input stage as the pipeline runs it"] = timed(lambda: asyncio.run(stage()), args.runs)

    with TemporaryDirectory() as directory:
        signer = C2paSigner(ensure_dev_credentials(Path(directory) / "ca"))
        output = render_procedural_png("the edit", 2, SIZE)
        artifact = Artifact(output, "image/png", Modality.IMAGE, "procedural", "demo")
        plain = ManifestSpec("procedural", "demo", "dec_bench", "default", "r1")
        with_input = ManifestSpec(
            "procedural",
            "demo",
            "dec_bench",
            "default",
            "r1",
            ingredients=ingredients_of_inputs([(upload, "image/png")]),
        )
        sign_plain = timed(lambda: signer.sign(artifact, plain), args.runs)
        sign_ingredient = timed(lambda: signer.sign(artifact, with_input), args.runs)
    bomb_bytes = bomb()

    def refuse_bomb() -> None:
        try:
            inspect_image(bomb_bytes, "image[0]", max_pixels)
        except ApiError:
            return
        raise AssertionError("the bomb was accepted")

    figures["20000x20000 PNG bomb refused"] = timed(refuse_bomb, args.runs)

    print(f"Machine: {platform.machine()}, {platform.python_version()}, runs={args.runs}\n")
    print("| step (one 1024x1024 PNG upload) | median ms | p95 ms |")
    print("|---|---|---|")
    for name, values in figures.items():
        p95 = float(np.percentile(values, 95))
        print(f"| {name} | {statistics.median(values):.1f} | {p95:.1f} |")
    extra = statistics.median(sign_ingredient) - statistics.median(sign_plain)
    print(
        f"| signing the output with the upload as ingredient (extra over "
        f"{statistics.median(sign_plain):.1f} ms) | {extra:.1f} | |"
    )
    print(f"\nupload: {len(upload)} bytes; bomb: {len(bomb_bytes)} bytes")
    pool.shutdown()


if __name__ == "__main__":
    main()
