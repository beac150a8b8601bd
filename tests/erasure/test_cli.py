"""``genguard erase uce|esd`` and ``genguard variants list|show|apply`` through the CLI entry
point, in process, on tiny models saved to disk (SD and FLUX)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from gateway.cli import main
from tests.erasure.tiny_sd import T5_LENGTH, save_tiny_pipeline, tiny_flux_pipeline


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _unet_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "unet" / "diffusion_pytorch_model.safetensors"))


def test_uce_variant_list_show_apply_and_refusal(
    tiny_pipe_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    variants = str(tmp_path / "variants")
    code, out, err = _run(
        capsys,
        *("erase", "uce", "--model", str(tiny_pipe_dir), "--name", "no-cats"),
        *("--erase", "cat", "--guide", "", "--preserve", "dog", "--lam", "0.1"),
        *("--preserve-token-policy", "all", "--variants-dir", variants),
    )
    assert code == 0, err
    assert "12 projections" in out and "max erase residual" in out

    code, out, _ = _run(capsys, "variants", "list", "--variants-dir", variants)
    [line] = out.splitlines()
    assert line.split("\t")[:3] == ["no-cats", "uce", "cat"]

    code, out, _ = _run(capsys, "variants", "show", "no-cats", "--variants-dir", variants)
    shown = json.loads(out)
    assert (shown["method"], shown["concepts"], shown["guide"]) == ("uce", ["cat"], [""])
    assert shown["preserve"] == ["dog"] and shown["lam"] == 0.1 and shown["tensors"] == 12
    assert shown["extra"]["preserve_token_policy"] == "all"
    assert shown["base_model"] == str(tiny_pipe_dir)

    applied = tmp_path / "sd-no-cats"
    code, out, err = _run(
        capsys,
        *("variants", "apply", "no-cats", "--model", str(tiny_pipe_dir)),
        *("--out", str(applied), "--variants-dir", variants),
    )
    assert code == 0, err
    base, edited = _unet_weights(tiny_pipe_dir), _unet_weights(applied)
    patch = load_file(str(tmp_path / "variants" / "no-cats.safetensors"))
    assert all(torch.equal(edited[k], v) for k, v in patch.items())
    untouched = [k for k in base if k not in patch]
    assert untouched and all(torch.equal(edited[k], base[k]) for k in untouched)

    # the same variant on another base model, or on the already edited copy: refused, clearly
    other = save_tiny_pipeline(tmp_path / "other-sd", seed=1)
    for target, why in ((other, "another model"), (applied, "already carries an edit")):
        code, _, err = _run(
            capsys,
            *("variants", "apply", "no-cats", "--model", str(target)),
            *("--out", str(tmp_path / "refused"), "--variants-dir", variants),
        )
        assert code == 1
        assert "variant 'no-cats' was built for base model" in err and why in err
    assert not (tmp_path / "refused").exists()

    code, _, err = _run(capsys, "variants", "show", "nope", "--variants-dir", variants)
    assert code == 1 and "no variant 'nope'" in err and "known: no-cats" in err
    code, _, err = _run(
        capsys, "erase", "uce", "--model", str(tmp_path / "absent"), "--name", "x", "--erase", "a"
    )
    assert code == 1 and "does not exist" in err
    code, _, err = _run(
        capsys, "erase", "uce", "--model", str(tiny_pipe_dir), "--name", "Bad/Name", "--erase", "a"
    )
    assert code == 1 and "invalid variant name" in err


def test_esd_trains_checkpoints_and_saves_a_variant(
    tiny_pipe_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoints = tmp_path / "ckpt"
    code, out, err = _run(
        capsys,
        *("erase", "esd", "--model", str(tiny_pipe_dir), "--name", "esd-cat", "--erase", "cat"),
        *("--method", "esd-x-strict", "--iterations", "2", "--lr", "1e-3", "--ddim-steps", "2"),
        *("--resolution", "64", "--checkpoint-dir", str(checkpoints)),
        *("--variants-dir", str(tmp_path / "variants")),
    )
    assert code == 0, err
    assert "12 tensors" in out and "2/2" in err  # the progress bar
    assert torch.load(checkpoints / "esd.pt", weights_only=True)["step"] == 2
    code, out, _ = _run(
        capsys, "variants", "show", "esd-cat", "--variants-dir", str(tmp_path / "variants")
    )
    assert json.loads(out)["method"] == "esd-x-strict"


def test_uce_on_a_flux_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "tiny-flux"
    pipe: Any = tiny_flux_pipeline(seed=0)
    pipe.save_pretrained(str(model), safe_serialization=True)
    variants = str(tmp_path / "variants")
    code, out, err = _run(
        capsys,
        *("erase", "uce", "--model", str(model), "--name", "flux-no-nudity"),
        *("--erase", "nudity", "--max-sequence-length", str(T5_LENGTH), "--variants-dir", variants),
    )
    assert code == 0, err
    assert "2 projections" in out
    code, out, err = _run(
        capsys,
        *("variants", "apply", "flux-no-nudity", "--model", str(model)),
        *("--out", str(tmp_path / "flux-applied"), "--variants-dir", variants),
    )
    assert code == 0, err
    assert (tmp_path / "flux-applied" / "transformer").is_dir()
