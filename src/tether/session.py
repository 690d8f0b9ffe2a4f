"""The session core that every flavour shares: one connection's protocol, its pending calls,
its gate, how proxies reach the peer, what a lost connection is called, and the peer object's
common face.

A flavour (``tether.sync.session`` for threads, ``tether.aio.session`` for asyncio,
``tether.browser.session`` for Pyodide) subclasses :class:`BaseSession` and adds only how it
sends what the protocol queued (``_flush``), where it runs an incoming message
(``_start_message``: a worker thread or a task), how a thread waits for a coroutine
(``_await_in_thread``) and how its own callers wait. The rest is here, once: registering a call
and queueing it, routing answers, dispatching and performing incoming messages, queueing their
answers, cancelling, releases, the handshake's outcome and what a lost connection is called.
Nothing here starts a thread or needs an event loop.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
import threading
from collections.abc import Callable
from types import CoroutineType
from typing import Any

from . import handoff as _handoff  # (its IDLE_SECONDS read when used: tests change it)
from .admission import CLOSE_UNAUTHORIZED, REFUSAL_CODES
from .deadline import remaining
from .debug import offer_debugging
from .dispatch import AccessPolicy
from .errors import register_runtime_file
from .exceptions import ConnectionLost, HandshakeFailed, ProtocolError, Refused
from .frames import AnswerOf, MessageSend
from .gate import CallGate, current_exchange, current_gate, nested_in
from .gifts import SECRET_SIZE, VAT, Handoff, Vat
from .handoff import HANDOFF_SECONDS, advance, register, resolve, send_deposits
from .limits import Limits
from .pipelining import KeptAnswers
from .protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    AnswerReceived,
    ErrorReceived,
    Event,
    HandoffNeeded,
    Incoming,
    Opened,
    Protocol,
    State,
    Violation,
)
from .proxy import make_proxy
from .tether_object import TetherObject
from .waiter import MAX_INLINE_NESTING, Reader, Waiter, inline_nesting
from .words import ClassInfo

register_runtime_file(__file__)  # its frames stay out of tracebacks sent to peers

__all__ = [
    "SHUTDOWN_CODE",
    "SHUTDOWN_REASON",
    "BaseSession",
    "PeerBase",
    "RootFactory",
    "describe_close",
    "describe_keepalive_timeout",
    "describe_peer_close",
    "is_factory",
]

_CLOSED = State.CLOSED


class BaseSession:
    """What both runtimes share: the protocol, stats, and how proxies reach the peer."""

    def __init__(
        self,
        *,
        root: object = None,
        client: bool,
        trusted: bool = False,
        policy: AccessPolicy | None = None,
        send_tracebacks: bool = True,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        marker_base: int | None = None,
        url: str | None = None,
        timeout: float | None = None,
        accept_code: bool = False,
        passing: dict[type, str] | None = None,
        limits: Limits | None = None,
        debug: bool = False,
        handoff: str = "direct",
        advertise: str | None = None,
        dialer: Callable[[str], Any] | None = None,
        vat: Vat | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {}
        if marker_base is not None:
            kwargs["marker_base"] = marker_base
        self.protocol = Protocol(
            root=root,
            client=client,
            proxy_factory=self._make_proxy,
            policy=policy or AccessPolicy(trusted),
            send_tracebacks=send_tracebacks,
            max_frame_size=max_frame_size,
            accept_code=accept_code,
            passing=_check_passing(passing),
            limits=limits,
            **kwargs,
        )
        self.url = url
        self.timeout = timeout
        limits = self.protocol.limits
        self.gate = CallGate(limits.max_concurrency, limits.max_queued, self._start_message, self._refuse_message,
                             max_queued_bytes=limits.max_queued_bytes)  # fmt: skip
        self.close_reason: str | None = None
        self._pending: dict[bytes, Any] = {}
        self._pending_lock = threading.Lock()
        self._running: set[bytes] = set()  # exchange ids of the peer's calls running here
        self._cancelled: set[bytes] = set()  # ... whose caller no longer waits
        self._release_requested = False
        # The peer's calls whose answers we keep for messages it pipelines on them (AnswerOf).
        self.kept = KeptAnswers(self.protocol.limits, self.gate.submit, self._answer)
        self.protocol.on_drop_answers = self.kept.drop
        self.protocol.on_cancel = self._cancel_incoming
        self.protocol.on_release_queued = self._release_queued
        self.protocol.expects = self._pending.__contains__
        # Three-party handoff (tether.gifts, tether.handoff): this side introduces a peer that
        # takes handoffs to the owners of the proxies it sends, and takes them itself.
        protocol = self.protocol
        protocol.vat = vat or VAT
        protocol.advertise = advertise
        protocol.writes_handoffs = handoff == "direct"
        if handoff == "direct":
            protocol.handoff_secret = os.urandom(SECRET_SIZE)
        protocol.on_hello = self._on_hello
        protocol.on_deposits = send_deposits
        self.dialer = dialer  # dialer(url) -> a session on a new connection (client side, root None)
        self.dialed = False  # this side opened it for a handoff (tether.handoff.dialed): closes when idle
        if debug:  # this side asks for debugging (tether.debug): its hello says so
            offer_debugging(self.protocol)

    @property
    def closed(self) -> bool:
        """Whether the connection is gone (pending calls have failed; new ones fail at once)."""
        return self.protocol.state is State.CLOSED

    def route(self, events: list[Event]) -> Violation | None:
        """Act on what the protocol made of one frame, in order: an answer or error goes to the
        caller waiting for it (:meth:`_settle`), an incoming message to :meth:`_dispatch`, the
        conversation's start to :meth:`_on_opened`. Returns a violation, if any, for the flavour
        to close the connection with (the events after it are not acted on)."""
        pending = self._pending
        for event in events:
            kind = type(event)
            if kind is AnswerReceived:
                waiter = pending.pop(event.exchange_id, None)  # type: ignore[union-attr]
                if waiter is not None:
                    self._settle(waiter, event.value, None)  # type: ignore[union-attr]
            elif kind is Incoming:
                self._dispatch(event.message)  # type: ignore[union-attr]
            elif kind is ErrorReceived:
                waiter = pending.pop(event.exchange_id, None)  # type: ignore[union-attr]
                if waiter is not None:
                    self._settle(waiter, None, event.error)  # type: ignore[union-attr]
            elif kind is Opened:
                self._on_opened()
            elif kind is HandoffNeeded:
                for wanted in event.handoffs:  # type: ignore[union-attr]
                    self._run_steps(resolve(self, wanted, HANDOFF_SECONDS), self._handoff_done(wanted))
            elif kind is Violation:
                return event  # type: ignore[return-value]
        return None

    def _settle(self, waiter: Any, value: Any, error: BaseException | None) -> None:
        """Give a waiting caller its answer (a flavour whose waiters can be cancelled skips those)."""
        if error is None:
            waiter.set_result(value)
        else:
            waiter.set_exception(error)

    def _on_opened(self) -> None:
        """The peer exposed its Tether: the conversation has started."""
        raise NotImplementedError

    def _make_proxy(self, key: int, info: ClassInfo | None) -> Any:
        return make_proxy(self, key, info)

    # -- what each flavour supplies -----------------------------------------------------------

    # How a thread waiting for an answer reads the connection itself when nobody else reads it
    # (``tether.waiter.Reader``); None: it waits to be handed its answer.
    _read_here: Reader | None = None

    def _flush(self) -> None:
        """Send what the protocol's outbox holds, in order (called from any thread after
        queueing; a flavour must never let two flushes overtake each other). Must not raise:
        a send that fails closes the session (every waiting caller is told)."""
        raise NotImplementedError

    def _start_message(self, message: MessageSend) -> None:
        """Run a message the gate admitted: in a worker thread (:meth:`_run_in_worker`) or a
        task of the flavour's own."""
        raise NotImplementedError

    def _await_in_thread(self, awaitable: Any) -> Any:
        """A handler running in a thread returned an awaitable (an ``async def``): wait for it."""
        raise NotImplementedError

    def _schedule_release_flush(self) -> None:
        """Arrange for :meth:`_flush_releases` to run soon (releases go out in batches)."""
        raise NotImplementedError

    def _run_steps(self, steps: Any, done: Callable[[object], None]) -> None:
        """Perform the steps of ``tether.handoff.resolve`` (in a worker thread or a task: they
        wait on the network), sending each step's result back in (a failure is thrown in);
        then call ``done`` with what the generator returned (``None`` if it raised)."""
        raise NotImplementedError

    def _resume(self, read: Callable[[], list[Event]]) -> None:
        """Run ``read`` (which reads held frames) where this flavour receives frames, in their
        order, and act on its events as on a received frame's."""
        raise NotImplementedError

    def _later(self, seconds: float, fn: Callable[[], None]) -> None:
        """Call ``fn`` in about ``seconds`` (a timer thread, or the event loop)."""
        raise NotImplementedError

    def _close_soon(self) -> None:
        """Close the connection without waiting here (any thread)."""
        raise NotImplementedError

    # -- three-party handoff ------------------------------------------------------------------

    def _on_hello(self) -> None:
        """The peer said hello: a connection to its vat, for handoffs that name it."""
        vat = self.protocol.peer_info.get("vat")
        if type(vat) is bytes and len(vat) == 16 and self.protocol.peer_is_python:
            register(self, vat)

    def _handoff_done(self, wanted: Handoff) -> Callable[[object], None]:
        def done(value: object) -> None:
            if not self.closed:
                self._resume(lambda: self.protocol.handoff_resolved(wanted.gift, value))

        return done

    def _next_step(self, steps: Any, value: Any, error: BaseException | None) -> tuple[bool, Any]:
        """Advance the steps of a resolution: (True, the next step) or (False, the result)."""
        return advance(steps, value, error, self.describe())

    # -- calls to the peer ----------------------------------------------------------------

    def _queue_call(
        self,
        waiter: Any,
        receiver: int | AnswerOf,
        selector: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any] | None,
        on_behalf: bytes | None = None,
        keep: bool = False,
    ) -> bytes:
        """Register ``waiter`` for a new call's answer, then queue the call (not yet sent:
        :meth:`_flush`). Raises the lost-connection error when closed, or what encoding raised
        (then nothing is registered). ``keep``: the peer keeps the answer for pipelining."""
        exchange_id = self.protocol.next_id()
        with self._pending_lock:
            if self.closed:
                raise self._lost_error()
            self._pending[exchange_id] = waiter
        try:
            self.protocol.queue_call(
                receiver, selector, args, kwargs, exchange_id=exchange_id, on_behalf=on_behalf, keep=keep
            )
        except BaseException:
            self._pending.pop(exchange_id, None)
            raise
        return exchange_id

    def _call_and_block(
        self,
        receiver: int,
        selector: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any] | None,
    ) -> Any:
        """Send a call and block this thread until its answer comes back (or raise its error).

        Waits at most the connection's ``timeout`` or the current :func:`tether.timeout`,
        whichever is sooner; then raises TimeoutError and cancels the call remotely. While it
        waits, the thread runs the messages the peer sends on behalf of this call (see
        ``tether.waiter``)."""
        wait = remaining(self.timeout)
        if wait is not None and wait <= 0:
            raise TimeoutError(f"no time left for {selector!r}: the tether.timeout deadline has passed")
        waiter = Waiter()
        if inline_nesting.depth >= MAX_INLINE_NESTING:
            waiter.idle = False  # this stack is deep enough: messages nested in this call go to workers
        on_behalf = nested_in(self, threading.get_ident())
        exchange_id = self._queue_call(waiter, receiver, selector, args, kwargs, on_behalf)
        self._flush()
        try:
            return waiter.wait(wait, selector, self._run_nested, self._read_here)
        except BaseException:  # timed out, or interrupted: nobody waits for the answer now
            with self._pending_lock:
                abandoned = self._pending.pop(exchange_id, None) is not None
                waiter.idle = False
                job, waiter.job = waiter.job, None
            if job is not None:  # handed over just now: a worker runs it instead
                self.gate.submit(job)
            if abandoned:
                self.cancel_remote([exchange_id])
            raise

    def cancel_remote(self, exchange_ids: list[bytes]) -> None:
        """Tell the peer that nobody waits for these calls' answers any more (one-way)."""
        key = self.protocol.peer_tether_key
        if key is None or self.closed or not self.protocol.peer_is_python:  # a Smalltalk peer reads no cancel
            return
        try:
            self.protocol.queue_call(key, "cancel", (exchange_ids,))
        except Exception:
            return
        self._flush()

    def _abandon(self, exchange_id: bytes) -> None:
        """Nobody waits for this call any more: free its entry and cancel it remotely."""
        if self._pending.pop(exchange_id, None) is not None:
            self.cancel_remote([exchange_id])

    # -- incoming messages ----------------------------------------------------------------

    def _dispatch(self, message: MessageSend) -> None:
        """An incoming message: the Tether object's quick selectors run at once (their answers
        are flushed after routing); a message sent on behalf of one of our calls goes to the
        thread waiting for that call if it is idle; anything else to the gate, which bounds
        how many run at once and starts them with :meth:`_start_message`."""
        if message.receiver is self.protocol.tether and message.selector in TetherObject.INLINE:
            self.protocol.perform(message)  # its answer is not kept: nothing pipelines on these
        elif message.keep and not self.kept.keep(message):
            return
        elif type(message.receiver) is AnswerOf:
            self.kept.pipelined(message)
        elif message.on_behalf is None or message.exchange_id is None or not self._hand_to_waiter(message):
            self.gate.submit(message)

    def _hand_to_waiter(self, message: MessageSend) -> bool:
        """Give a message sent on behalf of one of our calls to the thread waiting for that
        call's answer, if it is idle; False: it runs as usual."""
        with self._pending_lock:
            waiter = self._pending.get(message.on_behalf)  # type: ignore[arg-type]
            if type(waiter) is not Waiter or not waiter.idle:
                return False
            waiter.give(message)
        return True

    def _refuse_message(self, message: MessageSend, error: BaseException) -> None:
        """Answer a message the gate cannot queue with ``error`` (a kept answer gets it too)."""
        self._answer(message, None, error)

    def _run_in_worker(self, message: MessageSend) -> None:
        """Perform a message the gate admitted on this (worker) thread, then let the gate start
        the next one."""
        token = current_gate.set(self.gate)
        exchange_id = message.exchange_id
        exchange = current_exchange.set((self, exchange_id, threading.get_ident()) if exchange_id else None)
        try:
            self._perform_blocking(message)
        finally:
            current_exchange.reset(exchange)
            current_gate.reset(token)
            if self.protocol.state is not _CLOSED:  # (not self.closed, without the property's call)
                self.gate.done()

    def _run_nested(self, message: MessageSend) -> None:
        """Run a message on the thread of the call it is nested in, as a worker would but in a
        context of its own (not the waiting caller's deadline). It takes no slot of the gate:
        it holds no thread of its own, and each waiting caller runs at most one at a time."""
        depth = inline_nesting.depth
        inline_nesting.depth = depth + 1
        try:
            contextvars.Context().run(self._run_inline, message)
        finally:
            inline_nesting.depth = depth

    def _run_inline(self, message: MessageSend) -> None:
        exchange_id = message.exchange_id
        assert exchange_id is not None  # only calls are handed to a waiting caller
        current_exchange.set((self, exchange_id, threading.get_ident()))
        self._perform_blocking(message)

    def _perform_blocking(self, message: MessageSend) -> None:
        """Run ``message`` on this thread to its end and answer it."""
        exchange_id = message.exchange_id
        if exchange_id is not None:
            self._running.add(exchange_id)
        try:
            result = self.protocol.start(message)
            if isinstance(result, CoroutineType):  # (needs_await, inlined: once per incoming message)
                result = self._await_in_thread(result)
        except BaseException as exc:
            self._answer(message, None, exc)
            return
        self._answer(message, result, None)

    def _answer(self, message: MessageSend, result: Any, error: BaseException | None) -> None:
        """A handler finished: queue its answer (or error) and send it, unless the call was
        one-way or its caller cancelled it."""
        if message.keep:
            self.kept.settle(message.exchange_id, result, error)  # type: ignore[arg-type]
        if error is not None and isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise error
        exchange_id = message.exchange_id
        if exchange_id is None or self._was_cancelled(exchange_id):
            return
        if error is None:
            self.protocol.queue_answer(exchange_id, result)
        else:
            self.protocol.queue_error(exchange_id, error)
        self._flush()

    def _cancel_incoming(self, exchange_ids: list[bytes]) -> None:
        """The peer cancelled these calls: drop the queued ones, mark the running ones (their
        answers are not sent; a runtime that can stop a handler does)."""
        ids = set(exchange_ids)
        self.gate.withdraw(lambda message: message.exchange_id in ids)
        for exchange_id in ids & self._running:
            self._cancelled.add(exchange_id)
            self._stop_handler(exchange_id)

    def _stop_handler(self, exchange_id: bytes) -> None:
        """Stop the handler running for ``exchange_id`` where that is possible (a task)."""

    def _was_cancelled(self, exchange_id: bytes | None) -> bool:
        """Forget a finished handler; True if its caller cancelled it (drop its answer)."""
        if exchange_id is None:
            return False
        self._running.discard(exchange_id)
        if exchange_id in self._cancelled:
            self._cancelled.discard(exchange_id)
            return True
        return False

    def describe(self) -> str:
        return self.url or ("the client" if not self.protocol.client else "the server")

    def stats(self) -> dict[str, int]:
        """Counters: ``exposed``, ``proxies``, ``pending``, ``frames_sent``, ``frames_received``,
        ``bytes_sent``, ``bytes_received``."""
        p = self.protocol
        return {
            "exposed": len(p.exports),
            "proxies": len(p.imports),
            "pending": len(self._pending),
            "frames_sent": p.frames_sent,
            "frames_received": p.frames_received,
            "bytes_sent": p.bytes_sent,
            "bytes_received": p.bytes_received,
        }

    def call(
        self,
        receiver: int,
        selector: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any] | None = None,
        must_block: bool = False,
    ) -> Any:
        raise NotImplementedError

    def call_tether(self, selector: str, args: tuple[Any, ...] = (), must_block: bool = False) -> Any:
        """Send ``selector`` to the peer's Tether object (``root``, ``iterate``...)."""
        key = self.protocol.peer_tether_key
        if key is None:
            raise ConnectionLost("the conversation has not started: no Tether exposed by the peer")
        return self.call(key, selector, args, None, must_block)

    def _lost_error(self) -> ConnectionLost:
        code = getattr(getattr(self, "transport", None), "close_code", None)
        if code in REFUSAL_CODES and self.protocol.peer_tether_key is None:
            fix = (
                "pass the server's token to connect(token=...)"
                if code == CLOSE_UNAUTHORIZED
                else "the server must list this page's origin in its origins="
            )
            reason = "authentication failed" if code == CLOSE_UNAUTHORIZED else "origin not allowed"
            return Refused(f"{self.describe()} refused the connection: {reason} (close code {code}); {fix}", code)
        if self.protocol.client and self.protocol.peer_tether_key is None:
            return HandshakeFailed(
                f"no Tether conversation with {self.describe()}: "
                + (self.close_reason or "the connection closed before the peer exposed its Tether")
            )
        return ConnectionLost(
            f"connection to {self.describe()} is closed"
            + (f": {self.close_reason}" if self.close_reason else "")
        )

    # -- the handshake: every flavour sends hello and root back to back, then reads both -------

    def _queue_handshake(self, hello_waiter: Any, root_waiter: Any) -> bytes:
        """Queue ``hello`` and ``root`` to the peer's Tether back to back (one round trip) and
        send them; returns hello's exchange id. The flavour waits for root's answer, then calls
        :meth:`take_hello`."""
        key = self.protocol.peer_tether_key
        assert key is not None  # the peer exposed its Tether
        hello_id = self._queue_call(hello_waiter, key, "hello", (self.protocol.hello_argument(),), None)
        self._queue_call(root_waiter, key, "root", (), None)
        self._flush()
        return hello_id

    def take_hello(self, hello_id: bytes, answered: bool, outcome: object) -> None:
        """Root's answer is in: apply the peer's answer to ``hello`` (a peer answers in order,
        so a hello answer came first), or accept its absence. A Smalltalk peer answers hello
        with an error, or not at all (then the call is forgotten and a late answer dropped
        unread); either way it then gets Caffeine words only. A lost connection is raised as
        the handshake's failure."""
        if not answered:
            self._pending.pop(hello_id, None)
            return
        if isinstance(outcome, (dict, list)):
            self.protocol.apply_hello(outcome)
        elif isinstance(outcome, ConnectionLost):
            raise self.handshake_broken(outcome)
        elif isinstance(outcome, BaseException) and not isinstance(outcome, (AttributeError, ProtocolError)):
            raise outcome

    def handshake_timed_out(self) -> HandshakeFailed:
        return HandshakeFailed(
            f"{self.describe()} exposed its Tether but did not answer hello and root within the open_timeout"
        )

    def handshake_broken(self, error: ConnectionLost) -> HandshakeFailed:
        """The peer broke off the handshake: say so as a handshake failure."""
        if isinstance(error, HandshakeFailed):
            return error
        return HandshakeFailed(f"no Tether conversation with {self.describe()}: {self.close_reason}")

    def _end(self) -> None:
        """The connection is gone: mark it closed, tell every waiting caller (ConnectionLost
        saying why) and let the protocol forget its tables. Each flavour's ``_shutdown`` calls
        this, then wakes what waits for the close itself."""
        with self._pending_lock:
            self.protocol.state = State.CLOSED
            waiters = list(self._pending.values())
            self._pending.clear()
        if waiters:
            error = self._lost_error()
            for waiter in waiters:
                self._settle(waiter, None, error)
        self.kept.clear()
        self.protocol.close()

    # -- releases: batched, one-way --------------------------------------------------------

    def _release_queued(self) -> None:
        """A proxy died (any thread, perhaps inside the garbage collector): flush soon."""
        if not self._release_requested:
            self._release_requested = True
            self._schedule_release_flush()

    def _flush_releases(self) -> None:
        self._release_requested = False
        if self.closed:
            return
        try:
            queued = self.protocol.queue_releases()
        except Exception:
            return  # the connection is going: the peer forgets its table anyway
        if queued:
            self._flush()
            if self.dialed and self._holds_nothing():
                self._later(_handoff.IDLE_SECONDS, self._close_if_idle)

    def _holds_nothing(self) -> bool:
        p = self.protocol
        return not self.closed and not len(p.imports) and not len(p.exports) and not self._pending and not self._running

    def _close_if_idle(self) -> None:
        """A connection opened for a handoff that still holds nothing: close it (the next
        handoff to its vat opens another)."""
        if self.dialed and self._holds_nothing():
            self.close_reason = "closed by this side: opened for handoffs, it held nothing any more"
            self._close_soon()


