"""PDQ hash banks: real pdqhash, real Redis. An enrolled image matches its own re-encodes,
resizes and mirror image, and not an unrelated image; bank changes reach the index."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from PIL import Image
from redis.asyncio import Redis

from classifiers.image.hash_banks import HashBankError, HashBankExists, RedisHashBanks
from classifiers.image.pdq_bank import (
    BankedHash,
    PdqBankClassifier,
    PdqIndex,
    PdqSnapshot,
    hamming,
    parse_hex,
    pdq_hash,
)
from classifiers.taxonomy import Category
from generators.procedural import render_procedural_png

T = TypeVar("T")


def generated(prompt: str, size: tuple[int, int] = (512, 512)) -> Image.Image:
    return Image.open(io.BytesIO(render_procedural_png(prompt, 7, size))).convert("RGB")


def jpeg(image: Image.Image, quality: int = 75) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def run_banks(redis_url: str, steps: Callable[[RedisHashBanks], Awaitable[T]]) -> T:
    async def go() -> T:
        client = Redis.from_url(redis_url)
        try:
            return await steps(RedisHashBanks(client))
        finally:
            await client.aclose()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def original() -> Image.Image:
    return generated("a lighthouse at dawn")


@pytest.fixture(scope="module")
def index(clean_redis: str, original: Image.Image) -> PdqIndex:
    index = PdqIndex()

    async def steps(banks: RedisHashBanks) -> None:
        await banks.create("known-bad", actor="test")
        await banks.add("known-bad", {pdq_hash(original).hex: {"source": "test"}}, actor="test")
        await banks.sync(index)

    run_banks(clean_redis, steps)
    return index


def test_hex_round_trip_and_distance(original: Image.Image) -> None:
    value = pdq_hash(original)
    assert len(value.hex) == 64 and value.quality >= 20
    words = parse_hex(value.hex)
    assert int(hamming(words[None, :], words[None, :])[0, 0]) == 0
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        parse_hex("xyz")


@pytest.mark.parametrize(
    "variant",
    ["itself", "jpeg-q75", "half-size", "horizontal-flip"],
)
def test_a_banked_image_matches_its_variants(
    index: PdqIndex, original: Image.Image, variant: str
) -> None:
    query = {
        "itself": original,
        "jpeg-q75": jpeg(original),
        "half-size": original.resize((original.width // 2, original.height // 2)),
        "horizontal-flip": original.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    }[variant]
    [scores] = PdqBankClassifier(index).classify([query])
    assert scores.get(Category.HASH_MATCH) >= 1.0 - 31 / 256
    [evidence] = scores.evidence
    assert evidence.detail.startswith("bank 'known-bad': hash ")
    assert int(evidence.detail.rsplit(" ", 1)[1]) <= 31


def test_an_unrelated_image_does_not_match(index: PdqIndex) -> None:
    [scores] = PdqBankClassifier(index).classify([generated("a field of red tulips")])
    assert dict(scores.scores) == {} and scores.evidence == ()


def test_bank_changes_reach_the_index(clean_redis: str, original: Image.Image) -> None:
    index = PdqIndex()
    value = pdq_hash(original).hex

    async def steps(banks: RedisHashBanks) -> list[int]:
        sizes: list[int] = []
        await banks.create("strict", category=Category.SEXUAL, threshold=0, actor="test")
        with pytest.raises(HashBankExists):
            await banks.create("strict", actor="test")
        with pytest.raises(HashBankError, match="invalid bank name"):
            await banks.create("../x", actor="test")
        with pytest.raises(HashBankError, match="64 hexadecimal digits"):
            await banks.add("strict", {"00ff": {}}, actor="test")
        await banks.add("strict", {value.upper(): {}}, actor="test")
        await banks.sync(index)
        sizes.append(len(index.snapshot.entries))
        assert await banks.remove_hash("strict", value)
        assert not await banks.remove_hash("strict", value)
        await banks.sync(index)
        sizes.append(len(index.snapshot.entries))
        assert await banks.delete("strict")
        assert not await banks.delete("strict")
        with pytest.raises(KeyError):
            await banks.hashes("strict")
        return sizes

    # the module's other bank ("known-bad") holds the same hash: 2 entries, then 1
    assert run_banks(clean_redis, steps) == [2, 1]


def test_a_strict_bank_scores_its_own_category(original: Image.Image) -> None:
    value = pdq_hash(original).hex
    index = PdqIndex(PdqSnapshot.of(1, [BankedHash("exact", value, Category.SEXUAL, 0)]))
    [same, resized] = PdqBankClassifier(index).classify(
        [original, original.resize((original.width // 2, original.height // 2))]
    )
    assert same.get(Category.SEXUAL) == 1.0
    assert resized.get(Category.SEXUAL) == 0.0  # a 0.5x resize moves more than 0 bits


def test_flat_images_are_not_compared(index: PdqIndex) -> None:
    [scores] = PdqBankClassifier(index).classify([Image.new("RGB", (64, 64), (128, 128, 128))])
    assert dict(scores.scores) == {}
