"""MicroBatcher: concurrent calls merged into one call on the real worker pool, results mapped
back to their callers, errors to every caller of a batch, cancellation isolated.

The batch functions are real ones (the term-list classifier, the media decoder); batches are
dispatched by size (``max_batch``) or by a caller's cancellation, never by waiting on a clock,
except where a lone caller must be released by the bounded wait (no timing is asserted)."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable, Iterator, Sequence

import pytest
from PIL import Image

from classifiers.base import Scores
from classifiers.taxonomy import Category
from classifiers.text.term_list import TermListClassifier
from gateway.batching import MicroBatcher
from gateway.media import MediaDecodeError, decode_images
from gateway.workers import WorkerPool

FOREVER_MS = 50_000.0  # batches in these tests are dispatched by size, not by the timer

PROMPTS = [
    "a lighthouse at dawn",
    "a gory scene in a pool of blood",
    "a cat on a sofa",
    "explicit sex on a beach",
    "a bowl of fruit",
    "decapitated statue head",
]


@pytest.fixture(scope="module")
def terms() -> TermListClassifier:
    return TermListClassifier(
        {
            Category.VIOLENCE_GRAPHIC: ["gore*", "pool of blood", "decapitat*"],
            Category.SEXUAL: ["explicit sex"],
        }
    )


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(2)
    yield workers
    workers.shutdown()


class CountingCalls:
    """Wraps a real classifier's ``classify`` and records the size of every call it receives."""

    def __init__(self, fn: Callable[[Sequence[str]], list[Scores]]) -> None:
        self._fn = fn
        self.sizes: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, items: Sequence[str]) -> list[Scores]:
        with self._lock:
            self.sizes.append(len(items))
        return self._fn(items)


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buffer, "PNG")
    return buffer.getvalue()


def flagged(scores: Scores) -> set[str]:
    return {c.value for c, v in scores.scores.items() if v >= 0.5}


async def test_concurrent_calls_are_merged_into_one_model_call(
    pool: WorkerPool, terms: TermListClassifier
) -> None:
    counting = CountingCalls(terms.classify)
    batcher: MicroBatcher[str, Scores] = MicroBatcher(
        counting, pool=pool, max_wait_ms=FOREVER_MS, max_batch=len(PROMPTS)
    )
    results = await asyncio.gather(*(batcher.run([p]) for p in PROMPTS))
    assert counting.sizes == [len(PROMPTS)]
    assert (batcher.calls, batcher.items, batcher.callers) == (1, len(PROMPTS), len(PROMPTS))
    # every caller got the scores of its own prompt
    expected = terms.classify(PROMPTS)
    for prompt, got, want in zip(PROMPTS, results, expected, strict=True):
        assert len(got) == 1
        assert got[0].scores == want.scores, prompt
    assert flagged(results[1][0]) == {"violence/graphic"}
    assert flagged(results[3][0]) == {"sexual"}
    assert flagged(results[0][0]) == set()


async def test_callers_with_several_items_get_their_own_slice(
    pool: WorkerPool, terms: TermListClassifier
) -> None:
    counting = CountingCalls(terms.classify)
    batcher: MicroBatcher[str, Scores] = MicroBatcher(
        counting, pool=pool, max_wait_ms=FOREVER_MS, max_batch=6
    )
    first, second, third = await asyncio.gather(
        batcher.run(PROMPTS[0:1]), batcher.run(PROMPTS[1:4]), batcher.run(PROMPTS[4:6])
    )
    assert counting.sizes == [6]
    assert [flagged(s) for s in first] == [set()]
    assert [flagged(s) for s in second] == [{"violence/graphic"}, set(), {"sexual"}]
    assert [flagged(s) for s in third] == [set(), {"violence/graphic"}]


async def test_max_batch_bounds_each_call_and_never_splits_a_caller(
    pool: WorkerPool, terms: TermListClassifier
) -> None:
    counting = CountingCalls(terms.classify)
    batcher: MicroBatcher[str, Scores] = MicroBatcher(
        counting, pool=pool, max_wait_ms=FOREVER_MS, max_batch=4
    )
    pairs = [PROMPTS[0:2], PROMPTS[2:4], PROMPTS[4:6], PROMPTS[0:4]]
    results = await asyncio.gather(*(batcher.run(p) for p in pairs))
    # 2+2 fills a batch; 2 + 4 would overflow, so the third caller's batch goes alone as soon as
    # the fourth (4 items, a full batch by itself) arrives
    assert sorted(counting.sizes) == [2, 4, 4]
    assert [len(r) for r in results] == [2, 2, 2, 4]
    assert [flagged(s) for s in results[3]] == [set(), {"violence/graphic"}, set(), {"sexual"}]


