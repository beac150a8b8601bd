"""An upstream HTTP client that stays cheap per request at high concurrency.

httpcore's connection pool (under ``httpx.AsyncClient``) walks every connection it holds, polling
each idle socket for expiry, twice per request: its CPU cost per request grows with the number of
pooled connections. Against a zero-latency upstream from one event loop, one ``AsyncClient``
costs about 0.75 ms of CPU per request at concurrency 1 and 2.7 ms at concurrency 32 (3-4 ms at
128); spreading the same load over shards of at most a few busy connections keeps it at
0.6-0.8 ms (``docs/benchmarks.md``, "Request path CPU").

``ShardedAsyncClient`` holds ``shards`` independent ``httpx.AsyncClient``s and sends each request
through the first shard with fewer than ``busy_per_shard`` requests in flight (the least busy
when all are): at low concurrency every request uses shard 0 and its one kept-alive connection.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["ShardedAsyncClient"]


class ShardedAsyncClient:
    """``request()`` like ``httpx.AsyncClient.request`` over several clients; ``aclose()`` all.

    ``client_options`` go to every shard's ``httpx.AsyncClient``; ``limits`` apply per shard.
    With a custom ``transport`` (tests, custom networking) there is one shard: a transport is
    one connection pool already.
    """

    def __init__(
        self,
        *,
        shards: int = 32,
        busy_per_shard: int = 4,
        limits: httpx.Limits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        **client_options: Any,
    ) -> None:
        if shards < 1 or busy_per_shard < 1:
            raise ValueError("shards and busy_per_shard must be at least 1")
        count = 1 if transport is not None else shards
        limits = limits or httpx.Limits(max_connections=16, max_keepalive_connections=16)
        self._clients = tuple(
            httpx.AsyncClient(limits=limits, transport=transport, **client_options)
            for _ in range(count)
        )
        self._busy = [0] * count
        self._busy_per_shard = busy_per_shard

    async def request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        shard = self._pick()
        self._busy[shard] += 1
        try:
            return await self._clients[shard].request(method, url, **kwargs)
        finally:
            self._busy[shard] -= 1

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    def _pick(self) -> int:
        busy = self._busy
        for shard, in_flight in enumerate(busy):
            if in_flight < self._busy_per_shard:
                return shard
        return busy.index(min(busy))
