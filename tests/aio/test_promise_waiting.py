"""How an awaited promise waits for its answer (``AsyncSession.wait_promised``): one generator
from the send to the answer, on both kinds of transport (a push transport over loopback, the
in-memory reading pair). A promise awaited twice gives its one answer twice; a caller cancelled
while it waits, or whose timeout runs out (a loop timer, not ``asyncio.wait_for``), frees its
pending entry and cancels the call on the peer; an answer in time leaves no timer behind; a
``TimeoutError`` raised by the remote method comes through as the remote's own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

import tether
import tether.aio
from tether.testing import async_pair


class Root:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.go = asyncio.Event()
        self.calls = 0

    def add(self, a: int, b: int) -> int:
        self.calls += 1
        return a + b

    async def when_told(self, value: int) -> int:
        self.started.set()
        await self.go.wait()
        return value

    def fail(self) -> None:
        raise ValueError("refused")

    def slow_disk(self) -> None:
        raise TimeoutError("the disk did not answer")

    async def forever(self) -> None:
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


@contextlib.asynccontextmanager
async def connected(kind: str, root: Any, **options: Any) -> AsyncIterator[tuple[Any, Any]]:
    """(client peer, server session) over ``kind``: "push" (tether.aio over loopback) or
    "memory" (the in-memory pair, read by a task)."""
    if kind == "memory":
        async with async_pair(root, **options) as (client, server):
            yield client, server.session
        return
    peers: list[Any] = []

    def factory(peer: Any) -> Any:
        peers.append(peer)
        return root

    async with tether.aio.serve(factory, host="127.0.0.1", port=0, **options) as server:
        async with tether.aio.connect(server.url, **options) as client:
            yield client, peers[0].session


KINDS = ["push", "memory"]


def timers_of(loop: asyncio.AbstractEventLoop, method: str) -> list[Any]:
    """The loop's live timers that would call the session's ``method`` (CPython's loop)."""
    scheduled = loop._scheduled  # type: ignore[attr-defined]
    return [h for h in scheduled if not h.cancelled() and getattr(h._callback, "__name__", "") == method]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_promise_awaited_twice_gives_its_one_answer_twice_and_is_sent_once(kind: str) -> None:
    root = Root()
    async with connected(kind, root) as (client, _):
        promise = client.root.add(2, 3)
        assert await promise == 5
        assert await promise == 5
        assert root.calls == 1
        failing = client.root.fail()
        for _ in range(2):
            with pytest.raises(ValueError, match="refused"):
                await failing
        assert client.stats()["pending"] == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_a_promise_runs_as_a_task_in_gather_and_in_create_task(kind: str) -> None:
    root = Root()
    async with connected(kind, root) as (client, _):
        assert await asyncio.gather(*[client.root.add(i, 1) for i in range(50)]) == list(range(1, 51))
        task = asyncio.create_task(client.root.add(20, 22))
        assert await task == 42
        with pytest.raises(ValueError, match="refused"):
            await asyncio.create_task(client.root.fail())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("as_task", [False, True], ids=["awaited-in-a-task", "the-promise-as-a-task"])
async def test_a_task_cancelled_while_it_awaits_cancels_the_call_on_the_peer(kind: str, as_task: bool) -> None:
    root = Root()
    async with connected(kind, root) as (client, server):

        async def waits() -> None:
            await client.root.forever()

        task = asyncio.create_task(client.root.forever() if as_task else waits())
        await asyncio.wait_for(root.started.wait(), 5)
        assert client.stats()["pending"] == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.stats()["pending"] == 0  # freed at once, not when an answer comes
        await asyncio.wait_for(root.cancelled.wait(), 5)  # and the handler was cancelled
        assert await client.root.add(1, 1) == 2
        assert not server._running


@pytest.mark.parametrize("kind", KINDS)
async def test_a_connection_timeout_fails_the_call_frees_its_entry_and_cancels_it_on_the_peer(kind: str) -> None:
    root = Root()
    async with connected(kind, root, timeout=0.2) as (client, _):
        loop = asyncio.get_running_loop()
        promise = client.root.forever()
        started = loop.time()
        with pytest.raises(TimeoutError, match=r"no answer to 'forever' within 0\.2 s .* cancelled on the other side"):
            await promise
        assert 0.15 < loop.time() - started < 2
        assert client.stats()["pending"] == 0
        await asyncio.wait_for(root.cancelled.wait(), 5)
        with pytest.raises(TimeoutError, match="no answer to 'forever'"):
            await promise  # awaited again: the same outcome, nothing sent again
        assert timers_of(loop, "_expire") == []


@pytest.mark.parametrize("kind", KINDS)
async def test_an_answer_in_time_cancels_its_timer(kind: str) -> None:
    root = Root()
    async with connected(kind, root) as (client, _):
        loop = asyncio.get_running_loop()
        async with tether.timeout(3600):
            task = asyncio.create_task(client.root.when_told(7))
            await asyncio.wait_for(root.started.wait(), 5)
            assert len(timers_of(loop, "_expire")) == 1  # the call's timeout, while it waits
            root.go.set()
            assert await task == 7
            assert await asyncio.gather(*[client.root.add(i, i) for i in range(20)]) == [2 * i for i in range(20)]
        assert timers_of(loop, "_expire") == []  # none left holding its promise for an hour


@pytest.mark.parametrize("kind", KINDS)
async def test_a_timeout_error_raised_by_the_remote_method_is_the_remotes(kind: str) -> None:
    async with connected(kind, Root()) as (client, _):
        for deadline in (None, 5.0):
            async with contextlib.AsyncExitStack() as stack:
                if deadline is not None:
                    await stack.enter_async_context(tether.timeout(deadline))
                with pytest.raises(TimeoutError, match="the disk did not answer"):
                    await client.root.slow_disk()
        assert await client.root.add(1, 1) == 2


class Caller:
    """A server root whose handler calls the client back and waits (its gate slot given up)."""

    async def call_back(self, peer_root: Any, seconds: float) -> str:
        try:
            async with tether.timeout(seconds):
                await peer_root.forever()
        except TimeoutError as exc:
            return str(exc)
        return "answered"


@pytest.mark.parametrize("kind", KINDS)
async def test_a_handler_whose_call_times_out_gives_its_gate_slot_back(kind: str) -> None:
    client_root = Root()
    async with connected(kind, Caller()) as (client, server):
        said = await client.root.call_back(client_root, 0.1)
        assert said.startswith("no answer to 'forever' within 0.1 s")
        await asyncio.wait_for(client_root.cancelled.wait(), 5)
        assert server.gate.waiting == 0 and server.gate.running == 0
        assert not server._pending
