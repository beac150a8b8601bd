"""A tiny, randomly initialised Whisper checkpoint built offline, in the layout of a real one.

``build_tiny_whisper`` writes what a transformers Whisper directory holds (``config.json``,
weights, ``generation_config.json``, ``preprocessor_config.json``, ``tokenizer.json``) with a
byte-level BPE tokenizer trained here on one sentence plus Whisper's special tokens, so every
loading and decoding step is the real one; its transcripts are noise. ``convert_for_faster_whisper``
converts it with CTranslate2's converter, as ``ct2-transformers-converter`` would.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
)
TIMESTAMP_TOKENS = 64  # the vocabulary ends with timestamp tokens, as in Whisper
CORPUS = ["the quick brown fox jumps over the lazy dog while the band plays on"] * 8


def build_tiny_whisper(directory: Path, *, multilingual: bool = False) -> Path:
    """Save the tiny checkpoint into ``directory`` and return it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        GenerationConfig,
        PreTrainedTokenizerFast,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
    )

    directory.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(CORPUS, trainer)
    bpe.add_special_tokens(list(SPECIAL_TOKENS))
    ids = {token: bpe.token_to_id(token) for token in SPECIAL_TOKENS}
    end = "<|endoftext|>"
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=end,
        eos_token=end,
        unk_token=end,
        pad_token=end,
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
    )
    tokenizer.save_pretrained(directory)

    special = {
        "decoder_start_token_id": ids["<|startoftranscript|>"],
        "bos_token_id": ids[end],
        "eos_token_id": ids[end],
        "pad_token_id": ids[end],
    }
    config = WhisperConfig(
        vocab_size=bpe.get_vocab_size() + TIMESTAMP_TOKENS,
        num_mel_bins=80,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_source_positions=1500,  # 30 s of 10 ms frames after the stride-2 convolution
        max_target_positions=448,
        begin_suppress_tokens=[],
        suppress_tokens=[],
        **special,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    generation = GenerationConfig(
        **special,
        no_timestamps_token_id=ids["<|notimestamps|>"],
        max_length=448,
        suppress_tokens=[],
        begin_suppress_tokens=[],
        is_multilingual=multilingual,
    )
    if multilingual:
        generation.lang_to_id = {"<|en|>": ids["<|en|>"]}
        generation.task_to_id = {
            "transcribe": ids["<|transcribe|>"],
            "translate": ids["<|translate|>"],
        }
    model.generation_config = generation
    model.save_pretrained(directory)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(directory)
    return directory


def convert_for_faster_whisper(checkpoint: Path, directory: Path) -> Path:
    """The CTranslate2 conversion of ``checkpoint`` with its tokenizer and preprocessor copied."""
    from ctranslate2.converters import TransformersConverter

    converter = TransformersConverter(
        str(checkpoint), copy_files=["tokenizer.json", "preprocessor_config.json"]
    )
    converter.convert(str(directory), quantization="int8", force=True)
    return directory
