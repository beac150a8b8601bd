"""Term-list prompt classifier: whole-word matches of configured terms, per category.

Terms come from the policy (data, not code). Each term is normalised like a prompt, then
compiled once into a per-category regular expression that only matches whole words: "ass"
matches "ass" but not "classic", "assassin's" or "bass", so the Scunthorpe problem does not
arise. A trailing ``*`` makes a prefix ("porn*" matches "porn", "porno", "pornographic"); a
space inside a term matches a space, hyphen or underscore between the words.

Scoring, per category:

* 1.0 when a term appears in the prompt as written (the ``plain`` view);
* 0.9 when it appears only once the prompt is de-obfuscated (zero-width characters removed,
  homoglyphs or leetspeak mapped, spaced letters joined, repeats squeezed). Hiding a term is
  itself evidence, so ``prompt-attack`` then scores 0.9 too, with the transformations as
  evidence.

Every configured category (and ``prompt-attack``) is present in the result, 0.0 when nothing
matched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from classifiers.base import Evidence, Scores
from classifiers.taxonomy import Category, parse_category
from classifiers.text.normalize import NormalizedPrompt, normalize_prompt

__all__ = ["TermListClassifier"]

PLAIN_SCORE = 1.0
OBFUSCATED_SCORE = 0.9

_PHRASE_GAP = r"[\s_\-]+"
_TERM_START = r"(?<![^\W\d_])"  # not preceded by a letter
_TERM_END = r"(?![^\W\d_])"  # not followed by a letter
_PREFIX_TAIL = r"[^\W\d_]*"


@dataclass(frozen=True, slots=True)
class _Term:
    text: str  # as configured
    pattern: re.Pattern[str]  # this term alone, anchored on word boundaries


@dataclass(frozen=True, slots=True)
class _CategoryMatcher:
    category: Category
    pattern: re.Pattern[str]  # every term of the category in one alternation
    terms: tuple[_Term, ...]

    def term_for(self, matched: str) -> str:
        for term in self.terms:
            if term.pattern.fullmatch(matched):
                return term.text
        return matched  # pragma: no cover - the alternation only matches its own terms


class TermListClassifier:
    """Scores prompts by whole-word matches of per-category term lists."""

    name: ClassVar[str] = "term_list"

    def __init__(self, terms: Mapping[Category, Sequence[str]]) -> None:
        by_category: dict[Category, dict[str, str]] = {}
        for key, category_terms in terms.items():
            category = _category(key)
            if isinstance(category_terms, str) or not isinstance(category_terms, Sequence):
                raise ValueError(
                    f"terms for category {category.value!r} must be a list of strings, "
                    f"got {type(category_terms).__name__}"
                )
            compiled = by_category.setdefault(category, {})
            for index, term in enumerate(category_terms):
                source = _term_source(category, index, term)
                compiled.setdefault(source, term)
        self._matchers = tuple(
            _matcher(category, sources) for category, sources in by_category.items()
        )
        self._categories = tuple(dict.fromkeys((*by_category, Category.PROMPT_ATTACK)))

    @property
    def categories(self) -> tuple[Category, ...]:
        """The categories this instance scores (the configured ones and ``prompt-attack``)."""
        return self._categories

    def classify(self, texts: Sequence[str]) -> list[Scores]:
        return [self._classify_one(normalize_prompt(text)) for text in texts]

    def _classify_one(self, prompt: NormalizedPrompt) -> Scores:
        scores = dict.fromkeys(self._categories, 0.0)
        evidence: list[Evidence] = []
        hidden = False
        views = prompt.named_views
        for matcher in self._matchers:
            for view, text in views:
                match = matcher.pattern.search(text)
                if match is None:
                    continue
                score = PLAIN_SCORE if view == "plain" else OBFUSCATED_SCORE
                hidden = hidden or score < PLAIN_SCORE
                scores[matcher.category] = max(scores[matcher.category], score)
                term = matcher.term_for(match.group())
                detail = f"term {term!r} matched {match.group()!r} in the {view} view"
                evidence.append(Evidence(matcher.category, detail, score))
                break
        if hidden:
            scores[Category.PROMPT_ATTACK] = max(scores[Category.PROMPT_ATTACK], OBFUSCATED_SCORE)
            detail = "obfuscation: " + ", ".join(prompt.transformations)
            evidence.append(Evidence(Category.PROMPT_ATTACK, detail, OBFUSCATED_SCORE))
        return Scores(classifier=self.name, scores=scores, evidence=tuple(evidence))


def _category(key: object) -> Category:
    if isinstance(key, Category):
        return key
    if isinstance(key, str):
        return parse_category(key)  # ValueError listing the valid names
    raise ValueError(f"term list key {key!r} is not a category name")


def _term_source(category: Category, index: int, term: object) -> str:
    """Validate one configured term and return its regular-expression source."""
    where = f"term {category.value}[{index}]"
    if not isinstance(term, str):
        raise ValueError(f"{where} must be a string, got {type(term).__name__}")
    stripped = term.strip()
    if not stripped:
        raise ValueError(f"{where} is empty")
    prefix = stripped.endswith("*")
    body = stripped[:-1] if prefix else stripped
    if "*" in body:
        raise ValueError(f"{where} {term!r}: '*' is only allowed at the end (prefix match)")
    words = normalize_prompt(body).canonical.split(" ")
    if words == [""]:
        raise ValueError(f"{where} {term!r} is empty after normalisation")
    source = _PHRASE_GAP.join(re.escape(word) for word in words)
    return source + _PREFIX_TAIL if prefix else source


def _matcher(category: Category, sources: Mapping[str, str]) -> _CategoryMatcher:
    # Longest first, so "nude beach" is reported rather than "nude" when both are listed.
    ordered = sorted(sources, key=len, reverse=True)
    terms = tuple(
        _Term(text=sources[source], pattern=re.compile(_TERM_START + source + _TERM_END))
        for source in ordered
    )
    alternation = "|".join(ordered) or r"(?!)"
    pattern = re.compile(f"{_TERM_START}(?:{alternation}){_TERM_END}")
    return _CategoryMatcher(category=category, pattern=pattern, terms=terms)
