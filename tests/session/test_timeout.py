"""tether.timeout and cancellation: a call that misses its deadline (or whose awaiting caller is
cancelled) raises at the caller, frees its pending entry at once, and is cancelled on the other
side: a coroutine handler stops, a queued message never runs, a thread's answer is dropped."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import tether
from tether.testing import async_pair, pair


class Slow:
    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self.started = 0

    def sleep(self, seconds: float) -> str:
        self.started += 1
        time.sleep(seconds)
        self.finished.set()
        return "slept"

    async def forever(self) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    def add(self, a: int, b: int) -> int:
        return a + b


def test_a_sync_call_past_its_deadline_raises_frees_its_entry_and_its_answer_is_dropped() -> None:
    root = Slow()
    with pair(root) as (client, server):
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"no answer to 'sleep' within 0\.2 s .* cancelled on the other side"):
            with tether.timeout(0.2):
                client.root.sleep(0.6)
        assert time.monotonic() - started < 0.5
        assert client.stats()["pending"] == 0
        received = client.stats()["frames_received"]
        assert root.finished.wait(2)  # a thread cannot be stopped: it runs on ...
        time.sleep(0.1)
        assert client.stats()["frames_received"] == received  # ... but its answer is not sent
        assert not server.session._running and not server.session._cancelled
        assert client.root.add(1, 2) == 3


def test_timeouts_nest_and_the_sooner_deadline_wins() -> None:
    with pair(Slow()) as (client, _):
        with tether.timeout(5):
            with pytest.raises(TimeoutError, match=r"within 0\.1"):
                with tether.timeout(0.1):
                    client.root.sleep(0.5)
            assert client.root.sleep(0.01) == "slept"  # back to the outer, later deadline
        with tether.timeout(0.1):
            with pytest.raises(TimeoutError, match=r"within 0\.1"):
                with tether.timeout(5):  # later than the outer one: the outer still holds
                    client.root.sleep(0.5)


def test_a_timeout_takes_seconds_above_zero() -> None:
    with pytest.raises(tether.UsageError, match="seconds above 0"):
        tether.timeout(0)


def test_a_queued_call_that_times_out_never_runs() -> None:
    root = Slow()
    with pair(root, limits=tether.Limits(max_concurrency=1)) as (client, server):
        first = threading.Thread(target=lambda: client.root.sleep(0.5))
        first.start()
        time.sleep(0.1)
        with pytest.raises(TimeoutError), tether.timeout(0.1):
            client.root.sleep(0.01)  # waits behind the first in the server's queue
        first.join(5)
        time.sleep(0.1)
        assert root.started == 1 and server.session.gate.queued == 0


async def test_an_async_call_past_its_deadline_cancels_the_coroutine_handler() -> None:
    root = Slow()
    async with async_pair(root) as (client, server):
        with pytest.raises(TimeoutError, match=r"'forever' within 0\.1 s"):
            async with tether.timeout(0.1):
                await client.root.forever()
        assert client.stats()["pending"] == 0
        assert await asyncio.to_thread(root.cancelled.wait, 2)
        assert await client.root.add(2, 2) == 4
        assert not server.session._running


async def test_a_cancelled_awaiting_caller_cancels_the_remote_handler() -> None:
    root = Slow()
    async with async_pair(root) as (client, _):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.root.forever(), 0.1)
        assert client.stats()["pending"] == 0
        assert await asyncio.to_thread(root.cancelled.wait, 2)


def test_a_peer_may_cancel_only_with_well_formed_ids() -> None:
    with pair(Slow()) as (client, _):
        with pytest.raises(tether.ProtocolError, match="cancel takes an Array of at most 1024 exchange ids"):
            client.session.call_tether("cancel", (["not an id"],))
        assert client.root.add(1, 1) == 2


