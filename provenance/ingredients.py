"""Lineage of edits and variations: the uploaded images as ingredients of the output's manifest.

An edited output's manifest opens with ``c2pa.opened`` (pointing at the parent ingredient), then
``c2pa.edited`` with the IPTC digital source type ``compositeWithTrainedAlgorithmicMedia``
(a composite that includes trained algorithmic media). Each uploaded image is an ingredient:

=====================  ===================================================================
the first image        ``parentOf``: the output is a derived asset of it
further images         ``componentOf``: composed into the output
the mask               ``inputTo``: it steered the model, it is not part of the picture
=====================  ===================================================================

C2PA allows at most one ``parentOf`` ingredient per manifest (c2pa-rs reports
``manifest.multipleParents`` otherwise), hence the other relationships for further inputs.

The ingredient is built by c2pa from the uploaded bytes themselves (``Builder.add_ingredient``
with the input stream), so an input that carries its own C2PA manifest keeps it, validated,
inside the ingredient: the chain of custody reaches back to the original. Ingredient titles are
neutral (``input image 1``, ``mask``): the client's file name may be personal data and, like the
prompt, it never travels with the asset. No thumbnail of an input is embedded.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from provenance.media import signable_mime_type

__all__ = [
    "COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA",
    "Ingredient",
    "add_ingredients",
    "edit_actions",
    "ingredients_of_inputs",
]

COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
)

Relationship = Literal["parentOf", "componentOf", "inputTo"]


@dataclass(frozen=True, slots=True)
class Ingredient:
    """One input of an edit: its bytes as uploaded, media type, neutral title, relationship."""

    data: bytes
    mime_type: str
    title: str
    relationship: Relationship

    def __repr__(self) -> str:  # never dump the bytes into a log line
        return (
            f"Ingredient(title={self.title!r}, mime_type={self.mime_type!r}, "
            f"relationship={self.relationship!r}, bytes={len(self.data)})"
        )


def ingredients_of_inputs(
    images: Sequence[tuple[bytes, str]], mask: tuple[bytes, str] | None = None
) -> tuple[Ingredient, ...]:
    """Ingredients for ``images`` (``(data, mime_type)``, the parent first) and the mask."""
    out = [
        Ingredient(
            data,
            mime_type,
            f"input image {index + 1}",
            "parentOf" if index == 0 else "componentOf",
        )
        for index, (data, mime_type) in enumerate(images)
    ]
    if mask is not None:
        out.append(Ingredient(mask[0], mask[1], "mask", "inputTo"))
    return tuple(out)


def _label(index: int) -> str:
    return f"genguard.input.{index}"


def edit_actions(
    ingredients: Sequence[Ingredient], software_agent: str, parameters: dict[str, Any]
) -> list[dict[str, Any]]:
    """The ``c2pa.actions`` entries of an edit: ``c2pa.opened`` (the parent), ``c2pa.edited``."""
    parents = [_label(i) for i, item in enumerate(ingredients) if item.relationship == "parentOf"]
    if len(parents) != 1:
        raise ValueError(f"an edit has exactly one parent ingredient, got {len(parents)}")
    return [
        {"action": "c2pa.opened", "parameters": {"ingredientIds": parents}},
        {
            "action": "c2pa.edited",
            "digitalSourceType": COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
            "softwareAgent": {"name": software_agent},
            "parameters": {
                **parameters,
                "ingredientIds": [_label(i) for i in range(len(ingredients))],
            },
        },
    ]


def add_ingredients(builder: Any, ingredients: Sequence[Ingredient]) -> None:
    """Add every ingredient to a ``c2pa.Builder`` from its bytes (c2pa reads any manifest in
    them). Raises ``c2pa.C2paError`` (the signer translates it) or ``UnsupportedMedia``."""
    for index, item in enumerate(ingredients):
        definition = {
            "title": item.title,
            "relationship": item.relationship,
            "label": _label(index),
        }
        builder.add_ingredient(
            definition, signable_mime_type(item.mime_type), io.BytesIO(item.data)
        )
