"""How the asyncio runtime runs what the peer sends it: its messages (as tasks, on worker
threads, or at once on the loop) and the steps of three-party handoff (awaited in a task).

:class:`MessageRunner` is a part of :class:`~tether.aio.session.AsyncSession` (its base),
kept apart so that each module reads on its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import time
import weakref
from types import FunctionType
from typing import TYPE_CHECKING, Any

from ..deadline import timeout
from ..dispatch import OPERATIONS, python_name
from ..errors import register_runtime_file
from ..exceptions import ConnectionLost
from ..frames import MessageSend
from ..gate import current_exchange, current_gate
from ..handoff import Dial, Pause, Withdraw, connection_to, dialed
from ..proxy import needs_await
from .promise import Promise

if TYPE_CHECKING:
    from ..gate import CallGate
    from ..protocol import Protocol
    from ..workers import WorkerPool

__all__ = ["MessageRunner"]

register_runtime_file(__file__)  # its frames stay out of tracebacks sent to peers

_ASYNC_SELECTORS = frozenset({"__aenter__", "__aexit__", "__anext__", "__await__"})
_NOT_STARTED = object()


class MessageRunner:
    """The asyncio runtime's ways of running the peer's messages and handoff steps (a base of
    ``AsyncSession``, which has the attributes declared here)."""

    loop: asyncio.AbstractEventLoop
    protocol: Protocol
    gate: CallGate
    dialer: Any
    _loop_thread: int
    _threads: bool
    _inline: bool
    _running_plain: bool
    _pool: WorkerPool
    _running: set[bytes]
    _cancelled: set[bytes]
    _tasks_by_id: dict[bytes, asyncio.Task[Any]]
    kept: Any

    if TYPE_CHECKING:  # what AsyncSession and BaseSession supply

        @property
        def closed(self) -> bool: ...

        def _spawn(self, coro: Any) -> asyncio.Task[Any]: ...

        def _answer(self, message: MessageSend, result: Any, error: BaseException | None) -> None: ...

        def _was_cancelled(self, exchange_id: bytes | None) -> bool: ...

        def _run_in_worker(self, message: MessageSend) -> None: ...

        def _next_step(self, steps: Any, value: Any, error: BaseException | None) -> tuple[bool, Any]: ...

    # -- incoming messages: tasks for async def (and where there are no threads), else workers --

    def _start_message(self, message: MessageSend) -> None:
        """Run a message the gate admitted: a task for ``async def`` (or without threads),
        else a worker thread. (The gate may admit one from a handler's thread, when that
        handler starts waiting for an answer: tasks are made on the loop's thread only.)"""
        if threading.get_ident() != self._loop_thread:
            try:
                self.loop.call_soon_threadsafe(self._start_message, message)
            except RuntimeError:
                pass  # the loop is closed: so is the connection
            return
        if _is_async_target(message):
            self._spawn(self._run_task(message))
        elif self._threads:
            self._pool.submit(self._run_in_worker, message)
        elif self._inline and not self._running_plain:
            self._running_plain = True
            try:
                contextvars.Context().run(self._run_plain, message)
            finally:
                self._running_plain = False
        else:
            self._spawn(self._run_task(message))

    def _run_plain(self, message: MessageSend) -> None:
        """Run a plain method at once, on the loop (``run_sync_in_threads=False``, natively), in
        a context of its own: it never blocks (its caller said so), so a task would only cost a
        turn of the loop. A result to await (a promise it returned) is awaited in a task. One at
        a time: a message the gate admits meanwhile (when this one finishes) gets a task."""
        current_gate.set(self.gate)
        exchange_id = message.exchange_id
        if exchange_id is not None:
            current_exchange.set((self, exchange_id, None))
            self._running.add(exchange_id)
        error: BaseException | None = None
        try:
            result = self.protocol.start(message)
        except BaseException as exc:
            result, error = None, exc
        else:
            if needs_await(result) or type(result) is Promise:
                self._spawn(self._run_task(message, result))
                return
        try:
            self._answer(message, result, error)
        finally:
            if not self.closed:
                self.gate.done()

    async def _run_task(self, message: MessageSend, started: Any = _NOT_STARTED) -> None:
        """Run a message in this task (``started``: the awaitable a plain method returned,
        which this task awaits)."""
        current_gate.set(self.gate)  # this task's own context
        exchange_id = message.exchange_id
        if exchange_id is not None:
            task = asyncio.current_task(self.loop)  # (given the loop: no getpid system call)
            current_exchange.set((self, exchange_id, task))
            self._running.add(exchange_id)
            self._tasks_by_id[exchange_id] = task  # type: ignore[assignment]
        try:
            try:
                result = self.protocol.start(message) if started is _NOT_STARTED else started
                if needs_await(result) or type(result) is Promise:
                    result = await result
            except asyncio.CancelledError:
                if message.keep:
                    self.kept.settle(exchange_id, None, RuntimeError("the call it was pipelined on was cancelled"))  # type: ignore[arg-type]
                if exchange_id is None or exchange_id not in self._cancelled:
                    raise  # the connection closes: not a cancel from the peer
            except BaseException as exc:
                self._answer(message, None, exc)
            else:
                self._answer(message, result, None)
        finally:
            if exchange_id is not None:
                self._tasks_by_id.pop(exchange_id, None)
                self._was_cancelled(exchange_id)
            if not self.closed:
                self.gate.done()

    def _stop_handler(self, exchange_id: bytes) -> None:
        task = self._tasks_by_id.get(exchange_id)
        if task is not None:
            task.cancel()  # a coroutine handler stops at its next await

    # -- three-party handoff: the steps of tether.handoff.resolve, awaited in a task -----------

    def _run_steps(self, steps: Any, done: Any) -> None:
        self._spawn(self._drive_steps(steps, done))

    async def _drive_steps(self, steps: Any, done: Any) -> None:
        value: Any = None
        error: BaseException | None = None
        while True:
            going, step = self._next_step(steps, value, error)
            if not going:
                done(step)
                return
            value, error = None, None
            try:
                if type(step) is Pause:
                    await asyncio.sleep(step.seconds)
                elif type(step) is Dial:
                    value = await self._dial(step)
                else:
                    value = await self._withdraw(step)
            except asyncio.CancelledError:
                raise  # the connection closes: its held frames go with it
            except Exception as exc:
                error = exc

    async def _dial(self, step: Dial) -> Any:
        """A session on a connection to ``step.url``: one connection per vat (a second
        resolution for that vat waits for the first's and uses it)."""
        if self.dialer is None:
            raise ConnectionLost("this connection was made without a way to open others (no dialer)")
        locks = _dial_locks.setdefault(self.loop, {})  # per vat dialed: a few
        async with locks.setdefault(step.vat, asyncio.Lock()):
            session = connection_to(step.vat)
            if session is None:
                session = await self.dialer(step.url)
                if session.protocol.peer_info.get("vat") != step.vat:
                    await session.close()  # someone else listens there
                    raise ConnectionLost(f"{step.url} is not the vat the handoff names")
                dialed(session)
            return session

    async def _withdraw(self, step: Withdraw) -> Any:
        session = step.session
        left = max(0.001, step.deadline - time.monotonic())
        if getattr(session, "loop", None) is self.loop and hasattr(session, "acall"):  # this loop's AsyncSession
            return await asyncio.wait_for(session.call_tether("withdraw_gift", (step.gift, step.secret)), left)

        def blocking() -> Any:  # a connection of another runtime in this process
            with timeout(left):
                return session.call_tether("withdraw_gift", (step.gift, step.secret))

        return await asyncio.to_thread(blocking)


_dial_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bytes, asyncio.Lock]] = weakref.WeakKeyDictionary()


