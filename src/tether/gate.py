"""A bound on one peer's messages running here at once (``Limits.max_concurrency``).

Every runtime hands each incoming message to :meth:`CallGate.submit` instead of starting it
directly; the gate starts it at once while fewer than ``limit`` of that peer's messages are
running, queues it (in arrival order) otherwise, and answers it with an error when the queue
holds ``max_queued`` messages already, or when its frame's bytes would take the queue's past
``max_queued_bytes`` (an empty queue takes one message: a frame is bounded by the frame size).
A runtime calls :meth:`CallGate.done` when a message it started has finished, which starts the
next queued one. So one peer can occupy at most ``limit`` threads or tasks, however many calls
it sends, and nothing it sends is dropped silently.

A handler that waits for an answer from any peer (a nested call, a callback) tells its gate
(:meth:`blocked`, then :meth:`unblocked`), which then lets a queued message run in its place:
a waiting handler uses a thread or task but no CPU. Waiting and running handlers together are
bounded by ``hard_limit`` (default four times ``limit``). A peer holds at most ``limit``
running and ``hard_limit`` threads or tasks in all. A chain of nested calls between two peers
holds one waiting handler per hop on each side with tasks, so it nests up to ``hard_limit`` hops
a side before its next hop waits in the queue; on threads the waiting caller runs the hops sent
on its behalf itself (``tether.waiter``), one waiting handler per ``MAX_INLINE_NESTING`` hops.
"""

from __future__ import annotations

import contextvars
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .exceptions import Busy

__all__ = ["CallGate", "current_exchange", "current_gate", "inline_nesting", "nested_in", "waiting"]

# The gate of the message the current thread or task is running (None outside handlers).
current_gate: contextvars.ContextVar[CallGate | None] = contextvars.ContextVar("tether_gate", default=None)

# (session, exchange id, runner) of the peer's call the current thread or task runs, where the
# runner is the thread's ident or the task: a call that this runner itself (not a thread or task
# it started) sends to that same peer, and waits for, says it is nested in that exchange
# (``MessageSend.on_behalf``).
current_exchange: contextvars.ContextVar[tuple[object, bytes, object] | None] = contextvars.ContextVar(
    "tether_exchange", default=None
)


class _Nesting(threading.local):
    depth = 0  # messages this thread runs nested inside each other for calls it waits on


# How deep the messages this thread runs for the calls it waits on are nested (``tether.waiter``
# bounds it). Here, not in waiter.py: mypyc compiles waiter.py, and a compiled subclass of
# threading.local crashes the interpreter.
inline_nesting = _Nesting()


def nested_in(session: object, runner: object) -> bytes | None:
    """The exchange id of the peer's call that a call to ``session``'s peer, sent and waited for
    by ``runner`` (a thread ident or a task), is nested in; None when it is not."""
    handling = current_exchange.get()
    if handling is not None and handling[0] is session and handling[2] == runner:
        return handling[1]
    return None


@contextmanager
def waiting() -> Iterator[None]:
    """Wrap a wait for a remote answer: the handler running here (if any) gives its running
    slot to a queued message of its peer until the answer comes."""
    gate = current_gate.get()
    if gate is None:
        yield
        return
    gate.blocked()
    try:
        yield
    finally:
        gate.unblocked()


class CallGate:
    """Runs a peer's messages through ``start(message)``, at most ``limit`` at once."""

    __slots__ = ("_lock", "_queue", "_refuse", "_start", "hard_limit", "limit", "max_queued", "max_queued_bytes",
                 "queued_bytes", "running", "waiting")  # fmt: skip

    def __init__(
        self,
        limit: int,
        max_queued: int,
        start: Callable[[Any], None],
        refuse: Callable[[Any, BaseException], None],
        hard_limit: int | None = None,
        max_queued_bytes: int = 64 << 20,
    ) -> None:
        self.limit = limit
        self.hard_limit = hard_limit if hard_limit is not None else 4 * limit
        self.max_queued = max_queued
        self.max_queued_bytes = max_queued_bytes
        self.queued_bytes = 0  # the frame bytes of the queued messages (their ``size``)
        self.running = 0
        self.waiting = 0
        self._queue: deque[Any] = deque()
        self._lock = threading.Lock()
        self._start = start
        self._refuse = refuse

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, message: Any) -> None:
        """Start ``message`` now, or queue it behind the running ones."""
        size: int = getattr(message, "size", 0)  # (a MessageSend's frame bytes; other jobs: 0)
        with self._lock:
            if self.running < self.limit and self.running + self.waiting < self.hard_limit:
                self.running += 1
                go = True
            elif len(self._queue) < self.max_queued and (
                not self._queue or self.queued_bytes + size <= self.max_queued_bytes
            ):
                self._queue.append(message)
                self.queued_bytes += size
                return
            else:
                go = False
                full = len(self._queue) >= self.max_queued
                queued, queued_bytes = len(self._queue), self.queued_bytes
        if go:
            self._start(message)
            return
        if full:
            why = (f"{self.limit} calls from this peer are running here and {self.max_queued} more "
                   "are waiting (Limits.max_concurrency, Limits.max_queued); call again later")  # fmt: skip
        else:
            why = (f"{self.limit} calls from this peer are running here and {queued} more wait, "
                   f"{queued_bytes} bytes of frames; this one's {size} would pass "
                   f"Limits.max_queued_bytes ({self.max_queued_bytes}); call again later")  # fmt: skip
        self._refuse(message, Busy(why))

    def done(self) -> None:
        """A started message finished: start the next queued one, if any."""
        with self._lock:
            self.running -= 1
            message = self._admit()
        if message is not None:
            self._start(message)

    def blocked(self) -> None:
        """A running message waits for a remote answer: let a queued one run meanwhile."""
        with self._lock:
            self.running -= 1
            self.waiting += 1
            message = self._admit()
        if message is not None:
            self._start(message)

    def unblocked(self) -> None:
        """The answer came: the message runs again (for a moment perhaps over ``limit``)."""
        with self._lock:
            self.waiting -= 1
            self.running += 1

    def _admit(self) -> Any:
        if self._queue and self.running < self.limit and self.running + self.waiting < self.hard_limit:
            self.running += 1
            message = self._queue.popleft()
            self.queued_bytes -= getattr(message, "size", 0)
            return message
        return None

    def withdraw(self, matches: Callable[[Any], bool]) -> list[Any]:
        """Take the queued messages ``matches`` accepts out of the queue (they will not run)."""
        with self._lock:
            taken = [m for m in self._queue if matches(m)]
            if taken:
                kept = [m for m in self._queue if not matches(m)]
                self._queue.clear()
                self._queue.extend(kept)
                self.queued_bytes -= sum(getattr(m, "size", 0) for m in taken)
        return taken

    def clear(self) -> list[Any]:
        """Forget the queued messages (the connection is gone); return them."""
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
            self.queued_bytes = 0
        return queued
