"""Nested calls on the threading runtime: a message the peer sends on behalf of a call (a
callback, or a nested call made by that call's handler) runs on the thread waiting for the
call, so a chain of nested calls holds a few threads a side instead of one per hop, and each
nested message still behaves as if it ran in a worker of its own: its own context (no deadline
inherited from the caller), other messages unaffected, the caller's timeout still honoured."""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

import pytest

import tether
from tether.deadline import remaining
from tether.testing import pair
from tether.waiter import MAX_INLINE_NESTING


class Recorder:
    """A bouncer that notes which threads its hops ran on."""

    def __init__(self) -> None:
        self.threads: set[int] = set()

    def bounce(self, n: int, other: Any) -> int:
        self.threads.add(threading.get_ident())
        return 0 if n == 0 else 1 + other.bounce(n - 1, self)


class Server:
    def __init__(self) -> None:
        self.release = threading.Event()

    def call_back(self, f: Any) -> Any:
        return f()

    def call_back_then_hang(self, f: Any) -> Any:
        f()
        self.release.wait(10)
        return "late"

    def call_back_from_a_thread(self, f: Any) -> str:
        """Call f from a thread this handler starts (with a copy of its context) and return
        without waiting for it."""
        threading.Thread(target=contextvars.copy_context().run, args=(f,), daemon=True).start()
        return "returned"


def test_a_callback_runs_on_the_thread_that_waits_for_the_call() -> None:
    with pair(Server()) as (client, _):
        ran_on: list[int] = []
        client.root.call_back(lambda: ran_on.append(threading.get_ident()))
        assert ran_on == [threading.get_ident()]


def test_a_500_hop_chain_holds_a_few_threads_a_side() -> None:
    server_side, client_side = Recorder(), Recorder()
    with pair(server_side) as (client, _):
        assert client.root.bounce(500, client_side) == 500
    # 250 hops a side, at most MAX_INLINE_NESTING of them stacked on one thread
    bound = 250 // MAX_INLINE_NESTING + 2
    assert len(server_side.threads) <= bound, f"{len(server_side.threads)} server threads for 250 hops"
    assert len(client_side.threads) <= bound, f"{len(client_side.threads)} client threads for 250 hops"


def test_a_2000_hop_chain_completes_beyond_the_gates_hard_limit() -> None:
    """Hops run on waiting threads take no slot of the gate, so the chain is bounded by stack
    depth per thread, not by max_concurrency."""
    limits = tether.Limits(max_concurrency=8)
    with pair(Recorder(), limits=limits) as (client, _):
        assert client.root.bounce(2000, Recorder()) == 2000


def test_a_nested_message_does_not_inherit_the_callers_deadline() -> None:
    with pair(Server()) as (client, _), tether.timeout(30):
        assert remaining(None) is not None
        assert client.root.call_back(lambda: remaining(None)) is None


def test_the_callers_timeout_holds_when_the_handler_calls_back_then_hangs() -> None:
    server = Server()
    with pair(server) as (client, _):
        called: list[int] = []
        start = time.monotonic()
        with pytest.raises(TimeoutError), tether.timeout(1.0):
            client.root.call_back_then_hang(lambda: called.append(threading.get_ident()))
        elapsed = time.monotonic() - start
        server.release.set()
        assert called == [threading.get_ident()]
        assert elapsed < 5, f"the 1 s timeout took {elapsed:.1f} s"


def test_a_callback_from_a_thread_the_handler_started_does_not_hold_the_answer() -> None:
    """Only the handler's own thread says "on behalf of": a callback from another thread runs
    in a worker, so the caller gets its answer without waiting for the callback."""
    callback_may_finish = threading.Event()
    finished: list[bool] = []

    def f() -> None:
        finished.append(callback_may_finish.wait(10))

    with pair(Server()) as (client, _):
        assert client.root.call_back_from_a_thread(f) == "returned"
        callback_may_finish.set()  # set only after the call returned
        deadline = time.monotonic() + 10
        while not finished and time.monotonic() < deadline:
            time.sleep(0.01)
    assert finished == [True]