def _is_async_target(message: MessageSend) -> bool:
    """Whether the message runs an ``async def`` (then it runs as a task, not in a thread)."""
    selector = message.selector
    if selector in _ASYNC_SELECTORS:
        return True
    receiver = message.receiver
    if selector == "__call__":
        if type(receiver) is FunctionType:  # (a callback: its type's __call__ is no coroutine function)
            return inspect.iscoroutinefunction(receiver)
        method = getattr(type(receiver), "__call__", None)  # noqa: B004
        return inspect.iscoroutinefunction(receiver) or inspect.iscoroutinefunction(method)
    if selector in OPERATIONS or selector.startswith("__"):
        return False
    cls = type(receiver)
    known = _targets.get((cls, selector))
    if known is not None:  # the same function on the class as last time, none on the instance
        name, found, result = known
        if _class_attr(cls, name) is found and name not in _instance_dict(receiver):
            return result
    name = python_name(selector)
    try:
        attr = inspect.getattr_static(receiver, name)
    except AttributeError:
        return False
    found = attr
    if isinstance(attr, (staticmethod, classmethod)):
        attr = attr.__func__
    result = inspect.iscoroutinefunction(attr)
    if _class_attr(cls, name) is found:  # defined on the class (or a base): remember it
        if len(_targets) >= _MAX_TARGETS:
            _targets.clear()
        _targets[(cls, selector)] = (name, found, result)
    return result


# What _is_async_target found (getattr_static takes microseconds): per class and selector, the
# name, the object in the __dict__ of the class (or of the base) that defines it, and the answer,
# used while that is still the object found there and the instance has none of its own.
_targets: dict[tuple[type, str], tuple[str, object, bool]] = {}
_MAX_TARGETS = 4096
_MISSING = object()


def _class_attr(cls: type, name: str) -> object:
    for klass in cls.__mro__:
        found = klass.__dict__.get(name, _MISSING)
        if found is not _MISSING:
            return found
    return _MISSING


def _instance_dict(receiver: Any) -> Any:
    try:
        return object.__getattribute__(receiver, "__dict__")
    except AttributeError:
        return ()
