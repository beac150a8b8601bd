"""A tiny, randomly initialised BERT text classifier with a word-level tokenizer, built offline."""

from __future__ import annotations

import json
from pathlib import Path

VOCABULARY = (
    *("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"),
    *("a", "the", "cat", "dog", "nude", "kill", "you", "idiot", "lighthouse", "at", "dawn"),
)
LABELS = ("safe", "toxic", "sexual")


def build_tiny_text_classifier(directory: Path, *, multi_label: bool = False) -> Path:
    """Write a config, random weights and a tokenizer that ``from_pretrained`` loads."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification
    from transformers.utils import logging

    logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(VOCABULARY) + "\n", encoding="utf-8")
    # The vocab_file= constructor silently builds a broken tokenizer in transformers 5; a
    # directory with vocab.txt + tokenizer_config.json loaded by from_pretrained works.
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True}), encoding="utf-8"
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(VOCABULARY),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: index for index, label in enumerate(LABELS)},
        problem_type="multi_label_classification" if multi_label else None,
    )
    BertForSequenceClassification(config).save_pretrained(str(directory))
    return directory
