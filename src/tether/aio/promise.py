"""What a proxy's call returns in async code: a :class:`Promise` of the answer, through which
messages can be sent to that answer before it arrives (promise pipelining).

::

    counter = await root.make_counter()          # one round trip
    await counter.increment()                    # another

    await root.make_counter().increment()        # both sent at once: one round trip

Awaiting a promise sends its call (if it was not sent yet) and waits for the answer, as a
coroutine would; ``asyncio.create_task`` takes it like one. A promise is also an asyncio future
(``asyncio.isfuture`` is true): ``gather``, ``ensure_future``, ``wait_for``, ``shield`` and
``as_completed`` take it as it is, with no task per promise; each of them (and
``add_done_callback``) sends its call (written when the caller next yields to the loop, with the
others subscribed meanwhile), and its timeout runs from then. ``asyncio.wait``
refuses it, as it refuses every coroutine: pass it ``asyncio.create_task(promise)``.
``cancel()`` cancels the call on the peer.

Calling a method on a promise that has not been awaited sends its call at once, asking the peer
to keep the answer, then sends the method's message to that answer (``docs/protocol.md`` 4.1,
"Answer of"): the peer runs it when the answer is there, in the order such messages were sent,
and fails it with the first call's error if that failed (the error goes down the chain).
Reading an attribute, ``await promise.name``, is pipelined the same way. When the promise is
garbage, the peer is told to forget the kept answer (with the next batch of releases).

A promise that is never awaited and never used sends nothing. ``send``, ``throw`` and ``close``
are the coroutine protocol's on a promise, and ``result``, ``exception``, ``done``,
``cancelled``, ``cancel``, ``add_done_callback``, ``remove_done_callback`` and ``get_loop`` the
future protocol's: to pipeline a remote method of one of those names, await the promise first.
Pipelining needs a Python peer (one that said hello); to any other, chaining raises
:class:`~tether.exceptions.EncodeError` saying to await first.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any

from ..exceptions import UsageError
from ..frames import AnswerOf

if TYPE_CHECKING:
    from .session import AsyncSession

__all__ = ["Promise", "PromisedMember"]


class Promise(Coroutine[Any, Any, Any]):
    """The answer to come of ``receiver.selector(*args, **kwargs)`` (see the module docstring)."""

    __slots__ = ("__weakref__", "_args", "_armed", "_coro", "_exchange_id", "_future", "_gate", "_kept", "_kwargs",
                 "_outcome", "_parent", "_receiver", "_selector", "_session")  # fmt: skip

    def __init__(
        self,
        session: AsyncSession,
        receiver: int | AnswerOf,
        selector: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any] | None,
        parent: Promise | None = None,
    ) -> None:
        self._session = session
        self._receiver = receiver
        self._selector = selector
        self._args = args
        self._kwargs = kwargs
        self._parent = parent  # keeps the answer it is pipelined on kept while this one lives
        self._exchange_id: bytes | None = None
        self._future: Any = None  # the answer's future, once sent
        self._outcome: Any = None  # the future the future protocol reads: _future, or a task driving it
        self._armed = False  # someone waits: the timeout's timer runs and the gate counts it blocked
        self._gate: Any = None  # that gate (of the handler that first waited), if any
        self._kept = False
        self._coro: Generator[Any, None, Any] | None = None  # what a task drives (send, throw)

    # -- sending ----------------------------------------------------------------------------

    def _send(self, keep: bool) -> None:
        if self._future is not None:
            return  # sent, or cancelled before it was
        session = self._session
        self._exchange_id, self._future = session.send_promised(
            self._receiver, self._selector, self._args, self._kwargs, keep
        )
        self._outcome = self._future
        if keep:
            self._kept = True
            weakref.finalize(self, session.protocol.drop_answer, self._exchange_id).atexit = False

    def _answer_of(self, name: str) -> AnswerOf:
        """Send this call (keeping its answer) so that ``name`` can be pipelined on it."""
        if self._future is not None and self._exchange_id is None:
            raise UsageError(
                f"{self._selector}(...) was cancelled, or failed, before it was sent: .{name} cannot be pipelined on it"
            )
        if self._exchange_id is not None and not self._kept:
            raise UsageError(
                f"{self._selector}(...) was sent before .{name} was pipelined on it, so its answer is "
                f"not kept by the peer: use the awaited result (`x = await p; await x.{name}(...)`)"
            )
        self._send(keep=True)
        assert self._exchange_id is not None
        return AnswerOf(self._exchange_id)

    def __getattr__(self, name: str) -> PromisedMember:
        if name.startswith("_"):
            raise AttributeError(name)  # protocol probes (copy, pickle, inspect) and private names
        return PromisedMember(self, name)

    # -- awaiting ---------------------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, Any]:
        return self._session.wait_promised(self)

    # The coroutine protocol, for asyncio.create_task, gather and wait_for: a task sends to the
    # promise, which sends to the one generator that waits for its answer (made by the first send).

    def send(self, value: Any) -> Any:
        waiting = self._coro
        if waiting is None:
            waiting = self._coro = self._session.wait_promised(self)
        return waiting.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        waiting = self._coro
        if waiting is None:
            waiting = self._coro = self._session.wait_promised(self)
        if val is None and tb is None:
            return waiting.throw(typ)
        return waiting.throw(typ, val, tb)

    def close(self) -> None:
        if self._coro is not None:
            self._coro.close()

    # -- the asyncio future protocol (asyncio.isfuture(promise) is true) -----------------------

    @property
    def _asyncio_future_blocking(self) -> bool:
        """What makes ``asyncio.isfuture(promise)`` true, so that gather, ensure_future,
        wait_for, shield and as_completed take the promise as a future (no task per promise).
        Each of them asks this first, and means to wait: asking sends the call and starts
        waiting (as :meth:`add_done_callback` does), so ``asyncio.ensure_future(promise)`` starts
        the call as it did when it made a task. (Always False: a promise never yields itself.)"""
        if not self._armed:
            self._session.subscribe_promised(self)
        return False

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._session.loop

    def add_done_callback(self, fn: Callable[[Any], object], *, context: contextvars.Context | None = None) -> None:
        """Call ``fn(promise)`` (soon, on the loop, in ``context``) once the answer is there or
        the promise failed or was cancelled. The first subscription sends the call, if it was
        not sent (written when the caller next yields to the loop), and starts its timeout (``timeout=`` or :func:`tether.timeout`), as ``await``
        would."""
        if not self._armed:
            self._session.subscribe_promised(self)
        self._outcome.add_done_callback(_Relay(fn, self), context=context)

    def remove_done_callback(self, fn: Callable[[Any], object]) -> int:
        outcome = self._outcome
        return 0 if outcome is None else int(outcome.remove_done_callback(fn))

    def done(self) -> bool:
        outcome = self._outcome
        return outcome is not None and bool(outcome.done())

    def cancelled(self) -> bool:
        outcome = self._outcome
        return outcome is not None and bool(outcome.cancelled())

    def result(self) -> Any:
        """The answer (raises the call's error); raises ``asyncio.InvalidStateError`` before it
        came: await the promise instead."""
        outcome = self._outcome
        if outcome is None or not outcome.done():
            raise self._not_yet("result")
        return outcome.result()

    def exception(self) -> BaseException | None:
        """The call's error, None if it answered; raises ``asyncio.InvalidStateError`` before it
        came: await the promise instead."""
        outcome = self._outcome
        if outcome is None or not outcome.done():
            raise self._not_yet("exception")
        return outcome.exception()  # type: ignore[no-any-return]

    def _not_yet(self, name: str) -> asyncio.InvalidStateError:
        sent = "not sent yet" if self._outcome is None else "sent"
        return asyncio.InvalidStateError(
            f"{self._selector}(...) has no answer yet ({sent}): await it; to call a remote method "
            f"named {name!r} on its answer, await it first: `(await promise).{name}()`"
        )

    def cancel(self, msg: Any = None) -> bool:
        """Stop waiting for the answer: the call's pending entry is freed and the call is
        cancelled on the peer (a call not sent yet is never sent). False if it is done."""
        future = self._future
        if future is None:  # never sent: it never will be
            self._future = self._outcome = future = self._session._new_future()
            return bool(future.cancel(msg))
        outcome = self._outcome
        if outcome.done():
            return False
        if not future.done():
            self._session._abandon(self._exchange_id)  # type: ignore[arg-type]
            future.cancel(msg)
        if outcome is not future:
            outcome.cancel(msg)
        return True

    def _make_cancelled_error(self) -> BaseException:
        return self._outcome._make_cancelled_error()  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        if self._exchange_id is None:
            state = "not sent" if self._future is None else "not sent (cancelled or failed)"
        elif self._outcome.done():
            state = "cancelled" if self._outcome.cancelled() else "done"
        else:
            state = "sent, answer kept" if self._kept else "sent"
        return f"<tether promise of {self._selector}(...) on {self._session.describe()}: {state}>"


class _Relay:
    """A done callback on the answer's future that calls the subscriber's with the promise;
    equal to the subscriber's, so ``remove_done_callback(fn)`` finds it."""

    __slots__ = ("fn", "promise")

    def __init__(self, fn: Callable[[Any], object], promise: Promise) -> None:
        self.fn = fn
        self.promise = promise

    def __call__(self, _: Any) -> None:
        self.fn(self.promise)

    def __eq__(self, other: object) -> bool:
        return self.fn == other

    __hash__ = None  # type: ignore[assignment]


class PromisedMember:
    """``promise.name``: call it to pipeline the method ``name`` on the answer to come, or
    await it for the attribute's value."""

    __slots__ = ("_name", "_promise")

    def __init__(self, promise: Promise, name: str) -> None:
        self._promise = promise
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Promise:
        promise = self._promise
        return Promise(promise._session, promise._answer_of(self._name), self._name, args, kwargs or None, promise)

    def __await__(self) -> Generator[Any, None, Any]:
        promise = self._promise
        getter = Promise(
            promise._session, promise._answer_of(self._name), "__getattribute__", (self._name,), None, promise
        )
        return getter.__await__()

    def __repr__(self) -> str:
        return f"<tether pipelined member {self._name!r} of {self._promise!r}>"
