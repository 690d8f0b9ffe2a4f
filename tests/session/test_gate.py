"""Limits.max_concurrency: one peer's messages running at once are bounded, more wait in
order, and beyond the queue they are answered with tether.Busy; both runtimes."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import tether
from tether.gate import CallGate
from tether.testing import async_pair, pair


class Blocking:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def block(self, n: int) -> int:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.release.wait(10)
        with self.lock:
            self.running -= 1
        return n

    async def ablock(self, n: int) -> int:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        while not self.release.is_set():
            await asyncio.sleep(0.005)
        with self.lock:
            self.running -= 1
        return n


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_the_gate_starts_in_order_and_refuses_beyond_its_queue() -> None:
    started: list[int] = []
    refused: list[tuple[int, BaseException]] = []
    gate = CallGate(2, 2, started.append, lambda m, e: refused.append((m, e)))
    for n in range(6):
        gate.submit(n)
    assert started == [0, 1] and gate.queued == 2
    assert [m for m, _ in refused] == [4, 5] and isinstance(refused[0][1], tether.Busy)
    assert "Limits.max_concurrency" in str(refused[0][1])
    gate.done()
    assert started == [0, 1, 2]
    gate.done()
    gate.done()
    gate.done()
    assert started == [0, 1, 2, 3] and gate.running == 0


class Sized:
    """A queued message with the bytes of its frame (``MessageSend.size``)."""

    def __init__(self, n: int, size: int) -> None:
        self.n, self.size = n, size

    def __repr__(self) -> str:
        return f"Sized({self.n}, {self.size})"


def test_the_gate_refuses_what_would_take_its_queue_past_max_queued_bytes() -> None:
    started: list[int] = []
    refused: list[tuple[int, BaseException]] = []
    gate = CallGate(1, 100, lambda m: started.append(m.n), lambda m, e: refused.append((m.n, e)), max_queued_bytes=1000)
    gate.submit(Sized(0, 10))  # runs
    gate.submit(Sized(1, 600))
    gate.submit(Sized(2, 500))  # 1,100 bytes would wait: refused
    gate.submit(Sized(3, 400))  # 1,000: fits
    assert started == [0] and gate.queued == 2 and gate.queued_bytes == 1000
    assert [n for n, _ in refused] == [2] and isinstance(refused[0][1], tether.Busy)
    assert "Limits.max_queued_bytes (1000)" in str(refused[0][1]) and "500" in str(refused[0][1])
    gate.done()
    assert started == [0, 1] and gate.queued_bytes == 400
    gate.done()
    assert started == [0, 1, 3] and gate.queued_bytes == 0
    gate.submit(Sized(4, 5000))  # an empty queue takes one message, however big (the frame size bounds it)
    assert gate.queued == 1 and gate.queued_bytes == 5000
    gate.submit(Sized(5, 1))
    assert [n for n, _ in refused] == [2, 5]
    assert gate.withdraw(lambda m: m.n == 4) and gate.queued_bytes == 0
    gate.submit(Sized(6, 70))
    assert gate.clear() and gate.queued_bytes == 0


def test_calls_whose_frames_would_pass_max_queued_bytes_are_answered_busy() -> None:
    """End to end: the frames' real sizes count. Two calls of 120 KiB wait behind a blocked
    one; a third would take the queue past 300,000 bytes and is answered Busy, not queued; the
    others run once the first is let go."""
    root = Blocking()
    big = b"x" * 120_000
    with pair(root, limits=tether.Limits(max_concurrency=1, max_queued_bytes=300_000)) as (client, server):
        results: list[Any] = []
        first = threading.Thread(target=lambda: results.append(client.root.block(0)))
        first.start()
        wait_until(lambda: root.running == 1)
        queued = [threading.Thread(target=lambda n=n: results.append(client.root.block((n, big)))) for n in (1, 2)]
        for t in queued:
            t.start()
        wait_until(lambda: server.session.gate.queued == 2)
        assert server.session.gate.queued_bytes > 240_000
        with pytest.raises(tether.Busy, match=r"Limits.max_queued_bytes \(300000\)"):
            client.root.block((3, big))
        root.release.set()
        for t in [first, *queued]:
            t.join(10)
        assert sorted(r if isinstance(r, int) else r[0] for r in results) == [0, 1, 2]
        assert server.session.gate.queued_bytes == 0
        assert client.root.block(4) == 4


def test_a_peer_runs_at_most_max_concurrency_messages_at_once_and_the_rest_wait() -> None:
    root = Blocking()
    with pair(root, limits=tether.Limits(max_concurrency=4)) as (client, server):
        results: list[int] = []
        threads = [threading.Thread(target=lambda n=n: results.append(client.root.block(n))) for n in range(20)]
        for t in threads:
            t.start()
        wait_until(lambda: server.session.gate.queued == 16 and root.running == 4)  # (workers start a moment later)
        assert root.running == 4
        root.release.set()
        for t in threads:
            t.join(10)
        assert sorted(results) == list(range(20))
        assert root.most == 4
        assert client.root.block(99) == 99  # the connection goes on


def test_calls_beyond_the_queue_are_answered_busy_and_nothing_else_is_lost() -> None:
    root = Blocking()
    with pair(root, limits=tether.Limits(max_concurrency=1, max_queued=2)) as (client, server):
        results: list[int] = []
        threads = [threading.Thread(target=lambda n=n: results.append(client.root.block(n))) for n in range(3)]
        for t in threads:
            t.start()
        wait_until(lambda: server.session.gate.queued == 2)
        with pytest.raises(tether.Busy, match=r"1 calls from this peer are running here and 2 more"):
            client.root.block(3)
        root.release.set()
        for t in threads:
            t.join(10)
        assert sorted(results) == [0, 1, 2]


async def test_the_async_runtime_bounds_tasks_the_same_way() -> None:
    root = Blocking()
    async with async_pair(root, limits=tether.Limits(max_concurrency=3)) as (client, server):
        calls = [asyncio.ensure_future(client.root.ablock(n)) for n in range(10)]
        for _ in range(200):
            if server.session.gate.queued == 7:
                break
            await asyncio.sleep(0.01)
        assert server.session.gate.queued == 7 and root.running == 3
        root.release.set()
        assert sorted(await asyncio.gather(*calls)) == list(range(10))
        assert root.most == 3


async def test_plain_handlers_on_worker_threads_are_bounded_on_the_async_runtime() -> None:
    root = Blocking()
    async with async_pair(root, limits=tether.Limits(max_concurrency=2)) as (client, server):
        calls = [asyncio.ensure_future(client.root.block(n)) for n in range(6)]
        for _ in range(200):
            if server.session.gate.queued == 4 and root.running == 2:  # (workers start a moment later)
                break
            await asyncio.sleep(0.01)
        assert server.session.gate.queued == 4 and root.running == 2
        root.release.set()
        assert sorted(await asyncio.gather(*calls)) == list(range(6))
        assert root.most == 2


class Bouncer:
    def bounce(self, n: int, other: Any) -> int:
        return 0 if n == 0 else 1 + other.bounce(n - 1, self)

    async def abounce(self, n: int, other: Any) -> int:
        return 0 if n == 0 else 1 + await other.abounce(n - 1, self)


def test_a_handler_waiting_for_an_answer_gives_its_slot_to_the_next_message() -> None:
    started: list[int] = []
    gate = CallGate(1, 10, started.append, lambda m, e: None, hard_limit=3)
    gate.submit(0)
    gate.submit(1)
    assert started == [0]
    gate.blocked()  # message 0 waits for a remote answer
    assert started == [0, 1]
    gate.submit(2)
    gate.blocked()  # message 1 waits too
    assert started == [0, 1, 2]
    gate.submit(3)
    gate.blocked()  # three waiting: the hard limit holds message 3 back
    assert started == [0, 1, 2] and gate.queued == 1


# max_concurrency=2: at most 2 running and 8 (the hard limit) running or waiting a side, so a
# chain of 14 hops (7 waiting handlers a side) needs the waiting handlers to give way.
@pytest.mark.timeout(30)
def test_nested_calls_deeper_than_max_concurrency_complete_on_the_sync_runtime() -> None:
    with pair(Bouncer(), Bouncer(), limits=tether.Limits(max_concurrency=2)) as (client, _):
        assert client.root.bounce(14, client.session.protocol.root) == 14


@pytest.mark.timeout(30)
async def test_nested_calls_deeper_than_max_concurrency_complete_on_the_async_runtime() -> None:
    async with async_pair(Bouncer(), Bouncer(), limits=tether.Limits(max_concurrency=2)) as (client, _):
        assert await client.root.abounce(14, client.session.protocol.root) == 14


class Caller:
    """Plain handlers (worker threads on the async runtime) that call the client back."""

    def call_back(self, other: Any, n: int) -> int:
        return other.echo(n)

    def echo(self, n: int) -> int:
        return n

    async def aecho(self, n: int) -> int:
        return n


async def test_a_waiting_thread_handler_hands_its_slot_to_a_task_on_the_loop() -> None:
    async with async_pair(Caller(), Caller(), limits=tether.Limits(max_concurrency=1)) as (client, _):
        own = client.session.protocol.root
        calls = [client.root.call_back(own, n) if n % 2 else client.root.aecho(n) for n in range(8)]
        assert await asyncio.gather(*calls) == list(range(8))
