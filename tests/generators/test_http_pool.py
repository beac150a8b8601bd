"""``ShardedAsyncClient`` against a real uvicorn server that reports each request's connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from generators.http_pool import ShardedAsyncClient
from tests.serving import serve_in_thread


def _barrier_app() -> Starlette:
    """``GET /?group=G&wait=N`` answers with the client's port once N requests of G are in."""
    groups: dict[str, tuple[list[int], asyncio.Event]] = {}

    async def endpoint(request: Request) -> JSONResponse:
        group, wait = request.query_params["group"], int(request.query_params["wait"])
        arrived, everyone_in = groups.setdefault(group, ([0], asyncio.Event()))
        arrived[0] += 1
        if arrived[0] >= wait:
            everyone_in.set()
        await everyone_in.wait()
        assert request.client is not None
        return JSONResponse({"port": request.client.port})

    return Starlette(routes=[Route("/", endpoint)])


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with serve_in_thread(_barrier_app()) as url:
        yield url


@pytest.fixture
async def client() -> AsyncIterator[ShardedAsyncClient]:
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4, keepalive_expiry=600)
    sharded = ShardedAsyncClient(shards=8, busy_per_shard=2, limits=limits)
    yield sharded
    await sharded.aclose()


async def _port(client: ShardedAsyncClient, url: str, group: str, wait: int) -> int:
    response = await client.request("GET", f"{url}/", params={"group": group, "wait": wait})
    response.raise_for_status()
    port: int = response.json()["port"]
    return port


async def test_sequential_requests_share_one_connection(
    client: ShardedAsyncClient, server_url: str
) -> None:
    ports = {await _port(client, server_url, f"seq-{i}", 1) for i in range(5)}
    assert len(ports) == 1


async def test_concurrent_requests_keep_their_connections_alive(
    client: ShardedAsyncClient, server_url: str
) -> None:
    async def burst(group: str) -> list[int]:
        return list(await asyncio.gather(*(_port(client, server_url, group, 6) for _ in range(6))))

    first = await burst("burst-1")
    assert len(set(first)) == 6  # six requests held in flight at once: six connections
    second = await burst("burst-2")
    assert set(second) == set(first)  # the same six again: nothing reconnected
    assert await _port(client, server_url, "after", 1) in first


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ShardedAsyncClient(shards=0)
