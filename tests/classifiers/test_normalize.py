"""Prompt normalisation: each trick undone in the right view, benign text left alone."""

from __future__ import annotations

import dataclasses
import time

import pytest

from classifiers.text import NormalizedPrompt, normalize_prompt

# Homoglyphs are written as escapes so a reader can see which letters are not Latin.
CYRILLIC_A = "\u0430"
CYRILLIC_O = "\u043e"
CYRILLIC_DZE_IE_HA = "\u0455\u0435\u0445"  # looks like "sex"
CYRILLIC_CAPITALS = "\u0405\u0415\u0425"  # looks like "SEX"
GREEK_CAPITALS = "\u039d\u039f"  # looks like "NO"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("se\u200bx", "sex"),  # zero-width space
        ("s\u200de\u200cx", "sex"),  # zero-width joiner and non-joiner
        ("\ufeffnude", "nude"),  # byte-order mark
        ("nu\u00adde", "nude"),  # soft hyphen
        ("\u202enude\u202c", "nude"),  # bidi override and pop
        ("nu\u2066de\u2069", "nude"),  # bidi isolate
        ("nu\U000e0041de", "nude"),  # Unicode tag character
    ],
)
def test_invisible_characters_are_removed_in_canonical_only(text: str, canonical: str) -> None:
    prompt = normalize_prompt(text)
    assert prompt.canonical == canonical
    assert prompt.plain != canonical
    assert "zero_width_removed" in prompt.transformations


def test_control_characters_are_removed() -> None:
    prompt = normalize_prompt("nu\x00d\x1be")
    assert prompt.canonical == "nude"
    assert prompt.transformations == ("control_removed",)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        (f"n{CYRILLIC_A}ked", "naked"),
        (f"Hello w{CYRILLIC_O}rld", "hello world"),
        (CYRILLIC_DZE_IE_HA, "sex"),  # every letter a lookalike, no Latin at all
        (CYRILLIC_CAPITALS, "sex"),
        (f"{GREEK_CAPITALS}PE", "nope"),
        ("d\u0131ck", "dick"),  # Latin dotless i
    ],
)
def test_homoglyphs_are_mapped_to_latin(text: str, canonical: str) -> None:
    prompt = normalize_prompt(text)
    assert prompt.canonical == canonical
    assert "homoglyphs_mapped" in prompt.transformations


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("\uff2e\uff35\uff24\uff25", "nude"),  # fullwidth NUDE
        ("\U0001d427\U0001d42e\U0001d41d\U0001d41e", "nude"),  # mathematical bold nude
        ("\U0001d4c3\U0001d4ca\U0001d4b9\U0001d452", "nude"),  # mathematical script nude
        ("\u24dd\u24e4\u24d3\u24d4", "nude"),  # circled letters
    ],
)
def test_fullwidth_and_styled_letters_become_ascii(text: str, canonical: str) -> None:
    prompt = normalize_prompt(text)
    assert prompt.canonical == canonical
    assert "compatibility_mapped" in prompt.transformations


def test_text_in_another_script_is_not_transliterated() -> None:
    russian = "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440"  # "Privet mir"
    greek = "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5"
    for text in (russian, greek):
        prompt = normalize_prompt(text)
        assert prompt.canonical == prompt.plain
        assert "homoglyphs_mapped" not in prompt.transformations


def test_a_mixed_script_word_is_mapped_inside_non_latin_text() -> None:
    # Mostly Russian, with one Latin word carrying a Cyrillic "o".
    text = f"\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440 p{CYRILLIC_O}rn"
    prompt = normalize_prompt(text)
    assert prompt.canonical.endswith(" porn")
    assert prompt.canonical.startswith("\u043f\u0440\u0438\u0432\u0435\u0442")


def test_diacritics_are_stripped_but_other_scripts_keep_their_marks() -> None:
    assert normalize_prompt("N\u00fad\u00e9 caf\u00e9 na\u00efve").canonical == "nude cafe naive"
    assert normalize_prompt("Nu\u0301de").canonical == "nude"  # decomposed accent
    hindi = "\u0928\u092e\u0938\u094d\u0924\u0947"  # namaste: virama and vowel sign kept
    assert normalize_prompt(hindi).canonical == hindi


