"""Nested calls over real WebSockets on loopback: a callback runs on the thread that waits for
the call it is nested in (sync server and asyncio server), a 500-hop chain between two sync
peers holds a few threads a side, and a callback a handler does not wait for itself (a task or
thread it started) never holds up the caller's answer."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import tether
import tether.aio
from tether.waiter import MAX_INLINE_NESTING


class Recorder:
    def __init__(self) -> None:
        self.threads: set[int] = set()

    def bounce(self, n: int, other: Any) -> int:
        self.threads.add(threading.get_ident())
        return 0 if n == 0 else 1 + other.bounce(n - 1, self)


class SyncServer(Recorder):
    def call_back(self, f: Any) -> Any:
        return f()


class AsyncServer:
    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    async def call_back(self, f: Any) -> Any:
        return await f()

    async def call_back_in_a_task(self, f: Any) -> str:
        task = asyncio.get_running_loop().create_task(tether.aio.call(f, "__call__"))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return "returned"


def test_a_callback_from_a_sync_server_runs_on_the_waiting_thread() -> None:
    with tether.serve(SyncServer(), host="127.0.0.1", port=0) as server, tether.connect(server.url) as peer:
        ran_on: list[int] = []
        peer.root.call_back(lambda: ran_on.append(threading.get_ident()))
        assert ran_on == [threading.get_ident()]


def test_a_500_hop_chain_over_websockets_holds_a_few_threads_a_side() -> None:
    server_side, client_side = SyncServer(), Recorder()
    with tether.serve(server_side, host="127.0.0.1", port=0) as server, tether.connect(server.url) as peer:
        assert peer.root.bounce(500, client_side) == 500
    bound = 250 // MAX_INLINE_NESTING + 2
    assert len(server_side.threads) <= bound
    assert len(client_side.threads) <= bound


async def test_a_callback_awaited_by_an_async_handler_runs_on_the_sync_callers_thread() -> None:
    async with tether.aio.serve(AsyncServer(), host="127.0.0.1", port=0) as server:

        def use() -> tuple[int, list[int]]:
            ran_on: list[int] = []
            with tether.connect(server.url) as peer:
                peer.root.call_back(lambda: ran_on.append(threading.get_ident()))
            return threading.get_ident(), ran_on

        caller, ran_on = await asyncio.to_thread(use)
        assert ran_on == [caller]


async def test_a_callback_in_a_task_the_handler_started_does_not_hold_the_answer() -> None:
    async with tether.aio.serve(AsyncServer(), host="127.0.0.1", port=0) as server:

        def use() -> list[bool]:
            may_finish = threading.Event()
            finished: list[bool] = []

            def f() -> None:
                finished.append(may_finish.wait(10))

            with tether.connect(server.url) as peer:
                assert peer.root.call_back_in_a_task(f) == "returned"
                may_finish.set()  # only after the call returned
                deadline = time.monotonic() + 10
                while not finished and time.monotonic() < deadline:
                    time.sleep(0.01)
            return finished

        assert await asyncio.to_thread(use) == [True]
