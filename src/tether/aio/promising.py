"""How the asyncio runtime sends a promise's call and waits for its answer: awaited (one
generator, :meth:`PromiseWaiting.wait_promised`) or subscribed to as an asyncio future
(``gather``, ``ensure_future``, ``wait_for``: :meth:`PromiseWaiting.subscribe_promised`, no task
per promise), with the call's timeout as a loop timer and the handler's gate told it waits.

:class:`PromiseWaiting` is a part of :class:`~tether.aio.session.AsyncSession` (its base), kept
apart so that each module reads on its own (as ``tether.aio.running``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from ..deadline import remaining
from ..errors import register_runtime_file
from ..frames import AnswerOf
from ..gate import current_exchange, current_gate, nested_in
from .promise import Promise

if TYPE_CHECKING:
    from ..protocol import Protocol

__all__ = ["PromiseWaiting"]

register_runtime_file(__file__)  # its frames stay out of tracebacks sent to peers


class PromiseWaiting:
    """The asyncio runtime's sending of and waiting for promised calls (a base of
    ``AsyncSession``, which has the attributes declared here)."""

    loop: asyncio.AbstractEventLoop
    protocol: Protocol
    timeout: float | None
    transport: Any
    _send_nowait: Any
    _flush_soon: bool

    if TYPE_CHECKING:  # what AsyncSession and BaseSession supply

        def _flush(self) -> None: ...

        async def _drain(self) -> None: ...

        def _spawn(self, coro: Any) -> asyncio.Task[Any]: ...

        def _new_future(self) -> asyncio.Future[Any]: ...

        def _abandon(self, exchange_id: bytes) -> None: ...

        def _queue_call(
            self,
            waiter: Any,
            receiver: int | AnswerOf,
            selector: str,
            args: tuple[Any, ...] | list[Any],
            kwargs: dict[str, Any] | None,
            on_behalf: bytes | None = None,
            keep: bool = False,
        ) -> bytes: ...

    def send_promised(
        self,
        receiver: int | AnswerOf,
        selector: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any] | None,
        keep: bool,
    ) -> tuple[bytes, asyncio.Future[Any]]:
        """Queue a promise's call (loop thread); returns its exchange id and the future its
        answer is set on. A call whose answer is kept is flushed at once (messages pipelined on
        it follow); another is sent when awaited (:meth:`wait_promised`)."""
        wait = remaining(self.timeout)
        if wait is not None and wait <= 0:
            raise TimeoutError(f"no time left for {selector!r}: the tether.timeout deadline has passed")
        future = self._new_future()
        # Nested in a call of the peer's that this task handles? (Handling none: no task to look up;
        # current_task is given the loop: no getpid system call.)
        on_behalf = None if current_exchange.get() is None else nested_in(self, asyncio.current_task(self.loop))
        exchange_id = self._queue_call(future, receiver, selector, args, kwargs, on_behalf, keep)
        if keep:
            self._flush()
        return exchange_id, future

    def wait_promised(self, promise: Promise) -> Generator[Any, None, Any]:
        """Send ``promise``'s call (if it was not sent yet) and what else is queued, then wait
        for its answer: what ``await promise`` runs (see :meth:`acall`).

        One generator, driven by the awaiting task, from the send to the answer: it yields the
        answer's future itself (no coroutine, no task and no ``asyncio.wait_for`` between).
        The timeout (``timeout=`` or :func:`tether.timeout`) is a loop timer that fails the
        future (:meth:`_expire`); a cancelled caller frees its pending entry and cancels the
        call on the other side."""
        if promise._future is None:
            promise._send(False)
        exchange_id: bytes = promise._exchange_id  # type: ignore[assignment]
        future: asyncio.Future[Any] = promise._future
        if future.done():  # awaited before, answered before this await, or cancelled unsent
            return future.result()
        if promise._armed:  # subscribed or awaited already: its timer runs and its gate counts it
            return (yield from self._wait_again(promise))
        promise._armed = True
        if self._send_nowait is not None:  # (what _drain does, without a coroutine per call)
            self._flush()
            if getattr(self.transport, "writing_paused", False):
                yield from self.transport.drain().__await__()  # type: ignore[union-attr]
        else:
            yield from self._drain().__await__()
        wait = remaining(self.timeout)
        timer = None if wait is None else self.loop.call_later(wait, self._expire, exchange_id, future, promise, wait)
        gate = promise._gate = current_gate.get()  # (what gate.waiting() does, without a context manager)
        if gate is not None:
            gate.blocked()
        try:
            return (yield from future)
        except asyncio.CancelledError:
            self._abandon(exchange_id)
            raise
        except GeneratorExit:  # closed unanswered: whoever waits next starts the timer again
            promise._armed = future.done()
            raise
        finally:
            _unwatch(timer, gate, None)

    def _wait_again(self, promise: Promise) -> Generator[Any, None, Any]:
        """Await a promise someone already waits for (subscribed, or awaited elsewhere): this
        await's own deadline (``tether.timeout``) holds too, and a handler of another gate than
        the one counting the promise counts as blocked in its own."""
        exchange_id: bytes = promise._exchange_id  # type: ignore[assignment]
        wait = remaining(self.timeout)
        timer = None if wait is None else self.loop.call_later(wait, self._expire, exchange_id, promise._future, promise, wait)
        gate = current_gate.get()
        if gate is promise._gate:
            gate = None
        elif gate is not None:
            gate.blocked()
        try:
            return (yield from promise._outcome)
        except asyncio.CancelledError:
            self._abandon(exchange_id)
            raise
        finally:
            _unwatch(timer, gate, None)

    def subscribe_promised(self, promise: Promise) -> None:
        """A first done callback on ``promise`` (``asyncio.gather``, ``ensure_future``,
        ``wait_for``...): queue its call (if it was not sent yet), to be written with what else
        is queued when the subscriber yields to the loop (:meth:`_flush_subscribed`), and start
        waiting as :meth:`wait_promised` does, without a task: the timeout is a loop
        timer, and a handler doing this counts as blocked in its gate until the answer comes
        (both undone by a done callback on the answer's future). While a push transport's
        write buffer is full, a task waits for it to drain first, as ``await`` would, and the
        promise's outcome is that task's."""
        promise._armed = True
        try:
            promise._send(False)
        except Exception as exc:  # (lost connection, unencodable arguments): the promise fails with it
            promise._future = promise._outcome = self._new_future()
            promise._future.set_exception(exc)
            return
        future: asyncio.Future[Any] = promise._future
        if future.done():
            return
        if self._send_nowait is None:
            self._flush()  # a flush task, unless one runs
        else:
            if not self._flush_soon:  # written once the subscriber yields: a gather's calls in one go
                self._flush_soon = True
                self.loop.call_soon(self._flush_subscribed)
            if getattr(self.transport, "writing_paused", False):
                promise._outcome = self._spawn(self._drain_then_wait(promise))
                return
        self._watch(promise)

    def _flush_subscribed(self) -> None:
        """Write the calls of the promises subscribed since the last time (loop callback). One
        write after another, not one per subscription between the subscriber's own work: a
        peer that is sent a burst wakes once, not once per call."""
        self._flush_soon = False
        self._flush()

    def _watch(self, promise: Promise) -> None:
        """Start ``promise``'s timeout and count the handler running here (if any) as blocked
        until its answer's future is done."""
        future: asyncio.Future[Any] = promise._future
        wait = remaining(self.timeout)
        gate = promise._gate = current_gate.get()
        if wait is None and gate is None:
            return
        exchange_id: bytes = promise._exchange_id  # type: ignore[assignment]
        timer = None if wait is None else self.loop.call_later(wait, self._expire, exchange_id, future, promise, wait)
        if gate is not None:
            gate.blocked()
        future.add_done_callback(functools.partial(_unwatch, timer, gate))

    async def _drain_then_wait(self, promise: Promise) -> Any:
        """A promise subscribed to while the write buffer was full: wait for it to drain, then
        for the answer (the promise's outcome)."""
        future: asyncio.Future[Any] = promise._future
        try:
            await self.transport.drain()  # type: ignore[union-attr]
            if not future.done():
                self._watch(promise)
            return await future
        except asyncio.CancelledError:
            self._abandon(promise._exchange_id)  # type: ignore[arg-type]
            future.cancel()
            raise

    def _expire(self, exchange_id: bytes, future: asyncio.Future[Any], promise: Promise, wait: float) -> None:
        """A promised call's timeout ran out before its answer came (loop timer): cancel the
        call on the other side, free its pending entry and fail its caller with TimeoutError."""
        if future.done():
            return  # the answer came, its caller just did not run yet
        self._abandon(exchange_id)
        future.set_exception(
            TimeoutError(
                f"no answer to {promise._selector!r} within {round(wait, 2):g} s (timeout= or tether.timeout): "
                "the call was cancelled on the other side"
            )
        )


def _unwatch(timer: asyncio.TimerHandle | None, gate: Any, _: Any) -> None:
    """A wait for a promise's answer is over: stop its timer, give its gate's count back (the
    last argument, a done future when this is a done callback, is not used)."""
    if timer is not None:
        timer.cancel()
    if gate is not None:
        gate.unblocked()
