"""Tiny random Stable Diffusion and FLUX pipelines, built offline (no hub), for erasure and
generator tests.

The CLIP tokenizer is character-level: the 256 byte-to-unicode characters, their ``</w>`` forms,
BOS and EOS (514 entries), no merges. The T5 tokenizer is character-level too (printable ASCII,
``</s>`` appended, ``<pad>`` = 0), built with ``tokenizers``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def _bytes_to_unicode() -> list[str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def tiny_tokenizer(max_length: int = 32) -> Any:
    from transformers import CLIPTokenizer

    chars = _bytes_to_unicode()
    tokens = [*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    tokenizer.model_max_length = max_length
    return tokenizer


def tiny_clip_encoder(tokenizer: Any, hidden: int = 32) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            hidden_size=hidden,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            vocab_size=len(tokenizer),
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )


def tiny_pipeline(seed: int = 0, *, text_dim: int = 32, max_length: int = 32) -> Any:
    """A random SD 1.x-shaped pipeline: 12 cross-attention K/V projections of (64, text_dim)."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=text_dim,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=8,
    )
    tokenizer = tiny_tokenizer(max_length)
    text_encoder = tiny_clip_encoder(tokenizer, text_dim)
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_pipeline(path: Path, seed: int = 0, **kwargs: int) -> Path:
    tiny_pipeline(seed, **kwargs).save_pretrained(str(path), safe_serialization=True)
    return path


def tiny_t5_tokenizer(max_length: int = 24) -> Any:
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = [chr(c) for c in range(32, 127)]
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{c: i + 3 for i, c in enumerate(chars)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=max_length,
    )


def tiny_t5_encoder(tokenizer: Any, d_model: int = 48) -> Any:
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return T5EncoderModel(config).eval()  # as from_pretrained leaves it: no dropout


T5_LENGTH = 24


def tiny_flux_pipeline(seed: int = 0) -> Any:
    """A random FLUX-shaped pipeline: ``context_embedder`` (T5 48 → 32) and the pooled-text
    projection (CLIP 32 → 32), both with a bias; one joint and one single block."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
    )

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=48,
        pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8],
    )
    clip_tokenizer = tiny_tokenizer(32)
    t5_tokenizer = tiny_t5_tokenizer(T5_LENGTH)
    vae = AutoencoderKL(
        block_out_channels=[32],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D"],
        latent_channels=1,
        norm_num_groups=8,
    )
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=tiny_clip_encoder(clip_tokenizer, 32),
        tokenizer=clip_tokenizer,
        text_encoder_2=tiny_t5_encoder(t5_tokenizer, 48),
        tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )
