"""A tiny, randomly initialised open_clip model registered under its own name, built offline."""

from __future__ import annotations

import json
from pathlib import Path

TINY_CLIP = "genguard-tiny-clip"
_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def build_tiny_clip(directory: Path) -> tuple[str, Path]:
    """Register the tiny architecture and save random weights; (architecture, checkpoint)."""
    import open_clip
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    config = directory / f"{TINY_CLIP}.json"
    config.write_text(json.dumps(_CONFIG), encoding="utf-8")
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_CLIP, pretrained=None)
    weights = directory / "tiny-clip.pt"
    torch.save(model.state_dict(), weights)
    return TINY_CLIP, weights


def build_tiny_head(directory: Path, dimensions: int = 32) -> Path:
    """A LAION-style MLP head (Linear, ReLU, Dropout, Linear) saved as a state dict."""
    import torch

    torch.manual_seed(1)
    head = torch.nn.Sequential(
        torch.nn.Linear(dimensions, 16),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(16, 1),
    )
    path = directory / "head.pt"
    torch.save(head.state_dict(), path)
    return path
