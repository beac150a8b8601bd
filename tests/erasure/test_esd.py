"""ESD end to end on the tiny pipeline on CPU: trains, checkpoints, resumes, packages a patch."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from erasure.errors import ErasureError
from erasure.esd import EsdConfig, esd_train, esd_variant, trainable_keys
from erasure.variants import apply_patch
from tests.erasure.tiny_sd import tiny_pipeline

CONFIG = EsdConfig("cat", iterations=2, lr=1e-3, ddim_steps=2, height=64, width=64)


def test_resuming_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    straight = tiny_pipeline(seed=0)
    patch = esd_variant(straight, CONFIG, "esd-cat", checkpoint_dir=tmp_path / "a")
    assert all(".attn2." in k for k in patch.weights)
    interrupted = tiny_pipeline(seed=0)
    first = replace(CONFIG, iterations=1)
    esd_train(interrupted, first, tmp_path / "b")
    assert torch.load(tmp_path / "b" / "esd.pt", weights_only=True)["step"] == 1
    resumed = tiny_pipeline(seed=0)
    esd_train(resumed, CONFIG, tmp_path / "b")
    state = resumed.unet.state_dict()
    for key, tensor in patch.weights.items():
        assert torch.allclose(state[key], tensor, atol=1e-6), key
    base = tiny_pipeline(seed=0)
    changed = sum(not torch.equal(base.unet.state_dict()[k], v) for k, v in patch.weights.items())
    assert changed > 0
    apply_patch(base.unet, patch)  # the patch applies to the untouched base model


def test_esd_u_selects_everything_but_cross_attention() -> None:
    unet = tiny_pipeline(seed=0).unet
    keys = trainable_keys(unet, "esd-u")
    assert keys and not any(".attn2." in k for k in keys)
    with pytest.raises(ErasureError, match="unknown ESD method"):
        trainable_keys(unet, "esd-z")


def test_progress_bar_and_a_foreign_checkpoint_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    esd_train(tiny_pipeline(seed=0), replace(CONFIG, iterations=1), tmp_path)
    bar = capsys.readouterr().err
    assert "esd esd-x 'cat'" in bar and "1/1" in bar and "loss=" in bar
    other = replace(CONFIG, concept="dog")
    with pytest.raises(ErasureError, match="written by another ESD run"):
        esd_train(tiny_pipeline(seed=0), other, tmp_path)
    longer = replace(CONFIG, iterations=2, progress=False)
    esd_train(tiny_pipeline(seed=0), longer, tmp_path)  # more iterations: resumes
    assert torch.load(tmp_path / "esd.pt", weights_only=True)["step"] == 2
    assert capsys.readouterr().err == ""