async def test_a_lone_caller_is_released_by_the_bounded_wait(
    pool: WorkerPool, terms: TermListClassifier
) -> None:
    batcher: MicroBatcher[str, Scores] = MicroBatcher(
        terms.classify, pool=pool, max_wait_ms=1.0, max_batch=64
    )
    [scores] = await batcher.run(["gore everywhere"])
    assert flagged(scores) == {"violence/graphic"}
    assert await batcher.run([]) == []
    assert batcher.calls == 1


async def test_an_error_reaches_every_caller_of_the_batch_and_only_that_batch(
    pool: WorkerPool,
) -> None:
    batcher: MicroBatcher[bytes, Image.Image] = MicroBatcher(
        decode_images, pool=pool, max_wait_ms=FOREVER_MS, max_batch=3
    )
    good, broken = png((200, 10, 10)), b"\x89PNG\r\n\x1a\n not really a png"
    results = await asyncio.gather(
        batcher.run([good]), batcher.run([broken]), batcher.run([good]), return_exceptions=True
    )
    assert all(isinstance(r, MediaDecodeError) for r in results), results
    # the next batch is unaffected
    images = await asyncio.gather(*(batcher.run([png((0, 0, c))]) for c in (1, 2, 3)))
    assert [i[0].getpixel((0, 0)) for i in images] == [(0, 0, 1), (0, 0, 2), (0, 0, 3)]
    assert batcher.calls == 2


async def test_a_wrong_result_count_is_an_error_for_every_caller(pool: WorkerPool) -> None:
    def drops_one(items: Sequence[bytes]) -> list[Image.Image]:
        return decode_images(items)[1:]

    batcher: MicroBatcher[bytes, Image.Image] = MicroBatcher(
        drops_one, pool=pool, max_wait_ms=FOREVER_MS, max_batch=2
    )
    results = await asyncio.gather(
        batcher.run([png((1, 1, 1))]), batcher.run([png((2, 2, 2))]), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) and "1 results for 2 inputs" in str(r) for r in results)


async def test_a_caller_cancelled_before_dispatch_is_left_out(
    pool: WorkerPool, terms: TermListClassifier
) -> None:
    counting = CountingCalls(terms.classify)
    batcher: MicroBatcher[str, Scores] = MicroBatcher(
        counting, pool=pool, max_wait_ms=FOREVER_MS, max_batch=3
    )
    doomed = asyncio.ensure_future(batcher.run(["gore everywhere"]))
    await asyncio.sleep(0)  # it has joined the open batch
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    # two more callers fill the batch (3 items counted, one of them cancelled)
    first, second = await asyncio.gather(batcher.run([PROMPTS[3]]), batcher.run([PROMPTS[4]]))
    assert counting.sizes == [2]  # the cancelled caller's item was not sent to the model
    assert flagged(first[0]) == {"sexual"}
    assert flagged(second[0]) == set()


async def test_a_caller_cancelled_during_the_call_does_not_disturb_the_others(
    pool: WorkerPool, terms: TermListClassifier
) -> None:
    entered, release = threading.Event(), threading.Event()

    def held(items: Sequence[str]) -> list[Scores]:
        entered.set()
        release.wait(timeout=30)
        return terms.classify(items)

    batcher: MicroBatcher[str, Scores] = MicroBatcher(
        held, pool=pool, max_wait_ms=FOREVER_MS, max_batch=3
    )
    callers = [asyncio.ensure_future(batcher.run([p])) for p in PROMPTS[:3]]
    await asyncio.to_thread(entered.wait, 30)  # the batch is running in the pool
    callers[1].cancel()
    release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert isinstance(results[1], asyncio.CancelledError)
    assert flagged(results[0][0]) == set()  # type: ignore[index]
    assert flagged(results[2][0]) == set()  # type: ignore[index]
    assert batcher.calls == 1
    # and the batcher keeps working
    again = await asyncio.gather(*(batcher.run([p]) for p in PROMPTS[3:6]))
    assert [flagged(r[0]) for r in again] == [{"sexual"}, set(), {"violence/graphic"}]
    assert batcher.calls == 2


def test_bad_configuration_is_refused(pool: WorkerPool) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(decode_images, pool=pool, max_batch=0)
    with pytest.raises(ValueError, match="max_wait_ms"):
        MicroBatcher(decode_images, pool=pool, max_wait_ms=-1)
