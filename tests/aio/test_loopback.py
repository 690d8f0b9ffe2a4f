"""The async face over real WebSockets on loopback, and mixing the two faces."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from typing import Any

import pytest

import tether
import tether.aio

from ..native.services import Calculator


class AsyncCalculator(Calculator):
    async def aadd(self, a: int, b: int) -> int:
        return a + b

    async def abounce(self, n: int, other: Any) -> int:
        return 0 if n == 0 else 1 + await other.abounce(n - 1, self)

    async def acall(self, f: Any, x: Any) -> Any:
        return await f(x)


class AsyncClientRoot:
    async def abounce(self, n: int, other: Any) -> int:
        return 0 if n == 0 else 1 + await other.abounce(n - 1, self)

    def bounce(self, n: int, other: Any) -> int:
        return 0 if n == 0 else 1 + other.bounce(n - 1, self)


async def test_the_issue_example_async() -> None:
    async with tether.aio.serve(Calculator(), host="127.0.0.1", port=0) as server:
        async with tether.aio.connect(server.url) as peer:
            assert await peer.root.add(3, 4) == 7


async def test_nested_async_calls_500_hops() -> None:
    async with tether.aio.serve(AsyncCalculator(), host="127.0.0.1", port=0) as server:
        async with tether.aio.connect(server.url) as peer:
            assert await peer.root.abounce(500, AsyncClientRoot()) == 500


async def test_nested_sync_handlers_on_async_peers_500_hops() -> None:
    async with tether.aio.serve(AsyncCalculator(), host="127.0.0.1", port=0) as server:
        async with tether.aio.connect(server.url) as peer:
            assert await peer.root.bounce(500, AsyncClientRoot()) == 500


async def test_200_blocking_calls_on_an_async_server_and_a_quick_call_meanwhile() -> None:
    async with tether.aio.serve(AsyncCalculator(), host="127.0.0.1", port=0) as server:
        async with tether.aio.connect(server.url) as peer:
            root = peer.root
            started = time.perf_counter()
            slow = [asyncio.ensure_future(root.sleep(1)) for _ in range(200)]
            await asyncio.sleep(0.2)
            quick = time.perf_counter()
            assert await root.aadd(1, 2) == 3
            assert time.perf_counter() - quick < 0.5
            assert await asyncio.gather(*slow) == ["slept"] * 200
            assert time.perf_counter() - started < 5


async def test_server_awaits_a_client_coroutine() -> None:
    async def triple(x: int) -> int:
        return 3 * x

    async with tether.aio.serve(AsyncCalculator(), host="127.0.0.1", port=0) as server:
        async with tether.aio.connect(server.url) as peer:
            assert await peer.root.acall(triple, 14) == 42


async def test_async_factory_gets_the_peer_and_calls_the_client_back() -> None:
    class Root:
        def __init__(self, peer: Any) -> None:
            self.peer = peer

        async def greet(self) -> str:
            client = await self.peer.fetch_root()
            return str(await client.name())

    class ClientRoot:
        def name(self) -> str:
            return "client"

    async with tether.aio.serve(lambda peer: Root(peer), host="127.0.0.1", port=0) as server:
        async with tether.aio.connect(server.url, root=ClientRoot()) as peer:
            assert await peer.root.greet() == "client"


async def test_sync_client_against_an_async_server() -> None:
    async with tether.aio.serve(AsyncCalculator(), host="127.0.0.1", port=0) as server:

        def use() -> tuple[int, int]:
            with tether.connect(server.url) as peer:
                return peer.root.add(1, 2), peer.root.aadd(3, 4)

        assert await asyncio.to_thread(use) == (3, 7)


async def test_async_client_against_a_sync_server() -> None:
    with tether.serve(Calculator(), host="127.0.0.1", port=0) as server:
        async with tether.aio.connect(server.url) as peer:
            assert await peer.root.add(5, 6) == 11
            thing = object()
            assert await peer.root.echo(thing) is thing


async def test_async_references_are_released() -> None:
    class Token:
        pass

    async with tether.aio.serve(Calculator(), host="127.0.0.1", port=0) as server:
        async with tether.aio.connect(server.url) as peer:
            baseline = peer.stats()["exposed"]
            for _ in range(2_000):
                await peer.root.echo(Token())
            for _ in range(200):
                gc.collect()
                if peer.stats()["exposed"] == baseline:
                    break
                await asyncio.sleep(0.02)
            assert peer.stats()["exposed"] == baseline


async def test_server_close_fails_pending_async_calls_within_a_second() -> None:
    server = await tether.aio.serve(Calculator(), host="127.0.0.1", port=0)
    peer = await tether.aio.connect(server.url)
    pending = asyncio.ensure_future(peer.root.sleep(10))
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    await server.close()
    with pytest.raises(tether.ConnectionLost):
        await asyncio.wait_for(pending, 2)
    assert time.perf_counter() - started < 1.5
    await peer.close()
    assert not [t for t in threading.enumerate() if t.name == "tether-reader" and t.is_alive()]


class Forever:
    def __init__(self) -> None:
        self.cancelled = asyncio.Event()

    async def forever(self) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    def add(self, a: int, b: int) -> int:
        return a + b


async def test_wait_for_on_a_remote_call_cancels_the_handler_on_the_server() -> None:
    root = Forever()
    async with tether.aio.serve(root, port=0) as srv:
        async with tether.aio.connect(srv.url) as peer:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(peer.root.forever(), 0.1)
            await asyncio.wait_for(root.cancelled.wait(), 2)  # observed where the handler ran
            assert peer.stats()["pending"] == 0
            assert await peer.root.add(1, 2) == 3
