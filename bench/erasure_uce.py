"""UCE edit time on SD1.5-, SDXL- and FLUX-shaped text projections, and variant-switch latency.

Random weights of the real shapes (no model needed). Only torch + the repo:

    .venv/bin/python bench/erasure_uce.py [--device cuda] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from erasure.closed_form import UceSystem

# (d_in, [d_out per matrix]) — SD1.5: 16 cross-attn blocks, 32 K/V matrices; SDXL: 70 blocks,
# 140; FLUX.1: context_embedder (T5 4096 -> 3072) and the pooled-text projection (768 -> 3072),
# one system each (they read different encoders)
SHAPES = {
    "SD1.5 (32 x d_in 768)": (768, [320] * 10 + [640] * 10 + [1280] * 12),
    "SDXL (140 x d_in 2048)": (2048, [640] * 40 + [1280] * 100),
    "FLUX.1 context_embedder (1 x d_in 4096)": (4096, [3072]),
    "FLUX.1 pooled text (1 x d_in 768)": (768, [3072]),
}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--concepts", type=int, default=1)
    parser.add_argument("--preserve", type=int, default=10)
    args = parser.parse_args()
    device = args.device
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    print(f"device: {name}; torch {torch.__version__}; threads {torch.get_num_threads()}")
    print("| model | matrices | UCE edit, median s | variant switch (copy), median ms |")
    print("|---|---|---|---|")
    gen = torch.Generator("cpu").manual_seed(0)
    for label, (d_in, outs) in SHAPES.items():
        weights = [torch.randn(o, d_in, generator=gen).to(device) for o in outs]
        erase = torch.randn(args.concepts, d_in, generator=gen).to(device)
        guide = torch.randn(args.concepts, d_in, generator=gen).to(device)
        keep = torch.randn(args.preserve, d_in, generator=gen).to(device)
        edits: list[float] = []
        new: list[torch.Tensor] = []
        for _ in range(args.repeats):
            _sync(device)
            start = time.perf_counter()
            system = UceSystem(erase, keep, device=device)  # one factorisation per d_in
            new = [system.solve(w, guide @ w.T)[0] for w in weights]
            _sync(device)
            edits.append(time.perf_counter() - start)
        switches: list[float] = []
        for i in range(args.repeats * 4):
            source = new if i % 2 == 0 else weights
            live = [w.clone() for w in weights] if i == 0 else live  # noqa: F821
            _sync(device)
            start = time.perf_counter()
            with torch.no_grad():
                for dst, src in zip(live, source, strict=True):
                    dst.copy_(src)
            _sync(device)
            switches.append(time.perf_counter() - start)
        print(
            f"| {label} | {len(weights)} | {statistics.median(edits):.3f} | "
            f"{1000 * statistics.median(switches):.2f} |"
        )


if __name__ == "__main__":
    main()
