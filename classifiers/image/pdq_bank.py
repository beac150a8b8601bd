"""``pdq_bank``: is this image (nearly) one that a hash bank holds?

PDQ (Meta's perceptual hash, through ``pdqhash``) turns an image into 256 bits that survive
re-encoding and resizing: a JPEG q75 copy lies at Hamming distance ~0 from its original, a 0.5x
resize at 12-18, an unrelated image at ~128. A query is hashed in its 8 dihedral variants
(rotations and flips, which ``pdqhash`` computes in one pass), so a mirrored or rotated copy
matches too; an image matches a bank's hash when any variant lies within the bank's threshold
(31 by default, as ThreatExchange uses).

The banked hashes live in a ``PdqIndex`` held in memory: one bit-packed ``(n, 4)`` uint64 matrix
searched by brute-force popcount, which is a few microseconds per thousand hashes. The index is
replaced as a whole when the banks in Redis change (``classifiers.image.hash_banks``); one
classification reads one consistent snapshot. A match scores the bank's category (``hash-match``
unless the bank says otherwise) ``1 - distance / 256``, so any match scores at least ~0.88 at the
default threshold; the bank, hash and distance are the evidence. Images too flat to hash
reliably (PDQ quality below ``MIN_QUALITY``) are not compared.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pdqhash
from numpy.typing import NDArray
from PIL import Image

from classifiers.base import Evidence, Scores
from classifiers.taxonomy import Category

__all__ = [
    "DEFAULT_THRESHOLD",
    "MIN_QUALITY",
    "BankedHash",
    "PdqBankClassifier",
    "PdqHash",
    "PdqIndex",
    "PdqSnapshot",
    "hamming",
    "parse_hex",
    "pdq_hash",
    "pdq_variants",
]

DEFAULT_THRESHOLD = 31
MIN_QUALITY = 20  # flat images score 0; soft generated images 25-60, photos 60-100
HASH_BITS = 256
WORDS = HASH_BITS // 64


@dataclass(frozen=True, slots=True)
class PdqHash:
    """A 256-bit PDQ hash (hex, 64 digits, most significant bit first as HMA writes it)."""

    hex: str
    quality: int


def _pack(bits: NDArray[np.int64]) -> NDArray[np.uint64]:
    """256 bits (0/1) -> 4 uint64 words; any fixed packing keeps Hamming distances."""
    return np.packbits(bits.astype(np.uint8)).view(">u8").astype(np.uint64)


def parse_hex(value: str) -> NDArray[np.uint64]:
    """A 64-digit hex PDQ hash as 4 uint64 words; ``ValueError`` saying what is wrong."""
    text = value.strip().lower()
    if len(text) != HASH_BITS // 4 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"a PDQ hash is 64 hexadecimal digits, got {value!r}")
    return np.frombuffer(bytes.fromhex(text), dtype=">u8").astype(np.uint64)


def _rgb(image: Image.Image) -> NDArray[np.uint8]:
    rgb = image if image.mode == "RGB" else image.convert("RGB")  # no copy when already RGB
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def pdq_hash(image: Image.Image) -> PdqHash:
    """The image's PDQ hash and quality (0-100). CPU-bound (~5 ms)."""
    bits, quality = pdqhash.compute(_rgb(image))
    return PdqHash(_pack(np.asarray(bits)).astype(">u8").tobytes().hex(), int(quality))


def pdq_variants(image: Image.Image) -> tuple[NDArray[np.uint64], int]:
    """The 8 dihedral variants' hashes as an ``(8, 4)`` uint64 matrix, and the quality."""
    hashes, quality = pdqhash.compute_dihedral(_rgb(image))
    return np.stack([_pack(np.asarray(h)) for h in hashes]), int(quality)


def hamming(queries: NDArray[np.uint64], banked: NDArray[np.uint64]) -> NDArray[np.int64]:
    """Pairwise Hamming distances: ``(q, 4)`` x ``(n, 4)`` -> ``(q, n)``."""
    xor = np.bitwise_xor(queries[:, None, :], banked[None, :, :])
    distances: NDArray[np.int64] = np.bitwise_count(xor).sum(axis=2, dtype=np.int64)
    return distances


@dataclass(frozen=True, slots=True)
class BankedHash:
    """One hash of one bank, as the index holds it."""

    bank: str
    hex: str
    category: Category
    threshold: int


@dataclass(frozen=True, slots=True)
class PdqSnapshot:
    """Every banked hash at one version: their owners and a bit-packed ``(n, 4)`` matrix."""

    version: int
    entries: tuple[BankedHash, ...]
    matrix: NDArray[np.uint64]
    thresholds: NDArray[np.int64]

    @classmethod
    def empty(cls) -> PdqSnapshot:
        return cls.of(0, ())

    @classmethod
    def of(cls, version: int, entries: Sequence[BankedHash]) -> PdqSnapshot:
        ordered = tuple(sorted(entries, key=lambda e: (e.bank, e.hex)))
        if not ordered:
            matrix = np.zeros((0, WORDS), dtype=np.uint64)
        else:
            matrix = np.stack([parse_hex(e.hex) for e in ordered])
        thresholds = np.array([e.threshold for e in ordered], dtype=np.int64)
        return cls(version, ordered, matrix, thresholds)


class PdqIndex:
    """The current ``PdqSnapshot``, swapped atomically when the banks change."""

    def __init__(self, snapshot: PdqSnapshot | None = None) -> None:
        self._snapshot = snapshot or PdqSnapshot.empty()
        self._lock = threading.Lock()

    @property
    def snapshot(self) -> PdqSnapshot:
        return self._snapshot

    def replace(self, snapshot: PdqSnapshot) -> None:
        with self._lock:
            self._snapshot = snapshot


class PdqBankClassifier:
    """Scores each bank's category when an image matches one of the bank's hashes."""

    name: ClassVar[str] = "pdq_bank"

    def __init__(self, index: PdqIndex | None = None) -> None:
        self.index = index if index is not None else PdqIndex()

    def classify(self, images: Sequence[Image.Image]) -> list[Scores]:
        snapshot = self.index.snapshot  # one bank version for the whole batch
        if not snapshot.entries:
            return [Scores(self.name) for _ in images]
        return [self._one(image, snapshot) for image in images]

    def _one(self, image: Image.Image, snapshot: PdqSnapshot) -> Scores:
        variants, quality = pdq_variants(image)
        if quality < MIN_QUALITY:
            return Scores(self.name)
        distances = hamming(variants, snapshot.matrix).min(axis=0)  # best variant per hash
        matched = np.flatnonzero(distances <= snapshot.thresholds)
        best: dict[str, tuple[int, BankedHash]] = {}  # per bank, its nearest matching hash
        for row in matched:
            entry, distance = snapshot.entries[int(row)], int(distances[row])
            if entry.bank not in best or distance < best[entry.bank][0]:
                best[entry.bank] = (distance, entry)
        scores: dict[Category, float] = {}
        evidence: list[Evidence] = []
        for distance, entry in sorted(best.values(), key=lambda m: (m[0], m[1].bank)):
            score = 1.0 - distance / HASH_BITS
            scores[entry.category] = max(scores.get(entry.category, 0.0), score)
            detail = f"bank {entry.bank!r}: hash {entry.hex} at distance {distance}"
            evidence.append(Evidence(entry.category, detail, score))
        return Scores(self.name, scores, tuple(evidence))
