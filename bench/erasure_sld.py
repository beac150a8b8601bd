"""Safe Latent Diffusion overhead per denoising step on an SD1.5-shaped UNet (random weights).

One step of classifier-free guidance is one UNet call on [negative, prompt] (batch 2n); SLD adds
one call on the prompt half with the safety concept (batch n) inside ``SafeLatentGuidance``.
Random weights of the SD1.5 UNet configuration (no model needed)::

    .venv/bin/python bench/erasure_sld.py [--device cuda] [--resolution 512] [--steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from erasure.sld import SLD_PRESETS, SafeLatentGuidance


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    from diffusers import UNet2DConditionModel

    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--images", type=int, default=1)
    args = parser.parse_args()
    device = args.device
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    print(f"device: {name}; torch {torch.__version__}; {dtype}; threads {torch.get_num_threads()}")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(  # the SD 1.5 configuration
        sample_size=64,
        cross_attention_dim=768,
        block_out_channels=(320, 640, 1280, 1280),
        attention_head_dim=8,
    )
    unet = unet.to(device=device, dtype=dtype).eval()
    n, side = args.images, args.resolution // 8
    latents = torch.randn(2 * n, 4, side, side, device=device, dtype=dtype)
    states = torch.randn(2 * n, 77, 768, device=device, dtype=dtype)
    safety = torch.randn(1, 77, 768, device=device, dtype=dtype)

    def step() -> None:
        with torch.no_grad():
            unet(latents, 500, encoder_hidden_states=states, return_dict=False)

    step()  # warm-up
    timings: dict[str, list[float]] = {"CFG": [], "CFG + SLD (max)": []}
    for label, times in timings.items():
        guidance = SafeLatentGuidance(unet, SLD_PRESETS["max"], safety) if "SLD" in label else None
        for _ in range(args.steps):
            _sync(device)
            start = time.perf_counter()
            if guidance is None:
                step()
            else:
                with guidance:
                    step()
            _sync(device)
            times.append(time.perf_counter() - start)
    plain = statistics.median(timings["CFG"])
    print(f"| step ({args.resolution}px, {n} image) | median ms | vs CFG |")
    print("|---|---|---|")
    for label, times in timings.items():
        median = statistics.median(times)
        print(f"| {label} | {1000 * median:.1f} | {median / plain:.2f}x |")


if __name__ == "__main__":
    main()
