"""ESD: erase a concept by fine-tuning the UNet towards a negatively guided frozen teacher.

η follows the paper / original code: the target is ``ε*(x_t, ∅) - η (ε*(x_t, c) - ε*(x_t, ∅))``
(default η = 1). The newer diffusers-based reference writes ``ε*(c) - η' (ε*(c) - ε*(∅))`` with
η' = 2: the same objective with ``η = η' - 1``.

Parameter sets: ``esd-x`` every ``attn2`` parameter (prompt-specific; styles), ``esd-x-strict``
only ``attn2.to_k``/``to_v``, ``esd-u`` everything outside ``attn2`` except ``conv_out`` and the
time embedding (global; nudity). ``x_t`` is built by partial DDIM sampling with the concept at
CFG 3 using the frozen teacher. Checkpoints (trainable tensors + optimiser + step + sampler RNG
+ the run's configuration) are written atomically to ``checkpoint_dir/esd.pt`` every
``checkpoint_every`` steps and at the end; a run resumes from there and continues exactly as the
uninterrupted run would have. A checkpoint written by a run with another configuration (concept,
method, learning rate, η, …; only ``iterations``, ``checkpoint_every``, ``device`` and
``progress`` may change) is refused. A tqdm progress bar shows the step and the loss.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm  # type: ignore[import-untyped]

from erasure.errors import ErasureError
from erasure.targets import ClipPromptEncoder
from erasure.variants import VariantMetadata, VariantPatch, base_fingerprint

__all__ = ["EsdConfig", "esd_train", "esd_variant", "trainable_keys"]


@dataclass(frozen=True, slots=True)
class EsdConfig:
    concept: str
    method: str = "esd-x"  # esd-x | esd-x-strict | esd-u
    iterations: int = 1000
    lr: float = 1e-5
    eta: float = 1.0
    ddim_steps: int = 50
    start_guidance: float = 3.0
    height: int = 512
    width: int = 512
    checkpoint_every: int = 100
    seed: int = 0
    device: str = "cpu"
    progress: bool = True


_RESUMABLE = ("iterations", "checkpoint_every", "device", "progress")  # may change on resume


def _run_identity(config: EsdConfig) -> dict[str, object]:
    return {k: v for k, v in asdict(config).items() if k not in _RESUMABLE}


def trainable_keys(unet: torch.nn.Module, method: str) -> list[str]:
    names = [n for n, _ in unet.named_parameters()]
    if method == "esd-x":
        keys = [n for n in names if ".attn2." in n]
    elif method == "esd-x-strict":
        keys = [n for n in names if ".attn2.to_k." in n or ".attn2.to_v." in n]
    elif method == "esd-u":
        keys = [
            n
            for n in names
            if ".attn2." not in n and not n.startswith(("conv_out.", "time_embedding."))
        ]
    else:
        raise ErasureError(f"unknown ESD method {method!r}: esd-x, esd-x-strict or esd-u")
    if not keys:
        raise ErasureError(f"{method}: no parameters selected")
    return keys


def esd_train(pipe: Any, config: EsdConfig, checkpoint_dir: Path | None = None) -> list[str]:
    """Fine-tune ``pipe.unet`` in place; return the state-dict keys that were trained."""
    unet = pipe.unet.to(config.device)
    teacher = copy.deepcopy(unet).requires_grad_(False).eval()
    keys = trainable_keys(unet, config.method)
    params = dict(unet.named_parameters())
    unet.requires_grad_(False)
    trained = [params[k].requires_grad_(True) for k in keys]
    optimiser = torch.optim.Adam(trained, lr=config.lr)
    start = 0
    rng = torch.Generator("cpu").manual_seed(config.seed)
    checkpoint = None if checkpoint_dir is None else checkpoint_dir / "esd.pt"
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=config.device, weights_only=True)
        written_by = state.get("config")
        if written_by != _run_identity(config):
            raise ErasureError(
                f"{checkpoint} was written by another ESD run ({written_by}); this run is "
                f"{_run_identity(config)}: use another --checkpoint-dir or the same settings"
            )
        with torch.no_grad():
            for k in keys:
                params[k].copy_(state["params"][k])
        optimiser.load_state_dict(state["optimiser"])
        start = int(state["step"])
        rng.set_state(state["rng"])
    encoder = ClipPromptEncoder.from_pipeline(pipe)
    with torch.no_grad():
        hidden, _ = encoder.encode([config.concept, ""])
    cond, uncond = hidden[:1].to(config.device), hidden[1:].to(config.device)
    scheduler = copy.deepcopy(pipe.scheduler)
    scheduler.set_timesteps(config.ddim_steps)
    shape = (1, unet.config.in_channels, config.height // 8, config.width // 8)
    bar = tqdm(
        range(start, config.iterations),
        initial=start,
        total=config.iterations,
        desc=f"esd {config.method} {config.concept!r}",
        disable=not config.progress,
    )
    for step in bar:
        stop = int(torch.randint(0, config.ddim_steps, (1,), generator=rng))
        latents = torch.randn(shape, generator=rng).to(config.device) * scheduler.init_noise_sigma
        with torch.no_grad():
            for t in scheduler.timesteps[:stop]:
                e_u, e_c = teacher(
                    torch.cat([latents] * 2), t, torch.cat([uncond, cond])
                ).sample.chunk(2)
                eps = e_u + config.start_guidance * (e_c - e_u)
                latents = scheduler.step(eps, t, latents).prev_sample
            t = scheduler.timesteps[stop]
            e_u, e_c = teacher(torch.cat([latents] * 2), t, torch.cat([uncond, cond])).sample.chunk(
                2
            )
            target = e_u - config.eta * (e_c - e_u)
        loss = torch.nn.functional.mse_loss(unet(latents, t, cond).sample, target)
        optimiser.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        bar.set_postfix(loss=f"{float(loss.detach()):.4g}")
        done = step + 1
        if checkpoint is not None and (
            done % config.checkpoint_every == 0 or done == config.iterations
        ):
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            tmp = checkpoint.with_suffix(".tmp")
            torch.save(
                {
                    "step": done,
                    "params": {k: params[k].detach().cpu() for k in keys},
                    "optimiser": optimiser.state_dict(),
                    "rng": rng.get_state(),
                    "config": _run_identity(config),
                },
                tmp,
            )
            tmp.replace(checkpoint)
    unet.requires_grad_(False)
    return keys


def esd_variant(
    pipe: Any,
    config: EsdConfig,
    name: str,
    *,
    base_model: str = "",
    checkpoint_dir: Path | None = None,
) -> VariantPatch:
    """Train (or resume) and package the trained tensors as a variant patch."""
    keys = trainable_keys(pipe.unet, config.method)
    fingerprint = base_fingerprint(pipe.unet, keys)
    esd_train(pipe, config, checkpoint_dir)
    state = pipe.unet.state_dict()
    metadata = VariantMetadata(
        name=name,
        method=config.method,
        base_fingerprint=fingerprint,
        concepts=(config.concept,),
        guide=("",),
        base_model=base_model,
        extra={
            "iterations": str(config.iterations),
            "lr": str(config.lr),
            "eta_paper_convention": str(config.eta),
        },
    )
    return VariantPatch({k: state[k].detach().clone() for k in keys}, metadata)
