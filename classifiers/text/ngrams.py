"""Hashed word and character n-grams of a prompt: the prompt head's lexical features.

A sentence embedding blurs the words that decide harm ("kill a *process*" / "kill a *person*",
"gays are *welcome*" / "gays are *vermin*"); n-grams keep them. The features need no vocabulary
file: every n-gram is hashed (CRC-32, stable across platforms and Python versions) into one of
``buckets`` slots, with a sign from a second bit so that collisions tend to cancel.

The prompt is read in its clearest normalised view (casefolded, homoglyphs and leetspeak undone,
spaced and repeated letters joined), the same for training and inference, so an obfuscated
prompt produces the n-grams of its clean twin. Two blocks, each L2-normalised on its own:

- words: unigrams and bigrams of the word tokens;
- characters: 3- to 5-grams inside each word padded with spaces (robust to a dropped or
  swapped letter: "f*gs" and "fgas" still share most of their grams with the real word).

``hashed_ngrams`` returns the non-zero ``(indices, values)`` of one prompt; the caller adds the
weights at those indices (``HashedNgramFeatures.dot``), so inference never builds a dense vector.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from classifiers.text.normalize import normalize_prompt

__all__ = ["NgramSpec", "clear_view", "hashed_ngrams"]

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_SIGN_BIT = 1 << 31
_NEGATIONS = frozenset(
    {"not", "no", "never", "nothing", "nobody", "none", "neither", "nor", "without", "cannot"}
)


@dataclass(frozen=True, slots=True)
class NgramSpec:
    """How a prompt becomes hashed n-grams; stored beside the weights that were trained on it."""

    buckets: int = 1 << 18
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (3, 5)
    # block scales: the word and character blocks each have unit L2 norm before scaling
    word_scale: float = 1.0
    char_scale: float = 1.0
    # words within ``negation_window`` after a negation ("not", "never", "don't", ...) also
    # count as "not <word>" unigrams; 0 turns this off
    negation_window: int = 0

    def __post_init__(self) -> None:
        if self.buckets < 2 or self.buckets & (self.buckets - 1):
            raise ValueError(f"buckets must be a power of two, got {self.buckets}")
        for low, high in (self.word_ngrams, self.char_ngrams):
            if not 1 <= low <= high <= 8:
                raise ValueError(f"n-gram range must satisfy 1 <= low <= high <= 8: {low, high}")

    def as_array(self) -> NDArray[np.float64]:
        return np.array(
            [
                self.buckets,
                *self.word_ngrams,
                *self.char_ngrams,
                self.word_scale,
                self.char_scale,
                self.negation_window,
            ],
            dtype=np.float64,
        )

    @classmethod
    def from_array(cls, values: NDArray[np.float64]) -> NgramSpec:
        if values.shape != (8,):
            raise ValueError(f"an n-gram spec has 8 numbers, got shape {values.shape}")
        buckets, w_low, w_high, c_low, c_high, word_scale, char_scale, window = values.tolist()
        return cls(
            buckets=int(buckets),
            word_ngrams=(int(w_low), int(w_high)),
            char_ngrams=(int(c_low), int(c_high)),
            word_scale=float(word_scale),
            char_scale=float(char_scale),
            negation_window=int(window),
        )


def clear_view(text: str) -> str:
    """The most de-obfuscated view of ``text`` (casefolded): what the n-grams are taken from."""
    prompt = normalize_prompt(text)
    return prompt.squeezed[0] if prompt.squeezed else prompt.deobfuscated


def _negated(words: list[str], window: int) -> set[str]:
    grams: set[str] = set()
    for index, word in enumerate(words):
        if word in _NEGATIONS or word.endswith("n't"):
            for follower in words[index + 1 : index + 1 + window]:
                grams.add("n " + follower)
    return grams


def hashed_ngrams(text: str, spec: NgramSpec) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The non-zero hashed features of ``text``: bucket indices (unique, sorted) and values."""
    words = _WORD.findall(clear_view(text))
    word_grams: set[str] = set()
    low, high = spec.word_ngrams
    for n in range(low, high + 1):
        for start in range(len(words) - n + 1):
            word_grams.add("w " + " ".join(words[start : start + n]))
    if spec.negation_window:
        word_grams.update(_negated(words, spec.negation_window))
    char_grams: set[str] = set()
    low, high = spec.char_ngrams
    for word in set(words):
        padded = f" {word} "
        for n in range(low, high + 1):
            for start in range(len(padded) - n + 1):
                char_grams.add("c" + padded[start : start + n])
    features: dict[int, float] = {}
    for grams, scale in ((word_grams, spec.word_scale), (char_grams, spec.char_scale)):
        if not grams or not scale:
            continue
        value = scale / np.sqrt(len(grams))
        for gram in grams:
            digest = zlib.crc32(gram.encode("utf-8"))
            index = digest & (spec.buckets - 1)
            signed = value if digest & _SIGN_BIT else -value
            features[index] = features.get(index, 0.0) + signed
    indices = np.array(sorted(features), dtype=np.int64)
    values = np.array([features[i] for i in indices.tolist()], dtype=np.float64)
    return indices, values
