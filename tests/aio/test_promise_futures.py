"""A promise is an asyncio future (``asyncio.isfuture``): ``gather``, ``ensure_future``,
``wait_for``, ``shield`` and ``as_completed`` take it as it is, with no task per promise, on both
kinds of transport (a push transport over loopback, the in-memory reading pair). Subscribing
(``add_done_callback``, or the ``isfuture`` probe those functions make) sends the call once and
waits as ``await`` does: the connection's timeout applies, a handler counts as blocked in its
gate exactly once per promise, ``cancel()`` cancels the call on the peer, and a full write buffer
is drained first."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import pytest

import tether
import tether.aio
from tether.aio.promise import Promise
from tether.gate import current_gate

from .test_promise_waiting import KINDS, Root, connected, timers_of

pytestmark = pytest.mark.timeout(60)


async def until(condition: Any, seconds: float = 5) -> None:
    for _ in range(int(seconds / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("timed out waiting for a condition")


@pytest.mark.parametrize("kind", KINDS)
async def test_gather_takes_promises_as_futures_and_makes_no_task_for_them(kind: str) -> None:
    root = Root()
    async with connected(kind, root) as (client, _):
        loop = asyncio.get_running_loop()
        made: list[Any] = []

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
            made.append(coro)
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(factory)
        try:
            promise = client.root.add(1, 1)
            assert asyncio.isfuture(promise) and asyncio.iscoroutine(promise)
            assert asyncio.ensure_future(promise) is promise
            gathered = await asyncio.gather(promise, *[client.root.add(i, 1) for i in range(50)])
            assert gathered == [2, *range(1, 51)]
            assert await asyncio.wait_for(client.root.add(2, 2), 5) == 4
            assert await asyncio.shield(client.root.add(3, 3)) == 6
            completed = asyncio.as_completed([client.root.add(4, 4), client.root.add(5, 5)])
            assert sorted([await f for f in completed]) == [8, 10]
        finally:
            loop.set_task_factory(None)
        assert not [c for c in made if isinstance(c, Promise)]
        assert await asyncio.create_task(client.root.add(20, 22)) == 42  # still a coroutine to a task
        assert client.stats()["pending"] == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_a_promise_is_sent_once_when_first_subscribed_and_not_before(kind: str) -> None:
    root = Root()
    async with connected(kind, root) as (client, _):
        promise = client.root.add(2, 3)
        await asyncio.sleep(0.05)
        assert root.calls == 0  # neither awaited nor subscribed: nothing sent
        got: list[Any] = []
        promise.add_done_callback(got.append)
        promise.add_done_callback(got.append)
        await until(lambda: root.calls == 1)  # sent by the subscription, before any await
        assert await promise == 5
        assert await asyncio.gather(promise, promise) == [5, 5]
        await until(lambda: len(got) == 2)
        assert got == [promise, promise] and root.calls == 1
        started = client.root.add(1, 1)
        assert asyncio.ensure_future(started) is started
        await until(lambda: root.calls == 2)  # ensure_future starts it, as it did with a task
        assert await started == 2 and root.calls == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_callbacks_get_the_promise_soon_and_in_their_context(kind: str) -> None:
    async with connected(kind, Root()) as (client, _):
        promise = client.root.add(1, 2)
        assert await promise == 3
        var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outside")
        context = contextvars.copy_context()
        context.run(var.set, "inside")
        seen: list[Any] = []
        promise.add_done_callback(lambda p: seen.append((p, var.get())), context=context)
        assert seen == []  # not called from inside add_done_callback, though it is done
        await asyncio.sleep(0)
        assert seen == [(promise, "inside")]
        pending = client.root.add(2, 2)
        removed: list[Any] = []
        pending.add_done_callback(removed.append)
        pending.add_done_callback(seen.append)
        assert pending.remove_done_callback(removed.append) == 1
        assert await pending == 4
        await asyncio.sleep(0)
        assert removed == [] and seen[-1] is pending
        assert promise.done() and not promise.cancelled()
        assert promise.result() == 3 and promise.exception() is None and promise.get_loop() is client.session.loop
        unsent = client.root.add(1, 1)
        assert not unsent.done()
        with pytest.raises(asyncio.InvalidStateError, match=r"not sent yet\): await it"):
            unsent.result()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_failed_call_fails_the_future_as_await_fails(kind: str) -> None:
    async with connected(kind, Root()) as (client, _):
        with pytest.raises(ValueError) as awaited:
            await client.root.fail()
        [returned] = await asyncio.gather(client.root.fail(), return_exceptions=True)
        assert type(returned) is type(awaited.value) and str(returned) == str(awaited.value)
        with pytest.raises(type(awaited.value), match="refused"):
            await asyncio.gather(client.root.add(1, 1), client.root.fail())
        promise = client.root.fail()
        await asyncio.gather(promise, return_exceptions=True)
        assert type(promise.exception()) is type(awaited.value)
        assert client.stats()["pending"] == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_the_timeout_applies_to_a_subscribed_promise_and_leaves_no_timer(kind: str) -> None:
    root = Root()
    async with connected(kind, root, timeout=0.2) as (client, _):
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError, match=r"no answer to 'forever' within 0\.2 s .* cancelled on the other side"):
            await asyncio.gather(client.root.add(1, 1), client.root.forever())
        assert 0.15 < loop.time() - started < 2
        assert client.stats()["pending"] == 0
        await asyncio.wait_for(root.cancelled.wait(), 5)
        assert timers_of(loop, "_expire") == []
        promise = client.root.when_told(5)
        promise.add_done_callback(lambda _: None)
        await asyncio.wait_for(root.started.wait(), 5)
        assert len(timers_of(loop, "_expire")) == 1  # the subscribed call's timeout, while it waits
        root.go.set()
        assert await promise == 5
        assert timers_of(loop, "_expire") == []  # none left behind after the answer
        subscribed = client.root.forever()
        assert asyncio.ensure_future(subscribed) is subscribed  # (the connection's 0.2 s)
        async with tether.timeout(0.05):  # an await's own tighter deadline holds too
            with pytest.raises(TimeoutError, match=r"no answer to 'forever' within 0\.05 s"):
                await subscribed
        assert subscribed.done() and client.stats()["pending"] == 0
        await asyncio.sleep(0.3)
        assert timers_of(loop, "_expire") == []


@pytest.mark.parametrize("kind", KINDS)
async def test_a_call_that_cannot_be_sent_fails_its_promise_not_gather(kind: str) -> None:
    async with connected(kind, Root()) as (client, _):
        root = client.root
        await client.close()
        with pytest.raises(tether.ConnectionLost) as awaited:
            await root.add(1, 1)
        results = await asyncio.gather(root.add(1, 1), root.add(2, 2), return_exceptions=True)
        assert [type(r) for r in results] == [type(awaited.value)] * 2
        promise = root.add(3, 3)
        promise.add_done_callback(lambda _: None)
        with pytest.raises(tether.ConnectionLost, match="closed by this side"):
            await promise


@pytest.mark.parametrize("kind", KINDS)
async def test_cancel_frees_the_entry_and_cancels_the_call_on_the_peer(kind: str) -> None:
    root = Root()
    async with connected(kind, root) as (client, _):
        promise = client.root.forever()
        called: list[Any] = []
        promise.add_done_callback(called.append)
        await asyncio.wait_for(root.started.wait(), 5)
        assert client.stats()["pending"] == 1
        assert promise.cancel() is True
        assert promise.cancelled() and client.stats()["pending"] == 0
        await asyncio.wait_for(root.cancelled.wait(), 5)
        assert promise.cancel() is False
        with pytest.raises(asyncio.CancelledError):
            await promise
        await until(lambda: called == [promise])
        answered = client.root.add(1, 1)
        assert await answered == 2 and answered.cancel() is False and not answered.cancelled()
        unsent = client.root.add(5, 5)
        assert unsent.cancel() is True and unsent.cancelled()
        with pytest.raises(asyncio.CancelledError):
            await unsent
        await asyncio.sleep(0.05)
        assert root.calls == 1  # the cancelled one was never sent
        assert client.stats()["pending"] == 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", ["gather-cancelled", "wait_for-timeout"])
async def test_children_cancelled_by_gather_or_wait_for_cancel_the_call_on_the_peer(kind: str, how: str) -> None:
    root = Root()
    async with connected(kind, root) as (client, _):
        promise = client.root.forever()
        if how == "gather-cancelled":
            gathered = asyncio.gather(promise, client.root.add(1, 1))
            await asyncio.wait_for(root.started.wait(), 5)
            gathered.cancel()
            with pytest.raises(asyncio.CancelledError):
                await gathered
        else:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(promise, 0.1)
        assert promise.cancelled() and client.stats()["pending"] == 0
        await asyncio.wait_for(root.cancelled.wait(), 5)
        assert await client.root.add(2, 2) == 4


class Fanout:
    """A server root whose handler gathers calls to the client, which call back into it."""

    def __init__(self) -> None:
        self.waiting_seen: list[int] = []

    async def fanout(self, peer_root: Any, n: int) -> list[int]:
        return list(await asyncio.gather(*(peer_root.bounce(i) for i in range(n))))

    async def leaf(self, i: int) -> int:
        gate = current_gate.get()
        assert gate is not None
        self.waiting_seen.append(gate.waiting)
        return i * 10

    async def await_one_started_elsewhere(self, peer_root: Any) -> int:
        promise = peer_root.bounce(4)
        contextvars.Context().run(asyncio.ensure_future, promise)  # subscribed outside any handler
        return int(await promise)  # this handler must still count as blocked while it waits

    async def gather_then_give_up(self, peer_root: Any, how: str) -> str:
        try:
            if how == "timeout":
                async with tether.timeout(0.1):
                    await asyncio.gather(peer_root.forever(), peer_root.forever())
            else:
                await asyncio.wait_for(peer_root.forever(), 0.1)
        except TimeoutError:
            return "gave up"
        return "answered"


class Bouncer(Root):
    server_root: Any = None

    async def bounce(self, i: int) -> int:
        return int(await self.server_root.leaf(i)) + 1


@pytest.mark.parametrize("kind", KINDS)
async def test_a_handler_gathering_calls_that_call_back_counts_as_blocked_once_per_promise(kind: str) -> None:
    server_root, client_root = Fanout(), Bouncer()
    async with connected(kind, server_root, limits=tether.Limits(max_concurrency=1)) as (client, server):
        client_root.server_root = client.root
        answers = await asyncio.wait_for(client.root.fanout(client_root, 3), 10)  # no deadlock
        assert answers == [1, 11, 21]
        assert max(server_root.waiting_seen) == 3  # three promises waiting, each counted once
        await until(lambda: server.gate.waiting == 0 and server.gate.running == 0)
        assert await asyncio.wait_for(client.root.await_one_started_elsewhere(client_root), 10) == 41
        await until(lambda: server.gate.waiting == 0 and server.gate.running == 0)
        for how in ("timeout", "wait_for"):
            assert await client.root.gather_then_give_up(client_root, how) == "gave up"
            await until(lambda: server.gate.waiting == 0 and server.gate.running == 0)  # released on failure
        assert not server._pending


async def test_a_full_write_buffer_is_drained_before_a_subscribed_promise_completes() -> None:
    root = Root()
    async with connected("push", root) as (client, _):
        transport = client.session.transport
        transport.writing_paused = True  # as pause_writing() leaves it, without filling the socket
        try:
            promise = client.root.add(1, 2)
            done: list[Any] = []
            promise.add_done_callback(done.append)
            await until(lambda: promise._future.done())  # answered (the socket was not really full)
            await asyncio.sleep(0.05)
            assert not promise.done() and done == []  # but waiting for the drain, as `await` would
        finally:
            transport.resume_writing()
        await until(lambda: done == [promise])
        assert promise.result() == 3
        transport.writing_paused = True
        try:
            stuck = client.root.forever()
            stuck.add_done_callback(lambda _: None)
            await asyncio.wait_for(root.started.wait(), 5)
            assert stuck.cancel() is True
            await until(stuck.cancelled)
        finally:
            transport.resume_writing()
        await asyncio.wait_for(root.cancelled.wait(), 5)
        assert client.stats()["pending"] == 0


class Counter:
    def __init__(self) -> None:
        self.value = 0

    def increment(self) -> int:
        self.value += 1
        return self.value


class Factory:
    def make_counter(self) -> Counter:
        return Counter()


@pytest.mark.parametrize("kind", KINDS)
async def test_pipelined_promises_gather_like_others(kind: str) -> None:
    async with connected(kind, Factory()) as (client, _):
        counter = client.root.make_counter()
        first, second = counter.increment(), counter.increment()
        assert await asyncio.gather(first, second) == [1, 2]
        assert await counter.increment() == 3
        assert await asyncio.gather(counter) is not None


async def test_gathered_calls_in_a_handler_are_nested_in_its_exchange() -> None:
    """Sent from the handler's own task, a gathered call says it is nested in the call the
    handler runs (``on_behalf``): a blocking caller runs the callbacks itself."""
    ran_on: list[int] = []

    class Server:
        async def call_back_all(self, fs: list[Any]) -> int:
            return len(await asyncio.gather(*(f() for f in fs)))

    async with tether.aio.serve(Server(), host="127.0.0.1", port=0) as server:

        def caller() -> None:
            with tether.connect(server.url) as peer:
                assert peer.root.call_back_all([lambda: ran_on.append(threading.get_ident())]) == 1
                ran_on.append(-threading.get_ident())

        thread = threading.Thread(target=caller)
        thread.start()
        await until(lambda: not thread.is_alive(), 10)
    assert len(ran_on) == 2 and ran_on[0] == -ran_on[1]  # on the caller's own thread