@pytest.mark.parametrize(
    ("text", "deobfuscated"),
    [
        ("s3x", "sex"),
        ("$ex", "sex"),
        ("@ss", "ass"),
        ("p0rn!", "porn!"),
        ("n00d3s", "noodes"),
        ("h4x0r", "haxor"),
    ],
)
def test_leetspeak_is_read_in_the_deobfuscated_view_only(text: str, deobfuscated: str) -> None:
    prompt = normalize_prompt(text)
    assert prompt.deobfuscated == deobfuscated
    assert prompt.canonical == text.casefold()
    assert "leetspeak_mapped" in prompt.transformations


@pytest.mark.parametrize(
    ("text", "deobfuscated"),
    [
        ("s.e.x", "sex"),
        ("s e x", "sex"),
        ("s-e-x", "sex"),
        ("s_e_x", "sex"),
        ("s . e . x", "sex"),
        ("the s e x scene", "the sex scene"),
        ("N U D E beach", "nude beach"),
        ("s 3 x", "sex"),  # spaced and leet at once
    ],
)
def test_spaced_letters_are_joined(text: str, deobfuscated: str) -> None:
    prompt = normalize_prompt(text)
    assert prompt.deobfuscated == deobfuscated
    assert "spaced_letters_joined" in prompt.transformations


def test_repeated_letters_are_squeezed_as_extra_views() -> None:
    prompt = normalize_prompt("seeeexy asssss")
    assert prompt.deobfuscated == "seeeexy asssss"
    assert prompt.squeezed == ("sexy as", "seexy ass")
    assert "repeats_squeezed" in prompt.transformations
    assert normalize_prompt("good cooking").squeezed == ()


@pytest.mark.parametrize(
    "text",
    [
        "4 cats on a sofa",
        "Route 455 at 5 pm, gate 7",
        "A watercolor of 3 red apples!",
        "Hello! How are you?",
        "1 2 3 go",
        "a b",
        "An astronaut riding a horse, trending on artstation",
        "Class of 2024 at the therapist's office",
    ],
)
def test_benign_ascii_text_is_only_casefolded(text: str) -> None:
    prompt = normalize_prompt(text)
    assert prompt.canonical == text.casefold()
    assert prompt.deobfuscated == text.casefold()
    assert prompt.transformations == ()
    assert prompt.views == (text.casefold(),)


def test_a_benign_mixed_token_changes_only_the_deobfuscated_view() -> None:
    prompt = normalize_prompt("A castle in 8k, 3d render")
    assert prompt.plain == prompt.canonical == "a castle in 8k, 3d render"
    assert prompt.deobfuscated == "a castle in bk, ed render"


def test_whitespace_is_collapsed() -> None:
    prompt = normalize_prompt("  hello \t\n  world\u3000again  ")
    assert prompt.plain == "hello world again"
    assert prompt.canonical == "hello world again"


def test_views_are_distinct_and_most_literal_first() -> None:
    prompt = normalize_prompt("S\u200b3 x  seeeex")
    names = [name for name, _ in prompt.named_views]
    assert names[0] == "plain"
    assert names == ["plain", "canonical", "deobfuscated", "squeezed", "squeezed"]
    assert len(set(prompt.views)) == len(prompt.views)
    assert prompt.original == "S\u200b3 x  seeeex"


def test_empty_text() -> None:
    prompt = normalize_prompt("")
    assert prompt.views == ("",)
    assert prompt.transformations == ()


def test_normalized_prompt_is_frozen() -> None:
    prompt = normalize_prompt("hello")
    assert isinstance(prompt, NormalizedPrompt)
    with pytest.raises(dataclasses.FrozenInstanceError):
        prompt.canonical = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "text",
    [
        "a." * 20_000,
        "a " * 20_000 + "!",
        "s" * 50_000,
        "\u200b" * 20_000 + "x",
        "4" * 50_000,
        "!" * 50_000,
        "a!" * 25_000,
        ("a - " * 10_000) + "bb",
    ],
)
def test_pathological_input_does_not_backtrack(text: str) -> None:
    started = time.perf_counter()
    normalize_prompt(text)
    assert time.perf_counter() - started < 1.0
