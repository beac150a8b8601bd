"""One category taxonomy for text, image and audio.

Aligned with OpenAI's moderation categories (so ``/v1/moderations`` is wire-compatible), plus
GenGuard's own evidence categories. Every package that names a category imports it from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum

__all__ = [
    "GENGUARD_CATEGORIES",
    "OPENAI_CATEGORIES",
    "Category",
    "concept_phrases",
    "parse_category",
]


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


def concept_phrases(
    concepts: Mapping[Category, Sequence[str]], noun: str
) -> tuple[tuple[str, ...], tuple[Category, ...]]:
    """Flatten policy concepts (category -> phrases) into the phrases and, for each, the
    category it belongs to; ``noun`` names a phrase in errors ("sentence", "phrase").
    Raises ``ValueError`` for a category that is not a list or an empty phrase."""
    texts: list[str] = []
    owners: list[Category] = []
    for key, phrases in concepts.items():
        category = key if isinstance(key, Category) else parse_category(str(key))
        if isinstance(phrases, str) or not isinstance(phrases, Sequence):
            raise ValueError(
                f"concepts for category {category.value!r} must be a list of {noun}s, "
                f"got {type(phrases).__name__}"
            )
        for index, text in enumerate(phrases):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"concept {category.value}[{index}] must be a {noun}")
            texts.append(text.strip())
            owners.append(category)
    return tuple(texts), tuple(owners)