def _check_passing(passing: dict[type, str] | None) -> dict[type, str] | None:
    for cls, mode in (passing or {}).items():
        if not isinstance(cls, type) or mode not in ("value", "reference"):
            raise ValueError(
                f"passing maps classes to 'value' or 'reference'; got {cls!r}: {mode!r}"
            )
    return passing


SHUTDOWN_CODE = 1001
SHUTDOWN_REASON = "tether: the server is shutting down"


def describe_peer_close(code: int | None, reason: str) -> str:
    """What ConnectionLost says when the peer closed the connection with ``code``."""
    if code == SHUTDOWN_CODE and reason == SHUTDOWN_REASON:
        return "the server shut down (close code 1001)"
    return f"peer closed the connection (code {code}" + (f": {reason})" if reason else ")")


def describe_keepalive_timeout(interval: float | None) -> str:
    return f"the peer stopped answering pings (keepalive {interval:g} s): it is stalled or unreachable"


def describe_close(exc: BaseException) -> str:
    rcvd: Any = getattr(exc, "rcvd", None)
    if rcvd is not None:
        return describe_peer_close(rcvd.code, rcvd.reason)
    sent: Any = getattr(exc, "sent", None)
    if sent is not None and sent.reason == "keepalive ping timeout":
        return "the peer stopped answering pings: it is stalled or unreachable"
    text = str(exc) or type(exc).__name__
    return text


class PeerBase:
    """What both faces' peers tell about a connection."""

    session: BaseSession

    @property
    def url(self) -> str | None:
        return self.session.url

    @property
    def closed(self) -> bool:
        return self.session.closed

    @property
    def info(self) -> dict[str, Any]:
        """What the peer said about itself in its hello (language, versions, limits)."""
        return dict(self.session.protocol.peer_info)

    def stats(self) -> dict[str, int]:
        """The connection's counters (see :meth:`BaseSession.stats`)."""
        return self.session.stats()


def is_factory(root: Any) -> bool:
    """Whether a server's ``root`` is a factory to call with each new Peer.

    Functions, lambdas, bound methods and ``functools.partial`` objects are factories; any
    other object (classes included) is served as it is. To serve a function itself, wrap it:
    ``serve(lambda peer: func)``.
    """
    return inspect.isfunction(root) or inspect.ismethod(root) or isinstance(root, functools.partial)


RootFactory = Callable[[Any], object]  # called with the new connection's peer
