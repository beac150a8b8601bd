"""What of the prompt an audit record keeps: full, redacted, or only its hash (``omitted``).

``redact`` masks personal data in free text: e-mail addresses, card numbers (13-19 digits that
pass the Luhn check), phone numbers (7-15 digits, optionally with ``+`` and separators), URLs and
the names a policy lists (whole words, case-insensitive). ``private_input`` applies a prompt
mode to a request's prompt and its free-text parameters and lists every field it masked or
dropped as an RFC 6901 JSON pointer, for the record's ``erased``.

The prompt's sha256 is always of the prompt as received, whatever the mode, so an investigator
who holds a prompt can prove which record it belongs to without the log holding it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from pydantic import JsonValue

from audit.record import InputRecord, PromptMode

__all__ = ["FREE_TEXT_PARAMS", "PrivateInput", "Redaction", "private_input", "redact"]

FREE_TEXT_PARAMS = frozenset({"negative_prompt", "user", "instructions"})
"""Request parameters that carry the caller's own words, treated like the prompt."""

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"https?://\S+")
_DIGIT_RUN = re.compile(r"\+?\d(?:[\s().-]?\d){6,22}")


@dataclass(frozen=True, slots=True)
class Redaction:
    text: str
    masked: int  # how many spans were replaced


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _mask_number(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if 13 <= len(digits) <= 19 and _luhn(digits):
        return "[card]"
    if 7 <= len(digits) <= 15:
        return "[phone]"
    return "[number]"


def _names_pattern(names: Iterable[str]) -> re.Pattern[str] | None:
    cleaned = sorted({n.strip() for n in names if n.strip()}, key=len, reverse=True)
    if not cleaned:
        return None
    alternatives = "|".join(re.escape(n) for n in cleaned)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def redact(text: str, names: Iterable[str] = ()) -> Redaction:
    """Mask e-mails, URLs, card and phone numbers and the listed ``names`` in ``text``."""
    masked = 0

    def counted(replacement: str | None) -> Callable[[re.Match[str]], str]:
        def replace(match: re.Match[str]) -> str:
            nonlocal masked
            masked += 1
            return replacement if replacement is not None else _mask_number(match)

        return replace

    out = _EMAIL.sub(counted("[email]"), text)
    out = _URL.sub(counted("[url]"), out)
    out = _DIGIT_RUN.sub(counted(None), out)
    pattern = _names_pattern(names)
    if pattern is not None:
        out = pattern.sub(counted("[name]"), out)
    return Redaction(out, masked)


@dataclass(frozen=True, slots=True)
class PrivateInput:
    input: InputRecord
    erased: list[str]


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def private_input(
    prompt: str,
    *,
    mode: PromptMode,
    params: Mapping[str, JsonValue],
    names: Iterable[str] = (),
) -> PrivateInput:
    """The record's ``input`` under ``mode``, and the JSON pointers of what was masked."""
    names = tuple(names)
    erased: list[str] = []
    kept_params: dict[str, JsonValue] = {}
    for key, value in params.items():
        if key not in FREE_TEXT_PARAMS or not isinstance(value, str) or mode == "full":
            kept_params[key] = value
        elif mode == "omitted":
            erased.append(_pointer("input", "params", key))
        else:
            redaction = redact(value, names)
            kept_params[key] = redaction.text
            if redaction.masked:
                erased.append(_pointer("input", "params", key))
    redacted: str | None = None
    if mode == "redacted":
        redaction = redact(prompt, names)
        redacted = redaction.text
        if redaction.masked:
            erased.insert(0, "/input/prompt")
    elif mode == "omitted":
        erased.insert(0, "/input/prompt")
    record = InputRecord.from_prompt(prompt, mode=mode, redacted=redacted, params=kept_params)
    return PrivateInput(record, erased)
