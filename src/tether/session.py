"""The session core that every flavour shares: one connection's protocol, its pending calls,
its gate, how proxies reach the peer, what a lost connection is called, and the peer object's
common face.

A flavour (``tether.sync.session`` for threads, ``tether.aio.session`` for asyncio,
``tether.browser.session`` for Pyodide) subclasses :class:`BaseSession` and adds only how it
waits for an answer, how it runs an incoming message (``_start_message``) and how it sends.
Nothing here starts a thread or needs an event loop.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

from .admission import CLOSE_UNAUTHORIZED, REFUSAL_CODES
from .dispatch import AccessPolicy
from .exceptions import ConnectionLost, HandshakeFailed, ProtocolError, Refused
from .frames import MessageSend
from .gate import CallGate
from .limits import Limits
from .protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    AnswerReceived,
    ErrorReceived,
    Event,
    Incoming,
    Opened,
    Protocol,
    Violation,
    register_runtime_file,
)
from .proxy import make_proxy
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
        self.gate = CallGate(limits.max_concurrency, limits.max_queued, self._start_message, self._refuse_message)
        self.closed = False
        self.close_reason: str | None = None
        self._pending: dict[bytes, Any] = {}
        self._pending_lock = threading.Lock()
        self._running: set[bytes] = set()  # exchange ids of the peer's calls running here
        self._cancelled: set[bytes] = set()  # ... whose caller no longer waits
        self.protocol.on_cancel = self._cancel_incoming

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
            elif kind is Violation:
                return event  # type: ignore[return-value]
        return None

    def _settle(self, waiter: Any, value: Any, error: BaseException | None) -> None:
        """Give a waiting caller its answer (a flavour whose waiters can be cancelled skips those)."""
        if error is None:
            waiter.set_result(value)
        else:
            waiter.set_exception(error)

    def _dispatch(self, message: MessageSend) -> None:
        """An incoming message: run it (each flavour says how; the gate bounds them)."""
        raise NotImplementedError

    def _on_opened(self) -> None:
        """The peer exposed its Tether: the conversation has started."""
        raise NotImplementedError

    def _make_proxy(self, key: int, info: ClassInfo | None) -> Any:
        return make_proxy(self, key, info)

    def _start_message(self, message: MessageSend) -> None:
        """Run a message the gate admitted (each runtime says how)."""
        raise NotImplementedError

    def _refuse_message(self, message: MessageSend, error: BaseException) -> None:
        """Answer a message the gate cannot queue with ``error``."""
        raise NotImplementedError

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

    def take_hello(self, outcome: object) -> None:
        """Apply the peer's answer to ``hello`` (its description) or accept its absence: a peer
        without ``hello`` (a Smalltalk Tether) answers an error, and then gets plain references.
        A lost connection is raised as the handshake's failure."""
        if isinstance(outcome, dict):
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

    def _fail_pending(self) -> list[Any]:
        """Mark closed and take every pending waiter (the caller fails them)."""
        with self._pending_lock:
            self.closed = True
            waiters = list(self._pending.values())
            self._pending.clear()
        return waiters


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
