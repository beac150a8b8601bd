"""Micro-batching: concurrent calls of one model merged into one call on the worker pool.

A ``MicroBatcher`` wraps one CPU-bound batch function (``fn(items) -> results``, one result per
item, in order: the ``classify`` of an image classifier, the MiniLM encoder). Callers on the
event loop ``await batcher.run(items)``. The first caller of a batch starts a timer of
``max_wait_ms``; every caller arriving before it fires joins the batch, and a batch that reaches
``max_batch`` items is dispatched at once. The batch runs as ONE ``fn`` call in the worker pool
and each caller gets back exactly the results of its own items.

- An exception raised by ``fn`` (or a result count that does not match) is raised to every
  caller of that batch.
- A caller cancelled before its batch is dispatched (a stage timeout) is left out of the batch;
  one cancelled after dispatch just does not receive its results. Neither affects the others.
- One caller's items are never split across batches; a caller with more than ``max_batch``
  items is dispatched as a batch of its own.

The batcher lives on one event loop (built by the pipeline, which the lifespan owns) and holds
no model: it only decides when to call ``fn``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gateway.workers import WorkerPool

__all__ = ["MicroBatcher"]

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(eq=False)
class _Caller(Generic[In, Out]):
    items: Sequence[In]
    future: asyncio.Future[list[Out]]


@dataclass(eq=False)
class _Batch(Generic[In, Out]):
    callers: list[_Caller[In, Out]] = field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None


class MicroBatcher(Generic[In, Out]):
    """Merges concurrent ``run`` calls arriving within ``max_wait_ms`` into one ``fn`` call."""

    def __init__(
        self,
        fn: Callable[[Sequence[In]], Sequence[Out]],
        *,
        pool: WorkerPool,
        max_wait_ms: float = 2.0,
        max_batch: int = 32,
        name: str = "",
    ) -> None:
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.name = name or getattr(fn, "__qualname__", "batch")
        self._fn = fn
        self._pool = pool
        self._max_wait_s = max_wait_ms / 1000.0
        self._max_batch = max_batch
        self._open: _Batch[In, Out] | None = None
        self._running: set[asyncio.Task[None]] = set()
        # counters (read by tests and the benchmark): model calls made, items and callers served
        self.calls = 0
        self.items = 0
        self.callers = 0

    @property
    def mean_batch(self) -> float:
        """Mean items per model call so far."""
        return self.items / self.calls if self.calls else 0.0

    async def run(self, items: Sequence[In]) -> list[Out]:
        """The results of ``items`` (in order), computed in a batch with concurrent callers."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        caller: _Caller[In, Out] = _Caller(list(items), loop.create_future())
        batch = self._open
        if batch is not None and batch.size + len(caller.items) > self._max_batch:
            self._dispatch(batch)  # full: this caller starts the next batch
            batch = None
        if batch is None:
            batch = _Batch()
            self._open = batch
            batch.timer = loop.call_later(self._max_wait_s, self._dispatch, batch)
        batch.callers.append(caller)
        batch.size += len(caller.items)
        if batch.size >= self._max_batch:
            self._dispatch(batch)
        return await caller.future

    async def submit(self, item: In) -> Out:
        """One item's result (``run([item])[0]``)."""
        return (await self.run([item]))[0]

    def _dispatch(self, batch: _Batch[In, Out]) -> None:
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        if self._open is batch:
            self._open = None
        callers = [c for c in batch.callers if not c.future.done()]  # cancelled callers drop out
        batch.callers = []
        if not callers:
            return
        task = asyncio.get_running_loop().create_task(self._execute(callers))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _execute(self, callers: list[_Caller[In, Out]]) -> None:
        merged = [item for caller in callers for item in caller.items]
        self.calls += 1
        self.items += len(merged)
        self.callers += len(callers)
        try:
            results = list(await self._pool.cpu(self._fn, merged))
            if len(results) != len(merged):
                raise RuntimeError(
                    f"{self.name} returned {len(results)} results for {len(merged)} inputs"
                )
        except Exception as exc:
            for caller in callers:
                if not caller.future.done():
                    caller.future.set_exception(exc)
            return
        except BaseException:  # the task itself was cancelled (shutdown): do not strand callers
            for caller in callers:
                caller.future.cancel()
            raise
        start = 0
        for caller in callers:
            end = start + len(caller.items)
            if not caller.future.done():
                caller.future.set_result(results[start:end])
            start = end
