"""Prompt privacy modes: full, redacted (PII and listed names masked), omitted (hash only)."""

from __future__ import annotations

import hashlib

from audit.privacy import private_input, redact


def test_redact_masks_emails_urls_cards_phones_and_listed_names() -> None:
    text = (
        "Ask Jane Doe (jane.doe@example.org, +44 20 7946 0958) to pay with 4111 1111 1111 1111 "
        "see https://example.org/x; jane doe again"
    )
    redaction = redact(text, names=["Jane Doe"])
    assert redaction.text == (
        "Ask [name] ([email], [phone]) to pay with [card] see [url] [name] again"
    )
    assert redaction.masked == 6


def test_a_number_that_fails_luhn_is_not_called_a_card_and_short_numbers_stay() -> None:
    assert redact("order 4111 1111 1111 1112 of 12 items").text == "order [number] of 12 items"


def test_names_match_whole_words_only() -> None:
    assert redact("Annabel and Ann", names=["Ann"]).text == "Annabel and [name]"


def test_full_mode_keeps_everything_and_erases_nothing() -> None:
    private = private_input("mail a@b.co", mode="full", params={"negative_prompt": "a@b.co"})
    assert private.input.prompt == "mail a@b.co"
    assert private.input.params == {"negative_prompt": "a@b.co"}
    assert private.erased == []


def test_redacted_mode_lists_what_it_masked_as_json_pointers() -> None:
    private = private_input(
        "draw Bob at bob@x.io",
        mode="redacted",
        params={"negative_prompt": "no Bob", "size": "512x512", "user": "clean"},
        names=["Bob"],
    )
    assert private.input.prompt == "draw [name] at [email]"
    assert private.input.params == {
        "negative_prompt": "no [name]",
        "size": "512x512",
        "user": "clean",
    }
    assert private.erased == ["/input/prompt", "/input/params/negative_prompt"]


def test_omitted_mode_keeps_only_the_hash_of_the_prompt_as_received() -> None:
    private = private_input("secret plan", mode="omitted", params={"user": "u-1", "n": 2})
    assert private.input.prompt is None
    assert private.input.prompt_sha256 == hashlib.sha256(b"secret plan").hexdigest()
    assert private.input.params == {"n": 2}
    assert private.erased == ["/input/prompt", "/input/params/user"]
