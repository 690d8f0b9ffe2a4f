"""The asyncio runtime over in-memory transports."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import tether
import tether.aio
from tether.testing import async_pair


class AsyncService:
    def add(self, a: int, b: int) -> int:
        return a + b

    async def aadd(self, a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    def echo(self, x: Any) -> Any:
        return x

    def blocking(self, seconds: float) -> str:
        time.sleep(seconds)
        return "done"

    async def bounce(self, n: int, other: Any) -> int:
        return 0 if n == 0 else 1 + await other.bounce(n - 1, self)

    def sync_bounce(self, n: int, other: Any) -> int:
        # A plain method on an asyncio peer runs in a worker thread, where proxies block.
        return 0 if n == 0 else 1 + other.sync_bounce(n - 1, self)

    async def call(self, f: Any, x: Any) -> Any:
        return await f(x)

    def fail(self) -> None:
        raise ValueError("bad value")

    def numbers(self, n: int) -> Any:
        return iter(range(n))

    def make(self) -> Any:
        return Counter()


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def bump(self) -> int:
        self.n += 1
        return self.n


class AsyncBouncer:
    async def bounce(self, n: int, other: Any) -> int:
        return 0 if n == 0 else 1 + await other.bounce(n - 1, self)

    def sync_bounce(self, n: int, other: Any) -> int:
        return 0 if n == 0 else 1 + other.sync_bounce(n - 1, self)


async def test_calls_sync_and_async_methods() -> None:
    async with async_pair(AsyncService()) as (client, _):
        assert await client.root.add(3, 4) == 7
        assert await client.root.aadd(3, 4) == 7


async def test_reference_identity_and_errors() -> None:
    async with async_pair(AsyncService()) as (client, _):
        thing = object()
        assert await client.root.echo(thing) is thing
        with pytest.raises(ValueError, match="bad value"):
            await client.root.fail()


async def test_plain_value_operations_refuse_to_block_the_loop() -> None:
    async with async_pair(AsyncService()) as (client, _):
        counter = await client.root.make()
        with pytest.raises(tether.UsageError, match=r"await tether\.aio\.call"):
            len(counter)
        assert await tether.aio.call(counter, "bump") == 1


async def test_async_for_fetches_in_batches() -> None:
    async with async_pair(AsyncService()) as (client, _):
        source = await client.root.numbers(10_000)
        before = client.stats()["frames_sent"]
        total = 0
        async for i in source:
            total += i
        assert total == sum(range(10_000))
        assert client.stats()["frames_sent"] - before < 20


async def test_nested_async_calls_500_hops() -> None:
    async with async_pair(AsyncService(), AsyncBouncer()) as (client, _):
        assert await client.root.bounce(500, AsyncBouncer()) == 500


async def test_nested_calls_through_worker_threads_500_hops() -> None:
    async with async_pair(AsyncService(), AsyncBouncer()) as (client, _):
        assert await client.root.sync_bounce(500, AsyncBouncer()) == 500


async def test_server_awaits_a_client_coroutine_function() -> None:
    async def double(x: int) -> int:
        return 2 * x

    async with async_pair(AsyncService()) as (client, _):
        assert await client.root.call(double, 21) == 42


async def test_blocking_handlers_run_in_threads_and_do_not_stall_the_loop() -> None:
    async with async_pair(AsyncService()) as (client, _):
        slow = [asyncio.ensure_future(client.root.blocking(0.5)) for _ in range(50)]
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        assert await client.root.add(1, 1) == 2
        assert time.perf_counter() - started < 0.3
        assert await asyncio.gather(*slow) == ["done"] * 50


async def test_gathered_calls() -> None:
    async with async_pair(AsyncService()) as (client, _):
        results = await asyncio.gather(*[client.root.aadd(i, 1) for i in range(1000)])
        assert results == [i + 1 for i in range(1000)]


async def test_close_fails_pending_calls() -> None:
    async with async_pair(AsyncService()) as (client, server):
        pending = asyncio.ensure_future(client.root.blocking(3))
        await asyncio.sleep(0.05)
        await server.close()
        with pytest.raises(tether.ConnectionLost):
            await asyncio.wait_for(pending, 1)
        with pytest.raises(tether.ConnectionLost):
            await client.root.add(1, 2)


class _ThreadRecorder:
    """A plain-method bouncer (so each side runs it in a worker thread) noting its threads."""

    def __init__(self) -> None:
        import threading

        self.threads: set[int] = set()
        self._ident = threading.get_ident

    def bounce(self, n: int, other: Any) -> int:
        self.threads.add(self._ident())
        return 0 if n == 0 else 1 + other.bounce(n - 1, self)


async def test_nested_calls_between_worker_threads_run_on_the_waiting_threads() -> None:
    """The asyncio runtime's thread callers wait as the threading runtime's do: a hop sent on
    behalf of their call runs on their thread, so 200 hops hold a few threads a side, not 100."""
    from tether.waiter import MAX_INLINE_NESTING

    server_side, client_side = _ThreadRecorder(), _ThreadRecorder()
    async with async_pair(server_side) as (client, _):
        assert await client.root.bounce(200, client_side) == 200
    bound = 100 // MAX_INLINE_NESTING + 3
    assert len(server_side.threads) <= bound, f"{len(server_side.threads)} server threads for 100 hops"
    assert len(client_side.threads) <= bound, f"{len(client_side.threads)} client threads for 100 hops"
