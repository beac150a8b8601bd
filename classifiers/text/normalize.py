"""Prompt normalisation: undo the tricks people use to slip words past a term list.

``normalize_prompt`` returns several *views* of one prompt, from the most literal to the most
aggressive, so a matcher can tell "the prompt says it" from "the prompt hides it":

``plain``
    NFC, casefolded, diacritics stripped, whitespace collapsed: what a reader sees.
``canonical``
    ``plain`` plus the Unicode tricks undone: zero-width, bidi and control characters removed,
    NFKC (fullwidth and mathematical alphanumerics become ASCII), homoglyphs from Cyrillic,
    Greek and Armenian mapped to Latin (only where the text is Latin with intruders, see
    ``_map_homoglyphs``).
``deobfuscated``
    ``canonical`` with letters spelled out one by one joined ("s.e.x", "s e x" -> "sex") and
    leetspeak read as letters inside words ("s3x", "$ex" -> "sex"; a lone "4" stays "4").
``squeezed``
    ``deobfuscated`` with runs of three or more equal letters cut to one and to two
    ("seeeex" -> "sex", "asssss" -> "ass"); empty when there are no such runs.

Nothing here can turn ordinary text into a false hit in ``plain`` or ``canonical``: the
guessing (leetspeak, joining, squeezing) happens only in the later views.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from classifiers.text.confusables import (
    CONTROL_CHARACTERS,
    FOREIGN_LOOKALIKES,
    FOREIGN_SCRIPT_LETTER,
    INVISIBLE_CHARACTERS,
    LATIN_LOOKALIKES,
    LEET_CHARACTERS,
    LEETSPEAK,
    NON_STRICT_FOREIGN_LETTER,
)

__all__ = ["NormalizedPrompt", "normalize_prompt", "text_for_embedding"]

_WHITESPACE = re.compile(r"\s+")
# Combining diacritical marks (Latin, Greek, Cyrillic). Marks of Indic and other scripts are
# part of their letters and are kept.
_DIACRITICS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_LATIN_LETTER = re.compile("[A-Za-z]")
_WORD = re.compile(r"[^\W\d_]+")
_LEET_SYMBOL = re.compile(f"[{re.escape(LEET_CHARACTERS)}]")
# A token that may carry leetspeak: a run of letters, digits and leet symbols. Symbols that end
# the run are punctuation ("hello!"), not letters; ``_read_leetspeak`` leaves them alone.
_LEET_TOKEN = re.compile(rf"[\w{re.escape(LEET_CHARACTERS)}]+")
_LEET_PUNCTUATION = "".join(c for c in LEET_CHARACTERS if not re.match(r"\w", c))
_LETTER = re.compile(r"[^\W\d_]")
# Three or more single characters (letters, digits, leet symbols) separated, the same way each
# time, by dots, dashes, underscores, asterisks, slashes or spaces: "s.e.x", "s e x", "s-3-x".
# Requiring the same separator keeps "a s.e.x" apart as "a sex".
_UNIT = rf"(?:[^\W_]|[{re.escape(LEET_CHARACTERS)}])"
_SEPARATOR = r"(?:\s*[._\-*/·•]\s*|\s+)"
_SPACED_LETTERS = re.compile(
    rf"(?<![^\W_]){_UNIT}(?P<separator>{_SEPARATOR}){_UNIT}(?:(?P=separator){_UNIT})+(?![^\W_])"
)
# Single-letter English words that often precede a spelled-out word: "a s e x scene".
_SINGLE_LETTER_WORDS = frozenset({"a", "i"})
_REPEATED_LETTER = re.compile(r"([^\W\d_])\1{2,}")


@dataclass(frozen=True, slots=True)
class NormalizedPrompt:
    """One prompt in several views; ``transformations`` names what normalisation changed."""

    original: str
    plain: str
    canonical: str
    deobfuscated: str
    squeezed: tuple[str, ...]
    transformations: tuple[str, ...]

    @property
    def named_views(self) -> tuple[tuple[str, str], ...]:
        """``(view name, text)`` pairs, most literal first, each text only once."""
        seen: set[str] = set()
        views: list[tuple[str, str]] = []
        candidates = [
            ("plain", self.plain),
            ("canonical", self.canonical),
            ("deobfuscated", self.deobfuscated),
            *(("squeezed", text) for text in self.squeezed),
        ]
        for name, text in candidates:
            if text not in seen:
                seen.add(text)
                views.append((name, text))
        return tuple(views)

    @property
    def views(self) -> tuple[str, ...]:
        """The distinct texts to match against, most literal first."""
        return tuple(text for _, text in self.named_views)


def normalize_prompt(text: str) -> NormalizedPrompt:
    """Normalise ``text`` into the views described in the module docstring."""
    changes: list[str] = []
    plain = _plain(text)
    canonical = _canonical(text, changes)
    deobfuscated = _deobfuscate(canonical, changes)
    squeezed: tuple[str, ...] = ()
    if _REPEATED_LETTER.search(deobfuscated):
        changes.append("repeats_squeezed")
        squeezed = (
            _REPEATED_LETTER.sub(r"\1", deobfuscated),
            _REPEATED_LETTER.sub(r"\1\1", deobfuscated),
        )
    return NormalizedPrompt(
        original=text,
        plain=plain,
        canonical=canonical,
        deobfuscated=deobfuscated,
        squeezed=squeezed,
        transformations=tuple(changes),
    )


def text_for_embedding(text: str) -> tuple[str, str]:
    """``(view name, text)`` that a sentence-embedding classifier should read.

    The prompt as written, unless normalisation had to undo obfuscation: then only the most
    de-obfuscated view. Embedding the obfuscated text as well would feed the model token soup
    ("3l3ph4n7"), whose embedding lands anywhere, so benign obfuscated prompts could score high.
    """
    prompt = normalize_prompt(text)
    clear = prompt.squeezed[0] if prompt.squeezed else prompt.deobfuscated
    if clear != prompt.plain:
        return "de-obfuscated", clear
    return "original", text


def _collapse_whitespace(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _strip_diacritics(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", _DIACRITICS.sub("", decomposed))


def _plain(text: str) -> str:
    if text.isascii():
        return _collapse_whitespace(text.casefold())
    folded = unicodedata.normalize("NFC", text).casefold()
    return _collapse_whitespace(_strip_diacritics(folded))


def _canonical(text: str, changes: list[str]) -> str:
    result = text
    if not result.isascii():
        result, removed = INVISIBLE_CHARACTERS.subn("", result)
        if removed:
            changes.append("zero_width_removed")
    result, removed = CONTROL_CHARACTERS.subn("", result)
    if removed:
        changes.append("control_removed")
    if result.isascii():
        return _collapse_whitespace(result.casefold())

    composed = unicodedata.normalize("NFC", result)
    compatible = unicodedata.normalize("NFKC", composed)
    if compatible != composed:
        changes.append("compatibility_mapped")
    stripped = _strip_diacritics(compatible)
    if stripped != compatible:
        changes.append("diacritics_stripped")
    mapped = _map_homoglyphs(stripped)
    if mapped != stripped:
        changes.append("homoglyphs_mapped")
    return _collapse_whitespace(mapped.casefold())


def _map_homoglyphs(text: str) -> str:
    """Map lookalike letters in cased ``text`` to Latin where the text is Latin with intruders.

    Latin-script lookalikes (dotless i, script a, …) are always mapped. Greek, Cyrillic and
    Armenian lookalikes are mapped throughout when Latin letters are at least as many as the
    letters of those scripts, or when every such letter is a near-identical twin of a Latin
    letter (a Latin word spelt entirely in Cyrillic lookalikes). Otherwise the text is genuinely
    written in one of those scripts, and only words that mix it with Latin letters are mapped.
    """
    text = text.translate(LATIN_LOOKALIKES)
    foreign = len(FOREIGN_SCRIPT_LETTER.findall(text))
    if not foreign:
        return text
    latin = len(_LATIN_LETTER.findall(text))
    if latin >= foreign or not NON_STRICT_FOREIGN_LETTER.search(text):
        return text.translate(FOREIGN_LOOKALIKES)
    return _WORD.sub(_map_mixed_word, text)


def _map_mixed_word(match: re.Match[str]) -> str:
    word = match.group()
    if _LATIN_LETTER.search(word) and FOREIGN_SCRIPT_LETTER.search(word):
        return word.translate(FOREIGN_LOOKALIKES)
    return word


def _deobfuscate(canonical: str, changes: list[str]) -> str:
    result = _SPACED_LETTERS.sub(_join_spaced_letters, canonical)
    if result != canonical:
        changes.append("spaced_letters_joined")
    if _LEET_SYMBOL.search(result):
        leet = _LEET_TOKEN.sub(_read_leetspeak, result)
        if leet != result:
            changes.append("leetspeak_mapped")
            result = leet
    return result


def _join_spaced_letters(match: re.Match[str]) -> str:
    run = match.group()
    separator = match.group("separator")
    units = run.split(separator)
    # At least two real letters: "1 2 3" and "4 . 5 . 5" are numbers, not spelled words.
    if sum(1 for unit in units if _LETTER.match(unit)) < 2:
        return run
    # "a s e x" is more likely "a sex" than "asex"; "a s s" (three units) stays "ass".
    if separator.isspace() and len(units) >= 4 and units[0] in _SINGLE_LETTER_WORDS:
        return units[0] + " " + "".join(units[1:])
    return "".join(units)


def _read_leetspeak(match: re.Match[str]) -> str:
    token = match.group()
    word = token.rstrip(_LEET_PUNCTUATION)
    if not _LETTER.search(word):
        return token
    return word.translate(LEETSPEAK) + token[len(word) :]
