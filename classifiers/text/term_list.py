"""Term-list prompt classifier: whole-word matches of configured terms and patterns, per category.

Terms come from the policy (data, not code). Each term is normalised like a prompt, then
compiled once into a per-category regular expression that only matches whole words: "ass"
matches "ass" but not "classic", "assassin's" or "bass", so the Scunthorpe problem does not
arise. A trailing ``*`` makes a prefix ("porn*" matches "porn", "porno", "pornographic"; in a
phrase, any word may end in one: "kill* the lights"); a space inside a term matches a space,
hyphen or underscore between the words.

*Patterns* are regular expressions per category for what a word list cannot say
("how (do|can) i (kill|hurt) (my|a) (wife|husband|neighbou?r)"); they are matched, case-blind,
against the same normalised views as the terms.

*Allow-list* phrases are written like terms ("kill a process", "kill* the lights"): a term or
pattern hit that lies entirely inside an allowed phrase does not count, so a policy can list
"kill" and still let "how do I kill a Python process" through. Only the hit inside the phrase is
discounted; another hit elsewhere in the prompt still counts.

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

__all__ = ["TermListClassifier", "compile_pattern"]

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
    pattern: re.Pattern[str] | None  # every term of the category in one alternation
    terms: tuple[_Term, ...]
    patterns: tuple[tuple[str, re.Pattern[str]], ...]  # (as configured, compiled)

    def first_hit(
        self, text: str, allowed: Sequence[tuple[int, int]]
    ) -> tuple[str, int, int] | None:
        """``(what matched, start, end)`` of the first hit outside the allowed spans."""
        if self.pattern is not None:
            for match in self.pattern.finditer(text):
                if not _inside(match.span(), allowed):
                    return f"term {self.term_for(match.group())!r}", *match.span()
        for source, pattern in self.patterns:
            for match in pattern.finditer(text):
                if match.end() > match.start() and not _inside(match.span(), allowed):
                    return f"pattern {source!r}", *match.span()
        return None

    def term_for(self, matched: str) -> str:
        for term in self.terms:
            if term.pattern.fullmatch(matched):
                return term.text
        return matched  # pragma: no cover - the alternation only matches its own terms


def _inside(span: tuple[int, int], allowed: Sequence[tuple[int, int]]) -> bool:
    return any(start <= span[0] and span[1] <= end for start, end in allowed)


class TermListClassifier:
    """Scores prompts by whole-word matches of per-category term lists and patterns."""

    name: ClassVar[str] = "term_list"

    def __init__(
        self,
        terms: Mapping[Category, Sequence[str]],
        *,
        patterns: Mapping[Category, Sequence[str]] | None = None,
        allow: Sequence[str] = (),
    ) -> None:
        by_category: dict[Category, dict[str, str]] = {}
        for key, category_terms in terms.items():
            category = _category(key)
            _require_list(f"terms for category {category.value!r}", category_terms)
            compiled = by_category.setdefault(category, {})
            for index, term in enumerate(category_terms):
                source = _term_source(f"term {category.value}[{index}]", term)
                compiled.setdefault(source, term)
        by_pattern: dict[Category, list[tuple[str, re.Pattern[str]]]] = {}
        for key, category_patterns in (patterns or {}).items():
            category = _category(key)
            _require_list(f"patterns for category {category.value!r}", category_patterns)
            for index, pattern in enumerate(category_patterns):
                compiled_pattern = compile_pattern(f"pattern {category.value}[{index}]", pattern)
                by_pattern.setdefault(category, []).append((pattern, compiled_pattern))
        _require_list("allow", allow)
        allowed = [_term_source(f"allow[{index}]", phrase) for index, phrase in enumerate(allow)]
        self._allow = (
            re.compile(f"{_TERM_START}(?:{'|'.join(allowed)}){_TERM_END}") if allowed else None
        )
        categories = tuple(dict.fromkeys((*by_category, *by_pattern)))
        self._matchers = tuple(
            _matcher(category, by_category.get(category, {}), by_pattern.get(category, []))
            for category in categories
        )
        self._categories = tuple(dict.fromkeys((*categories, Category.PROMPT_ATTACK)))

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
        allowed = {text: self._allowed_spans(text) for _, text in views}
        for matcher in self._matchers:
            for view, text in views:
                hit = matcher.first_hit(text, allowed[text])
                if hit is None:
                    continue
                score = PLAIN_SCORE if view == "plain" else OBFUSCATED_SCORE
                hidden = hidden or score < PLAIN_SCORE
                scores[matcher.category] = max(scores[matcher.category], score)
                source, start, end = hit
                detail = (
                    f"{source} matched {text[start:end]!r} at [{start}:{end}] of the {view} view"
                )
                evidence.append(Evidence(matcher.category, detail, score))
                break
        if hidden:
            scores[Category.PROMPT_ATTACK] = max(scores[Category.PROMPT_ATTACK], OBFUSCATED_SCORE)
            detail = "obfuscation: " + ", ".join(prompt.transformations)
            evidence.append(Evidence(Category.PROMPT_ATTACK, detail, OBFUSCATED_SCORE))
        return Scores(classifier=self.name, scores=scores, evidence=tuple(evidence))

    def _allowed_spans(self, text: str) -> tuple[tuple[int, int], ...]:
        if self._allow is None:
            return ()
        return tuple(match.span() for match in self._allow.finditer(text))


def compile_pattern(where: str, pattern: object) -> re.Pattern[str]:
    """Compile one policy pattern (case-blind), or raise ``ValueError`` saying what is wrong."""
    if not isinstance(pattern, str):
        raise ValueError(f"{where} must be a string, got {type(pattern).__name__}")
    if not pattern.strip():
        raise ValueError(f"{where} is empty")
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"{where} {pattern!r} is not a valid regular expression: {exc}") from None
    if compiled.search("") is not None:
        raise ValueError(f"{where} {pattern!r} matches the empty string (it would match anything)")
    return compiled


def _require_list(what: str, value: object) -> None:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{what} must be a list of strings, got {type(value).__name__}")


def _category(key: object) -> Category:
    if isinstance(key, Category):
        return key
    if isinstance(key, str):
        return parse_category(key)  # ValueError listing the valid names
    raise ValueError(f"term list key {key!r} is not a category name")


def _term_source(where: str, term: object) -> str:
    """Validate one configured term (or allowed phrase) and return its regex source."""
    if not isinstance(term, str):
        raise ValueError(f"{where} must be a string, got {type(term).__name__}")
    stripped = term.strip()
    if not stripped:
        raise ValueError(f"{where} is empty")
    parts: list[str] = []
    for raw in stripped.split():
        prefix = raw.endswith("*")
        body = raw[:-1] if prefix else raw
        if "*" in body:
            raise ValueError(
                f"{where} {term!r}: '*' is only allowed at the end of a word (prefix match)"
            )
        words = normalize_prompt(body).canonical.split(" ") if body else [""]
        if words == [""]:
            continue
        source = _PHRASE_GAP.join(re.escape(word) for word in words)
        parts.append(source + _PREFIX_TAIL if prefix else source)
    if not parts:
        raise ValueError(f"{where} {term!r} is empty after normalisation")
    return _PHRASE_GAP.join(parts)


def _matcher(
    category: Category,
    sources: Mapping[str, str],
    patterns: Sequence[tuple[str, re.Pattern[str]]],
) -> _CategoryMatcher:
    # Longest first, so "nude beach" is reported rather than "nude" when both are listed.
    ordered = sorted(sources, key=len, reverse=True)
    terms = tuple(
        _Term(text=sources[source], pattern=re.compile(_TERM_START + source + _TERM_END))
        for source in ordered
    )
    pattern = re.compile(f"{_TERM_START}(?:{'|'.join(ordered)}){_TERM_END}") if ordered else None
    return _CategoryMatcher(
        category=category, pattern=pattern, terms=terms, patterns=tuple(patterns)
    )
