"""Request bodies of the OpenAI-compatible routes (strict where types matter).

Unknown OpenAI parameters (``quality``, ``style``, ``user`` …) are accepted, recorded in the audit
record and otherwise ignored, so that clients written for the upstream keep working.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
)

__all__ = ["ImageGenerationBody", "ModerationBody", "SpeechBody", "parse_size"]

SIZE_PATTERN = re.compile(r"^(\d{2,5})x(\d{2,5})$")
DEFAULT_SIZE = (1024, 1024)


def parse_size(value: str | None) -> tuple[int, int]:
    if value is None or value == "auto":
        return DEFAULT_SIZE
    match = SIZE_PATTERN.match(value)
    if not match:
        raise ValueError(f"size must look like '1024x1024' or be 'auto', got {value!r}")
    return int(match.group(1)), int(match.group(2))


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    def extras(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ImageGenerationBody(_Body):
    prompt: StrictStr
    model: StrictStr | None = None
    n: Annotated[StrictInt, Field(ge=1, le=10)] = 1
    size: StrictStr | None = None
    response_format: Literal["b64_json", "url"] | None = None
    seed: StrictInt | None = None  # GenGuard extension: deterministic generators honour it
    negative_prompt: StrictStr | None = None  # GenGuard extension

    _prompt_not_blank = field_validator("prompt")(_not_blank)

    @field_validator("size")
    @classmethod
    def _valid_size(cls, value: str | None) -> str | None:
        parse_size(value)
        return value


class SpeechBody(_Body):
    model: StrictStr
    input: StrictStr
    voice: StrictStr = "alloy"
    response_format: StrictStr = "wav"
    speed: Annotated[StrictFloat | StrictInt, Field(ge=0.25, le=4.0)] = 1.0
    instructions: StrictStr | None = None

    _input_not_blank = field_validator("input")(_not_blank)


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["text"]
    text: StrictStr


class ImageUrl(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    url: StrictStr


class ImagePart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["image_url"]
    image_url: ImageUrl


ModerationInput = (
    StrictStr
    | Annotated[list[StrictStr], Field(min_length=1, max_length=64)]
    | Annotated[
        list[Annotated[TextPart | ImagePart, Field(discriminator="type")]],
        Field(min_length=1, max_length=64),
    ]
)


class ModerationBody(_Body):
    input: ModerationInput
    model: StrictStr | None = None

    def texts(self) -> list[str]:
        if isinstance(self.input, str):
            return [self.input]
        texts: list[str] = []
        for item in self.input:
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, TextPart):
                texts.append(item.text)
        return texts

    def image_urls(self) -> list[str]:
        if isinstance(self.input, str):
            return []
        return [item.image_url.url for item in self.input if isinstance(item, ImagePart)]
