"""How a thread waits for the answer to its call, in the threading runtime.

A :class:`Waiter` is a caller's slot for its answer. While the caller waits, its session may
hand it a message that the peer sent on behalf of that call (``MessageSend.on_behalf``: a
callback or a nested call made by the handler of the call); the waiting thread runs it, then
waits again. So a chain of nested calls between two peers holds about one thread a side per
:data:`MAX_INLINE_NESTING` hops, not one per hop. On a transport that lets it (a
:data:`Reader`: ``tether.sync.reading``), the waiting thread reads the connection itself while
nobody else does, so its answer and the messages sent on behalf of its call reach it with no
other thread woken.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Final

from .errors import register_runtime_file
from .frames import MessageSend
from .gate import current_gate, inline_nesting
from .workers import worker_pool

register_runtime_file(__file__)  # its frames stay out of tracebacks sent to peers

__all__ = ["MAX_INLINE_NESTING", "Reader", "Waiter", "inline_nesting"]

# How a waiting thread reads its connection itself (the sync transport's ``read_here``):
# ``read(timeout, stop, wake)`` reads once, unless another thread reads or ``stop()`` is true,
# and says whether it did (True: look at what changed; False: wait to be handed the answer, or
# for ``wake()`` once the other reader lets go).
Reader = Callable[[float | None, Callable[[], bool], Callable[[], None]], bool]

# A thread runs at most this many messages nested inside each other for the calls it waits on
# (each adds about ten Python frames); a deeper one goes to a worker, which starts a fresh stack.
MAX_INLINE_NESTING: Final = 32

# (inline_nesting, how deep this thread's nested messages are, lives in tether.gate: mypyc
# compiles this module, and cannot compile a subclass of threading.local.)


class Waiter:
    """A blocking caller's slot for its answer: a lock released when the answer is set.

    While the caller waits, its session may hand it a message that the peer sent on behalf of
    this call (a callback or a nested call made by the handler of this call; see
    ``MessageSend.on_behalf``); the waiting thread runs it, then waits again. A waiter takes one
    such message at a time (``idle``); others go to workers as usual.
    """

    __slots__ = ("_lock", "done", "error", "idle", "job", "value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = False
        self.idle = True  # may be handed a message (it is not running one)
        self.job: MessageSend | None = None

    def _wake(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:
            pass  # already woken: the waiter looks at everything that changed

    def set_result(self, value: Any) -> None:
        self.value = value
        self.done = True
        self._wake()

    def set_exception(self, error: BaseException) -> None:
        self.error = error
        self.done = True
        self._wake()

    def _stop(self) -> bool:
        """Whether the waiting thread has something to do (stop reading the connection)."""
        return self.done or self.job is not None

    def give(self, message: MessageSend) -> None:
        """Hand the waiter a message to run (the caller holds its session's pending lock and
        has seen ``idle``)."""
        self.idle = False
        self.job = message
        self._wake()

    def wait(
        self,
        timeout: float | None,
        what: str = "the call",
        run: Callable[[MessageSend], None] | None = None,
        read: Reader | None = None,
    ) -> Any:
        """Block until the answer comes (running messages handed over meanwhile with ``run``;
        reading the connection with ``read`` whenever nobody else reads it, so that the answer
        needs no other thread); return it or raise its error. Raise TimeoutError after
        ``timeout`` seconds of waiting."""
        if not (self._lock.acquire(False) and self.done and self.job is None):
            # Block, and tell the pool and the gate: the whole wait, messages run meanwhile
            # included, counts as one waiting handler (the messages take no slot of their own).
            gate = current_gate.get()
            if gate is not None:
                gate.blocked()
            pool = worker_pool()
            counted = False
            try:
                counted = pool.block()  # (what WorkerPool.blocked does, without a context manager)
                self._wait(timeout, what, run, read)
            finally:
                if counted:
                    pool.unblock()
                if gate is not None:
                    gate.unblocked()
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.value

    def _wait(
        self, timeout: float | None, what: str, run: Callable[[MessageSend], None] | None, read: Reader | None
    ) -> None:
        lock = self._lock
        deadline = None if timeout is None else time.monotonic() + timeout
        stop = self._stop
        while True:
            job = self.job
            if job is not None:  # a message sent on behalf of this call: run it here
                self.job = None
                if run is not None:
                    run(job)
                self.idle = True
                continue
            if self.done:
                return
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if read is not None and left != 0.0 and read(left, stop, self._wake):
                continue
            if lock.acquire(timeout=-1 if left is None else left):
                continue
            if not self.done and self.job is None:
                raise TimeoutError(
                    f"no answer to {what!r} within {round(timeout or 0.0, 2):g} s (timeout= or tether.timeout): "
                    "the call was cancelled on the other side"
                )
