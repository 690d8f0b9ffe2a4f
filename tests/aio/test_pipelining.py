"""Promise pipelining on the async face: a method called on a call's answer before it arrives
is sent at once, to that answer (``docs/protocol.md`` 4.1), so a dependent chain costs one
round trip; errors go down the chain; kept answers are dropped when their promise is garbage."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

import tether
from tether.aio.promise import Promise
from tether.testing import async_memory_pair
from tether.words import TAG_ANSWER, TAG_TETHER, pack_word


class Counter:
    def __init__(self, start: int = 0) -> None:
        self.value = start

    def increment(self, by: int = 1) -> int:
        self.value += by
        return self.value

    def child(self) -> Counter:
        return Counter(self.value * 10)

    async def achild(self) -> Counter:
        await asyncio.sleep(0.01)
        return Counter(self.value + 100)

    def broken_child(self) -> Counter:
        raise ValueError("no child today")


class Factory:
    def __init__(self) -> None:
        self.made: list[Counter] = []

    def make_counter(self, start: int = 0) -> Counter:
        counter = Counter(start)
        self.made.append(counter)
        return counter


class Recording:
    """An in-memory transport that notes the kind of every frame it sends and receives."""

    def __init__(self, inner: Any, log: list[str]) -> None:
        self.inner, self.log = inner, log

    async def send(self, data: bytes) -> None:
        if data[:4] == pack_word(TAG_TETHER):
            self.log.append("sent call")
        await self.inner.send(data)

    async def recv(self) -> bytes | str:
        data = await self.inner.recv()
        if isinstance(data, bytes) and data[:4] == pack_word(TAG_ANSWER):
            self.log.append("received answer")
        return data  # type: ignore[no-any-return]

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.inner.close(code, reason)


async def connected(root: object, **options: Any) -> tuple[Any, Any, list[str]]:
    from tether.aio.session import AsyncPeer, AsyncSession, open_async_session

    a, b = async_memory_pair()
    server = AsyncSession(b, client=False, url="memory server", **options)
    server_peer = AsyncPeer(server)
    server.protocol.root = root
    await server.start()
    log: list[str] = []
    client = await open_async_session(Recording(a, log), url="memory client")
    log.clear()
    return client, server_peer, log


async def test_a_chain_of_five_is_sent_before_any_answer_comes_back() -> None:
    client, server, log = await connected(Factory())
    try:
        chain = client.root.make_counter(1).child().child().achild().increment(5)
        assert isinstance(chain, Promise)
        assert await chain == 1 * 10 * 10 + 100 + 5
        assert log[:5] == ["sent call"] * 5, log  # all five went out before the first answer
    finally:
        await client.close()
        await server.close()


async def test_an_error_goes_down_the_chain() -> None:
    client, server, _ = await connected(Factory())
    try:
        with pytest.raises(ValueError, match="no child today"):
            await client.root.make_counter().broken_child().increment()
        assert await client.root.make_counter(2).increment() == 3  # the connection goes on
    finally:
        await client.close()
        await server.close()


async def test_an_attribute_of_the_answer_to_come_is_read_in_the_same_round_trip() -> None:
    client, server, log = await connected(Factory())
    try:
        assert await client.root.make_counter(7).value == 7
        assert log[:2] == ["sent call", "sent call"], log
    finally:
        await client.close()
        await server.close()


async def test_kept_answers_are_dropped_and_objects_released_when_promises_are_garbage() -> None:
    factory = Factory()
    client, server, _ = await connected(factory)
    try:
        exposed = server.stats()["exposed"]
        first = client.root.make_counter()
        second = first.child()
        assert await second.increment() == 1
        assert len(server.session.kept) == 2  # the answers of make_counter and child
        del first, second
        factory.made.clear()
        for _ in range(200):
            gc.collect()
            await asyncio.sleep(0.01)
            if not len(server.session.kept) and server.stats()["exposed"] == exposed:
                break
        assert len(server.session.kept) == 0
        assert server.stats()["exposed"] == exposed
    finally:
        await client.close()
        await server.close()


async def test_awaiting_first_then_chaining_says_what_to_do() -> None:
    client, server, _ = await connected(Factory())
    try:
        promise = client.root.make_counter()
        counter = await promise
        assert await counter.increment() == 1  # the awaited result is an ordinary proxy
        with pytest.raises(tether.UsageError, match="use the awaited result"):
            promise.increment()
    finally:
        await client.close()
        await server.close()


async def test_promises_work_with_create_task_gather_and_wait_for() -> None:
    client, server, _ = await connected(Factory())
    try:
        task = asyncio.create_task(client.root.make_counter(3).increment())
        results = await asyncio.gather(*(client.root.make_counter(n).increment() for n in range(5)))
        assert await task == 4 and results == [1, 2, 3, 4, 5]
        assert await asyncio.wait_for(client.root.make_counter(8).increment(), 5) == 9
    finally:
        await client.close()
        await server.close()


async def test_kept_answers_are_bounded() -> None:
    client, server, _ = await connected(Factory(), limits=tether.Limits(max_kept_answers=2))
    try:
        held = [client.root.make_counter(n) for n in range(3)]
        chained = [p.increment() for p in held]  # three answers asked to be kept
        results = await asyncio.gather(*chained, return_exceptions=True)
        assert results[:2] == [1, 2]
        assert isinstance(results[2], tether.ProtocolError) and "Limits.max_kept_answers" in str(results[2])
        with pytest.raises(tether.Busy, match=r"Limits\.max_kept_answers"):
            await held[2]
    finally:
        await client.close()
        await server.close()
