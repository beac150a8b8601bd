"""Generator protocol and the values that flow through it.

A generator turns a (hardened) ``GenerationRequest`` into ``Artifact`` values. It neither
classifies nor signs. ``generate`` is async because generators are I/O (an upstream API) or hand
their CPU work to a thread themselves.

Exception tree::

    GenGuardError
    └── GenerationError            the generator could not produce output
        ├── UnsupportedRequest     the request asks for something this generator cannot do (4xx)
        ├── UpstreamError          the upstream answered with an error (status, code, message)
        └── UpstreamTimeout        the upstream did not answer in time
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import ClassVar, ParamSpec, Protocol, TypeVar, runtime_checkable

from genguard_errors import GenGuardError

__all__ = [
    "Artifact",
    "CpuRunner",
    "GenerationError",
    "GenerationRequest",
    "Generator",
    "InputImage",
    "Modality",
    "Operation",
    "SafeGuidance",
    "SteerableGenerator",
    "UnsupportedRequest",
    "UpstreamError",
    "UpstreamTimeout",
    "operations_of",
    "png_artifacts",
    "require_model",
]


P = ParamSpec("P")
T = TypeVar("T")


class CpuRunner(Protocol):
    """Runs CPU-bound work off the event loop: the gateway's bounded worker pool.

    ``asyncio.to_thread`` satisfies this protocol, for use outside the gateway.
    """

    async def __call__(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...


class Modality(StrEnum):
    IMAGE = "image"
    AUDIO = "audio"


class Operation(StrEnum):
    """What an image request asks for: a new image, an edit of uploaded ones, or variations."""

    GENERATE = "generate"
    EDIT = "edit"  # POST /v1/images/edits: images (+ optional mask) and a prompt
    VARIATION = "variation"  # POST /v1/images/variations: one image, no prompt


class GenerationError(GenGuardError):
    """The generator could not produce output."""


class UnsupportedRequest(GenerationError):
    """The request asks for something this generator cannot do (a size, a voice, a format)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class UpstreamError(GenerationError):
    """The upstream generator answered with an error."""

    def __init__(self, message: str, *, status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class UpstreamTimeout(GenerationError):
    """The upstream generator did not answer within the stage timeout."""


@dataclass(frozen=True, slots=True)
class SafeGuidance:
    """Safe Latent Diffusion for one request: a preset (``weak`` … ``max``) and the concept
    guided away from (``None``: the generator's default). Set by the policy (harden stage),
    never by the client."""

    preset: str
    concept: str | None = None


@dataclass(frozen=True, slots=True)
class InputImage:
    """An uploaded image (or mask) of an edit or variation, as validated by the gateway.

    ``data`` are the bytes as uploaded (never re-encoded: an embedded C2PA manifest stays);
    ``mime_type`` is sniffed from them (PNG, JPEG or WebP); ``name`` is the form field it came in
    (``image[0]``, ``mask``), never the client's file name.
    """

    data: bytes
    mime_type: str
    width: int
    height: int
    name: str
    has_alpha: bool = False


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """What to generate, after the prompt and harden stages.

    ``prompt`` is what the generator receives (the user's prompt, unchanged unless the policy
    rewrote it); ``negative_prompt`` carries the policy's safety negative prompt for generators
    that support one. ``size`` is ``(width, height)`` for images. ``voice``, ``audio_format``
    and ``speed`` apply to speech. ``model`` is the model name the client asked for, already
    resolved to this generator. ``variant`` (a concept-erased variant of the model) and
    ``safe_guidance`` are set by the policy; only a ``SteerableGenerator`` honours them.
    ``operation`` is ``edit`` or ``variation`` for requests that upload ``images`` (and, for
    edits, an optional ``mask`` whose transparent pixels mark what may change); generators that
    do more than ``generate`` list them in their ``operations`` class attribute.
    """

    modality: Modality
    prompt: str
    model: str
    n: int = 1
    size: tuple[int, int] | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    voice: str | None = None
    audio_format: str = "wav"
    speed: float = 1.0
    variant: str | None = None
    safe_guidance: SafeGuidance | None = None
    extra: Mapping[str, object] = field(default_factory=dict)
    operation: Operation = Operation.GENERATE
    images: tuple[InputImage, ...] = ()
    mask: InputImage | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))


@dataclass(frozen=True, slots=True)
class Artifact:
    """One generated output: encoded bytes plus what provenance needs to describe it."""

    data: bytes
    mime_type: str
    modality: Modality
    generator: str
    model: str
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    revised_prompt: str | None = None


class Generator(Protocol):
    """An image or audio generator.

    ``models`` lists the model names this generator answers to (shown by ``GET /v1/models``).
    """

    name: ClassVar[str]
    modalities: ClassVar[frozenset[Modality]]

    @property
    def models(self) -> tuple[str, ...]: ...

    async def generate(self, request: GenerationRequest) -> list[Artifact]:
        """Produce ``request.n`` artifacts. Raises ``GenerationError`` subclasses only."""
        ...

    async def aclose(self) -> None:
        """Release connections or threads."""
        ...


@runtime_checkable
class SteerableGenerator(Protocol):
    """A generator that serves concept-erased variants of its models and Safe Latent Diffusion
    guidance (``GenerationRequest.variant`` / ``.safe_guidance``). The pipeline refuses to send
    either to a generator that is not one: a policy that routes to a variant fails closed."""

    @property
    def variants(self) -> tuple[str, ...]:
        """Names of the variants loaded (``<model>:<variant>`` appear in ``models``)."""
        ...

    def variant_info(self, name: str) -> Mapping[str, object]:
        """What a variant is (method, concepts, guide, …), for ``GET /v1/models``."""
        ...


def operations_of(generator: Generator) -> frozenset[Operation]:
    """What ``generator`` can do: its ``operations`` class attribute, else only ``generate``."""
    declared = getattr(generator, "operations", None)
    if isinstance(declared, frozenset):
        return frozenset(op for op in declared if isinstance(op, Operation))
    return frozenset({Operation.GENERATE})


def require_model(
    generator: str, request: GenerationRequest, modality: Modality, models: Sequence[str]
) -> None:
    """Raise ``UnsupportedRequest`` (param ``model``) unless ``request`` is for one of
    ``models`` and of ``modality``."""
    if request.modality is not modality:
        raise UnsupportedRequest(
            f"generator {generator!r} makes {modality.value}, not {request.modality.value}",
            param="model",
        )
    if request.model not in models:
        raise UnsupportedRequest(
            f"unknown model {request.model!r} for generator {generator!r}; "
            f"expected one of {', '.join(models)}",
            param="model",
        )


def png_artifacts(
    pngs: Sequence[bytes], *, generator: str, model: str, size: tuple[int, int]
) -> list[Artifact]:
    """Wrap encoded PNGs of one ``size`` as image artifacts."""
    return [
        Artifact(
            data=png,
            mime_type="image/png",
            modality=Modality.IMAGE,
            generator=generator,
            model=model,
            width=size[0],
            height=size[1],
        )
        for png in pngs
    ]
