# ruff: noqa: RUF001, RUF003 - this module *is* the table of ambiguous characters
"""Character tables used by prompt normalisation: invisible characters, homoglyphs, leetspeak.

The tables are written by hand for GenGuard (not taken from Unicode's ``confusables.txt``): they
hold the letters that attackers actually swap into Latin words, and nothing that would make
ordinary text in another script read as English by accident. ``normalize.py`` decides *when* a
table applies; this module only says *what* maps to what.
"""

from __future__ import annotations

import re

__all__ = [
    "CONTROL_CHARACTERS",
    "FOREIGN_LOOKALIKES",
    "FOREIGN_SCRIPT_LETTER",
    "INVISIBLE_CHARACTERS",
    "LATIN_LOOKALIKES",
    "LEETSPEAK",
    "LEET_CHARACTERS",
    "NON_STRICT_FOREIGN_LETTER",
    "STRICT_LOOKALIKES",
]

# Format characters that render as nothing: zero-width space/joiners, bidi embeddings, overrides
# and isolates, word joiner and invisible operators, soft hyphen, combining grapheme joiner,
# Mongolian and Khmer invisible vowels, Hangul fillers, variation selectors, byte-order mark,
# interlinear annotation marks and Unicode tag characters.
INVISIBLE_CHARACTERS = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb"
    "\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)

# C0 and C1 control characters except the whitespace ones (tab, line feed, vertical tab,
# form feed, carriage return), which whitespace collapsing turns into a space.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")

# Letters of scripts whose glyphs are routinely swapped into Latin words (Greek, Cyrillic,
# Armenian). Used to decide whether the text is Latin with a few intruders or genuinely
# written in one of these scripts.
_FOREIGN_RANGES = "\u0370-\u03ff\u0400-\u052f\u0531-\u058f\u1f00-\u1fff"
FOREIGN_SCRIPT_LETTER = re.compile(f"[{_FOREIGN_RANGES}]")


def _table(pairs: str) -> dict[int, str]:
    """Build a ``str.translate`` table from space-separated ``<lookalike><latin>`` pairs."""
    table: dict[int, str] = {}
    for pair in pairs.split():
        lookalike, latin = pair[0], pair[1:]
        if ord(lookalike) in table:  # pragma: no cover - guards the literals below
            raise AssertionError(f"duplicate lookalike {lookalike!r}")
        table[ord(lookalike)] = latin
    return table


# Cyrillic, Greek and Armenian letters (without diacritics: normalisation strips marks first)
# that look like a Latin letter in common fonts. Case matters: Greek "Η" looks like "H" but
# "η" like "n", so the table maps cased text and normalisation casefolds afterwards.
FOREIGN_LOOKALIKES: dict[int, str] = _table(
    # Cyrillic
    "АA ВB ЕE КK МM НH ОO РP СC ТT УY ХX ЅS ІI ЈJ ҺH ӀI ԚQ ԜW ҮY ѴV"
    " аa вb гr еe иu кk мm нh оo пn рp сc тt уy хx ьb ѕs іi јj ѡw ѵv ґr һh ӏl ԁd ԛq ԝw"
    " үy ұy ҡk ҫc"
    # Greek
    " ΑA ΒB ΕE ΖZ ΗH ΙI ΚK ΜM ΝN ΟO ΡP ΤT ΥY ΧX ϹC ϿJ"
    " αa βb γy εe ηn ιi κk μu νv οo ρp σo ςc τt υu χx ωw ϲc ϳj ϱp ϵe"
    # Armenian
    " ՕO ՍU աw բp գq դn եe զq հh յj նu ոn ռn սu ցg քp օo ֆf"
)

# The lookalikes that are near-identical to a Latin letter in their own case. A text written
# only in these ("ЅЕХ", "ѕех") is treated as disguised Latin even with no Latin letter in it;
# a genuine Russian or Greek word almost always contains a letter outside this set.
STRICT_LOOKALIKES = "АВЕКМНОРСТУХЅІЈҺӀԚԜҮаеорсухѕіјһӏԁԛԝүΑΒΕΖΗΙΚΜΝΟΡΤΥΧοινραՕՍօսհ"

NON_STRICT_FOREIGN_LETTER = re.compile(f"(?![{STRICT_LOOKALIKES}])[{_FOREIGN_RANGES}]")

# Latin-script lookalikes (IPA and historic letters) that NFKC leaves alone. Always mapped: they
# cannot belong to a word of another script.
LATIN_LOOKALIKES: dict[int, str] = _table(
    "ıi ȷj ɑa ɐa ɒa ƅb ɓb ƈc ɕc ɗd ɖd ɛe ɘe ǝe ɡg ɢg ɦh ɩi ɪi ʝj ĸk ʟl ɫl ɭl ɱm ɴn ɲn"
    " ɵo ɔo ƿp ʀr ʁr ʂs ʃs ƫt ʈt ʊu ʋv ʌv ʍw ʏy ƴy ʐz ʑz ȥz"
)

# Digits and symbols read as letters in leetspeak. Applied only inside tokens that also contain
# a letter, so "4 cats" and "route 455" stay as they are.
LEETSPEAK: dict[int, str] = {
    ord(symbol): letter
    for symbol, letter in {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "6": "g",
        "7": "t",
        "8": "b",
        "9": "g",
        "@": "a",
        "$": "s",
        "€": "e",
        "!": "i",
        "|": "l",
        "+": "t",
    }.items()
}
LEET_CHARACTERS = "".join(chr(code) for code in LEETSPEAK)
