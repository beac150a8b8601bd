"""``genguard erase uce|esd`` and ``genguard variants list|show|apply``: offline, no server.

Models load from local directories only (``local_files_only``); variants live in one directory
(``--variants-dir``, default ``<data dir>/variants``). torch and diffusers are imported only when
one of these commands runs, not when the CLI builds its parser.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from erasure.errors import ErasureError

if TYPE_CHECKING:
    from erasure.targets import TokenPolicy

__all__ = ["add_erasure_commands", "run_erasure"]


def add_erasure_commands(commands: Any) -> None:
    """Register ``erase`` and ``variants`` on the CLI's sub-parser action."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--variants-dir", type=Path, default=Path(".genguard/variants"))
    erase = commands.add_parser("erase", help="build a concept-erased variant").add_subparsers(
        dest="erase_command", required=True
    )
    uce = erase.add_parser("uce", parents=[common], help="closed-form UCE edit (seconds)")
    uce.add_argument("--model", type=Path, required=True, help="local diffusers pipeline dir")
    uce.add_argument("--name", required=True, help="variant name")
    uce.add_argument("--erase", action="append", required=True, help="concept (repeatable)")
    uce.add_argument("--guide", action="append", default=None, help="one per --erase, or one")
    uce.add_argument("--preserve", action="append", default=[])
    uce.add_argument("--lam", type=float, default=0.5)
    uce.add_argument("--preserve-scale", type=float, default=1.0)
    uce.add_argument(
        "--token-policy",
        type=_token_policy,
        default="last_content",
        help="token positions edited: last_content (default), last_plus_eos or all",
    )
    uce.add_argument(
        "--preserve-token-policy",
        type=_token_policy,
        default=None,
        help="positions of the preserve prompts kept (default: --token-policy)",
    )
    uce.add_argument(
        "--max-sequence-length", type=int, default=512, help="FLUX: T5 length (schnell: 256)"
    )
    uce.add_argument("--overwrite", action="store_true")
    esd = erase.add_parser("esd", parents=[common], help="ESD fine-tuning (GPU)")
    esd.add_argument("--model", type=Path, required=True)
    esd.add_argument("--name", required=True)
    esd.add_argument("--erase", required=True)
    esd.add_argument("--method", choices=["esd-x", "esd-x-strict", "esd-u"], default="esd-x")
    esd.add_argument("--iterations", type=int, default=200)
    esd.add_argument("--lr", type=float, default=1e-5)
    esd.add_argument("--eta", type=float, default=1.0, help="paper convention (old code)")
    esd.add_argument("--ddim-steps", type=int, default=50)
    esd.add_argument("--resolution", type=int, default=512, help="image side (multiple of 8)")
    esd.add_argument("--seed", type=int, default=0)
    esd.add_argument("--checkpoint-dir", type=Path, default=None, help="resume from here")
    esd.add_argument("--checkpoint-every", type=int, default=100)
    esd.add_argument("--device", default="cpu")
    esd.add_argument("--no-progress", action="store_true", help="no progress bar")

    variants = commands.add_parser("variants", help="concept-erased variants").add_subparsers(
        dest="variants_command", required=True
    )
    variants.add_parser("list", parents=[common], help="variants in the directory")
    show = variants.add_parser("show", parents=[common], help="a variant's metadata")
    show.add_argument("name")
    apply = variants.add_parser(
        "apply", parents=[common], help="write base model + variant as a new pipeline dir"
    )
    apply.add_argument("name")
    apply.add_argument("--model", type=Path, required=True)
    apply.add_argument("--out", type=Path, required=True)


def _token_policy(value: str) -> TokenPolicy:
    """Parse a ``--token-policy`` (imports torch: runs only when ``erase uce`` is parsed)."""
    from erasure.targets import TokenPolicy

    try:
        return TokenPolicy(value)
    except ValueError:
        valid = ", ".join(p.value for p in TokenPolicy)
        raise argparse.ArgumentTypeError(f"{value!r} is not one of: {valid}") from None


def run_erasure(args: argparse.Namespace) -> int:
    try:
        if args.command == "erase":
            return _erase(args)
        return _variants(args)
    except ErasureError as exc:
        print(f"genguard: {exc}", file=sys.stderr)
        return 1


def _load(model: Path) -> Any:
    from diffusers import DiffusionPipeline

    if not model.is_dir():
        raise ErasureError(f"model directory {model} does not exist")
    try:
        pipe = DiffusionPipeline.from_pretrained(  # type: ignore[no-untyped-call]
            str(model), local_files_only=True, safety_checker=None, requires_safety_checker=False
        )
    except (OSError, ValueError) as exc:
        raise ErasureError(f"cannot load the diffusers pipeline at {model}: {exc}") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _erase(args: argparse.Namespace) -> int:
    from erasure.variants import VariantRegistry

    registry = VariantRegistry(args.variants_dir)
    registry.path(args.name)  # validate the name before loading a model
    pipe = _load(args.model)
    if args.erase_command == "uce":
        from erasure.uce import UceConfig, uce_variant

        guides = args.guide or [""]
        if len(guides) == 1:
            guides = guides * len(args.erase)
        config = UceConfig.build(
            args.erase,
            guides,
            args.preserve,
            lam=args.lam,
            preserve_scale=args.preserve_scale,
            token_policy=args.token_policy,
            preserve_token_policy=args.preserve_token_policy,
        )
        patch, result = uce_variant(
            pipe,
            config,
            args.name,
            base_model=str(args.model),
            max_sequence_length=args.max_sequence_length,
        )
        worst = max(d.erase_residual for d in result.diagnostics.values())
        path = registry.save(patch, overwrite=args.overwrite)
        print(f"{path}: {len(patch.weights)} projections, max erase residual {worst:.2e}")
        return 0
    from erasure.esd import EsdConfig, esd_variant

    esd_config = EsdConfig(
        concept=args.erase,
        method=args.method,
        iterations=args.iterations,
        lr=args.lr,
        eta=args.eta,
        ddim_steps=args.ddim_steps,
        height=args.resolution,
        width=args.resolution,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        device=args.device,
        progress=not args.no_progress,
    )
    patch = esd_variant(
        pipe, esd_config, args.name, base_model=str(args.model), checkpoint_dir=args.checkpoint_dir
    )
    path = registry.save(patch)
    print(f"{path}: {len(patch.weights)} tensors")
    return 0


def _variants(args: argparse.Namespace) -> int:
    from erasure.variants import VariantRegistry, apply_patch

    registry = VariantRegistry(args.variants_dir)
    if args.variants_command == "list":
        for meta in registry.metadata():
            concepts = ", ".join(meta.concepts)
            print(f"{meta.name}\t{meta.method}\t{concepts}\t{meta.base_fingerprint[:12]}")
        return 0
    patch = registry.load(args.name)
    if args.variants_command == "show":
        info = asdict(patch.metadata) | {"tensors": len(patch.weights)}
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    pipe = _load(args.model)
    apply_patch(pipe.unet if getattr(pipe, "unet", None) is not None else pipe.transformer, patch)
    pipe.save_pretrained(str(args.out), safe_serialization=True)
    print(f"{args.out}: {args.model} with variant {args.name!r}")
    return 0
