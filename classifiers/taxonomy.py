"""One category taxonomy for text, image and audio.

Aligned with OpenAI's moderation categories (so ``/v1/moderations`` is wire-compatible), plus
GenGuard's own evidence categories. Every package that names a category imports it from here.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["GENGUARD_CATEGORIES", "OPENAI_CATEGORIES", "Category", "parse_category"]


class Category(StrEnum):
    HARASSMENT = "harassment"
    HARASSMENT_THREATENING = "harassment/threatening"
    HATE = "hate"
    HATE_THREATENING = "hate/threatening"
    ILLICIT = "illicit"
    ILLICIT_VIOLENT = "illicit/violent"
    SELF_HARM = "self-harm"
    SELF_HARM_INTENT = "self-harm/intent"
    SELF_HARM_INSTRUCTIONS = "self-harm/instructions"
    SEXUAL = "sexual"
    SEXUAL_MINORS = "sexual/minors"
    VIOLENCE = "violence"
    VIOLENCE_GRAPHIC = "violence/graphic"
    # GenGuard's own
    NUDITY = "nudity"
    HASH_MATCH = "hash-match"
    PROTECTED_PERSON = "protected-person"
    PROMPT_ATTACK = "prompt-attack"


OPENAI_CATEGORIES: tuple[Category, ...] = tuple(list(Category)[:13])
GENGUARD_CATEGORIES: tuple[Category, ...] = tuple(list(Category)[13:])


def parse_category(value: str) -> Category:
    """Return the category named ``value`` or raise ``ValueError`` listing the valid names."""
    try:
        return Category(value)
    except ValueError:
        valid = ", ".join(c.value for c in Category)
        raise ValueError(f"unknown category {value!r}; expected one of: {valid}") from None
