"""The one bounded worker pool for CPU work (ONNX, c2pa, codecs), owned by the app lifespan."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["WorkerPool"]

P = ParamSpec("P")
T = TypeVar("T")


class WorkerPool:
    """``await pool.cpu(fn, *args)`` runs ``fn`` on one of ``size`` threads.

    At most ``size * 4`` calls wait at once; further callers wait on the event loop (back
    pressure) instead of growing an unbounded queue.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="genguard-cpu")
        self._slots = asyncio.Semaphore(size * 4)

    async def cpu(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        call = functools.partial(context.run, fn, *args, **kwargs)
        async with self._slots:
            return await loop.run_in_executor(self._executor, call)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
