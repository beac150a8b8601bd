"""Variant patches: only the edited weights (safetensors) plus what was done, to which base model.

A patch file ``<name>.safetensors`` holds tensors keyed by the model's state-dict keys and, in the
safetensors header, one JSON document (``genguard_variant``) with the ``VariantMetadata``. The
base-model fingerprint is the SHA-256 of the *original* tensors at every text projection of the
model and every key the patch replaces (names, dtypes, shapes, bytes): a patch applied to another
model — or to a model that already carries an edit — is refused with ``BaseModelMismatch``.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from erasure.adapters import find_text_projections
from erasure.errors import BaseModelMismatch, ErasureError, VariantNotFound

__all__ = [
    "VariantMetadata",
    "VariantPatch",
    "VariantRegistry",
    "apply_patch",
    "base_fingerprint",
]

_META_KEY = "genguard_variant"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class VariantMetadata:
    name: str
    method: str  # "uce" | "esd-x" | "esd-u" | …
    base_fingerprint: str
    concepts: tuple[str, ...]
    guide: tuple[str, ...] = ()
    preserve: tuple[str, ...] = ()
    lam: float | None = None
    token_policy: str | None = None
    created_by: str = field(default_factory=lambda: _user())
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    base_model: str = ""  # a human label (path or id) of the base model
    extra: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> VariantMetadata:
        raw = json.loads(text)
        for key in ("concepts", "guide", "preserve"):
            raw[key] = tuple(raw.get(key, ()))
        return cls(**raw)


@dataclass(frozen=True, slots=True)
class VariantPatch:
    weights: Mapping[str, torch.Tensor]
    metadata: VariantMetadata

    def save(self, path: Path) -> None:
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.weights.items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata={_META_KEY: self.metadata.to_json()})
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> VariantPatch:
        try:
            weights = load_file(str(path))
            with safe_open(str(path), framework="pt") as handle:
                header = handle.metadata() or {}
        except (OSError, SafetensorError) as exc:
            raise ErasureError(f"cannot read variant patch {path}: {exc}") from exc
        if _META_KEY not in header:
            raise ErasureError(f"{path} is not a GenGuard variant patch (no {_META_KEY} header)")
        return cls(weights, VariantMetadata.from_json(header[_META_KEY]))


def base_fingerprint(model: nn.Module, extra_keys: Iterable[str] = ()) -> str:
    """SHA-256 over the text projections of ``model`` and ``extra_keys`` (as they are now)."""
    state = model.state_dict()
    keys = {p.key for p in find_text_projections(model)} | set(extra_keys)
    digest = hashlib.sha256()
    for key in sorted(keys):
        if key not in state:
            raise ErasureError(f"the model has no tensor {key!r}")
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_base(model: nn.Module, patch: VariantPatch) -> None:
    """Raise ``BaseModelMismatch`` unless ``model`` is the base ``patch`` was made for."""
    found = base_fingerprint(model, patch.weights)
    if found != patch.metadata.base_fingerprint:
        raise BaseModelMismatch(
            f"variant {patch.metadata.name!r} was built for base model "
            f"{patch.metadata.base_fingerprint[:16]}… ({patch.metadata.base_model or 'unnamed'}); "
            f"this model is {found[:16]}… (another model, or one that already carries an edit)"
        )


@torch.no_grad()
def apply_patch(model: nn.Module, patch: VariantPatch) -> None:
    """Copy the patch's weights into ``model`` in place, after checking the base fingerprint."""
    check_base(model, patch)
    state = model.state_dict()
    for key, value in patch.weights.items():
        if state[key].shape != value.shape:
            raise BaseModelMismatch(
                f"{key}: patch {tuple(value.shape)} vs model {state[key].shape}"
            )
        state[key].copy_(value)


class VariantRegistry:
    """The variants in one directory: ``<name>.safetensors`` each."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.safetensors"))

    def path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ErasureError(
                f"invalid variant name {name!r}: lowercase letters, digits, '.', '_', '-' "
                "(at most 64, starting with a letter or digit)"
            )
        return self.directory / f"{name}.safetensors"

    def load(self, name: str) -> VariantPatch:
        path = self.path(name)
        if not path.is_file():
            known = ", ".join(self.names()) or "(none)"
            raise VariantNotFound(f"no variant {name!r} in {self.directory}; known: {known}")
        return VariantPatch.load(path)

    def save(self, patch: VariantPatch, *, overwrite: bool = False) -> Path:
        path = self.path(patch.metadata.name)
        if path.exists() and not overwrite:
            raise ErasureError(f"variant {patch.metadata.name!r} exists already ({path})")
        patch.save(path)
        return path

    def metadata(self) -> list[VariantMetadata]:
        return [self.load(name).metadata for name in self.names()]


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
