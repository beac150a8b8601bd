# ruff: noqa: RUF001 - this module writes lookalike characters on purpose
"""The obfuscation attacks that normalisation must undo, as deterministic text transforms.

Used by the test suite and by ``bench/prompt_eval.py`` to turn an unsafe data set into its
obfuscated twin and measure how much recall the attacks cost. Each attack rewrites the longest
words of a prompt (those most likely to carry the harmful term) and leaves the rest alone, the
way a person dodging a filter does.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["ATTACKS", "obfuscate"]

_CYRILLIC = str.maketrans({"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у"})
_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})
_WORD = re.compile(r"[A-Za-z]{4,}")


def _zero_width(word: str) -> str:
    return "\u200b".join(word)


def _homoglyphs(word: str) -> str:
    return word.translate(_CYRILLIC)


def _fullwidth(word: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in word)


def _leetspeak(word: str) -> str:
    return word[0] + word[1:].lower().translate(_LEET)


def _spaced(word: str) -> str:
    return ".".join(word)


def _repeated(word: str) -> str:
    vowels = [i for i, c in enumerate(word) if c.lower() in "aeiou"]
    if not vowels:
        return word
    i = vowels[0]
    return word[:i] + word[i] * 4 + word[i + 1 :]


ATTACKS: dict[str, Callable[[str], str]] = {
    "zero_width": _zero_width,
    "homoglyphs": _homoglyphs,
    "fullwidth": _fullwidth,
    "leetspeak": _leetspeak,
    "spaced_letters": _spaced,
    "repeated_letters": _repeated,
}


def obfuscate(text: str, attack: str, *, words: int = 2) -> str:
    """``text`` with its ``words`` longest words (4+ letters) rewritten by ``attack``."""
    try:
        rewrite = ATTACKS[attack]
    except KeyError:
        raise ValueError(
            f"unknown attack {attack!r}; expected one of: {', '.join(ATTACKS)}"
        ) from None
    matches = sorted(_WORD.finditer(text), key=lambda m: (-len(m.group()), m.start()))[:words]
    targets = sorted((m.span() for m in matches), reverse=True)
    for start, end in targets:
        text = text[:start] + rewrite(text[start:end]) + text[end:]
    return text
