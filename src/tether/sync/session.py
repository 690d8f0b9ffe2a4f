"""The threading flavour's session: a :class:`~tether.session.BaseSession` on a blocking
transport, and the sync face's :class:`Peer`.

A :class:`Session` receives frames in order (on a reader thread of its own, or pushed by a
transport's receiving thread), routes answers to waiting callers and hands every incoming
message to a worker thread of the process-wide elastic pool (``tether.workers``), so a handler
may block, sleep, or call back into the peer while the connection goes on reading and
answering. Callers block on a per-call lock until their answer arrives. A message the peer
sends on behalf of a call waiting here (a callback or nested call from that call's handler;
``MessageSend.on_behalf``) runs on the waiting caller's thread instead of a worker
(``tether.waiter``), so nested chains hold few threads.

A transport is anything with ``send(bytes)`` (thread-safe), ``recv() -> bytes`` (blocking,
raising when closed) and ``close()``: ``websockets.sync`` connections are, and so is
:func:`tether.testing.memory_pair`. A transport that also has ``attach(on_message, on_closed)``
pushes each message to the session from its own receiving thread instead, which saves a
thread hop per message (``tether.sync.transport`` does this with ``websockets``).
Open one with :func:`open_session`; ``tether.sync.client.connect`` and
``tether.sync.server.Server`` do.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import threading
import time
import weakref
from typing import Any, cast

from ..deadline import remaining
from ..exceptions import ConnectionLost, HandshakeFailed, ProtocolError
from ..frames import MessageSend
from ..gate import current_exchange, current_gate, nested_in
from ..protocol import (
    CLOSE_PROTOCOL_ERROR,
    Event,
    register_runtime_file,
)
from ..proxy import needs_await
from ..session import BaseSession, PeerBase
from ..session import describe_close as _describe_close
from ..tether_object import TetherObject
from ..transports import PushTransport, Transport, fit_close_reason
from ..waiter import MAX_INLINE_NESTING, inline_nesting
from ..waiter import Waiter as _Waiter
from ..workers import release_flusher, worker_pool

register_runtime_file(__file__)  # its frames stay out of tracebacks sent to peers

__all__ = ["Peer", "Session", "open_session"]

log = logging.getLogger("tether")


_open_sessions: weakref.WeakSet[Session] = weakref.WeakSet()


def _close_at_exit() -> None:
    """When the main code ends (or dies of an exception) with connections still open, close
    them before the interpreter finalizes, so that the process exits at once and calls still
    waiting in other threads fail with ConnectionLost."""
    for session in list(_open_sessions):
        session.close_at_exit()


# Before the interpreter waits for non-daemon threads (a thread blocked in a call would keep it
# waiting for ever), as concurrent.futures does; plain atexit where that hook is missing.
getattr(threading, "_register_atexit", atexit.register)(_close_at_exit)


class Session(BaseSession):
    """One connection in the threading runtime. Start it with :meth:`start` (a reader thread)
    or run the reader in the current thread with :meth:`run`."""

    def __init__(self, transport: Transport | PushTransport, **options: Any) -> None:
        super().__init__(**options)
        _open_sessions.add(self)
        self.transport = transport
        self._send_lock = threading.Lock()
        self._opened = threading.Event()
        self._done = threading.Event()
        self._release_requested = False
        self._closing = False
        self.protocol.on_release_queued = self._release_queued
        self._pool = worker_pool()
        self._reader: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Send the opening frame if we are the client, then read in a background thread
        (or, for a transport that pushes messages, attach to it)."""
        attach = getattr(self.transport, "attach", None)
        if attach is not None:
            attach(self._feed, self._transport_closed)
        if self.protocol.client:
            try:
                self._send(self.protocol.opening())
            except Exception as exc:  # closed at once (a refusal): wait_opened reports it
                if self.close_reason is None:
                    self.close_reason = _describe_close(exc)
                self._shutdown()
                return
        if attach is None:
            self._reader = threading.Thread(target=self.run, name="tether-reader", daemon=True)
            self._reader.start()

    def _feed(self, data: bytes | str) -> None:
        """Handle one message pushed by the transport (from its receiving thread)."""
        if self._closing:
            return
        if isinstance(data, str):
            self._closing = True
            violation = "Tether frames are binary messages, got a text message"
            self._pool.submit(self._violate, CLOSE_PROTOCOL_ERROR, violation)
            return
        try:
            if self._handle(self.protocol.receive(data), deferred_close=True):
                return
        except Exception as exc:  # a bug, not bad input: report it and drop the connection
            log.exception("error while handling a frame from %s", self.describe())
            self.close_reason = f"internal error: {exc!r}"
            self._pool.submit(self.close)

    def _transport_closed(self, reason: str | None) -> None:
        if self.close_reason is None:
            self.close_reason = reason or "the connection closed"
        self._shutdown()

    def wait_opened(self, timeout: float) -> None:
        if not self._opened.wait(timeout) and not self.closed:
            self.close()
            raise HandshakeFailed(
                f"{self.describe()} opened a WebSocket but sent no Tether frame within {timeout:g} s "
                "(not a Tether peer, or one that is stuck)"
            )
        if self.closed:
            raise self._lost_error()

    def run(self) -> None:
        """Read and handle frames until the connection closes (the reader loop)."""
        try:
            recv = cast(Transport, self.transport).recv  # run() reads transports that do not push
            receive = self.protocol.receive
            while True:
                data = recv()
                if isinstance(data, str):
                    self._violate(CLOSE_PROTOCOL_ERROR, "Tether frames are binary messages, got a text message")
                    break
                if self._handle(receive(data)):
                    break
        except Exception as exc:  # the transport closed or failed: that ends the session
            if self.close_reason is None:
                self.close_reason = _describe_close(exc)
        finally:
            self._shutdown()

    def _handle(self, events: list[Event], deferred_close: bool = False) -> bool:
        for frame in self.protocol.data_to_send():
            self._send(frame)
        violation = self.route(events)
        if violation is None:
            return False
        self._closing = True
        if deferred_close:  # closing waits for the reply our receiving thread reads
            self._pool.submit(self._violate, violation.code, violation.reason)
        else:
            self._violate(violation.code, violation.reason)
        return True

    def _dispatch(self, message: MessageSend) -> None:
        if message.receiver is self.protocol.tether and message.selector in TetherObject.INLINE:
            self._perform_message(message)
        elif message.on_behalf is None or message.exchange_id is None or not self._hand_to_waiter(message):
            self.gate.submit(message)

    def _on_opened(self) -> None:
        self._opened.set()

    def _violate(self, code: int, reason: str) -> None:
        log.warning("closing connection to %s: %s", self.describe(), reason)
        self.close_reason = f"protocol error: {reason}"
        try:
            self.transport.close(code, fit_close_reason(reason))
        except TypeError:
            self.transport.close()
        except Exception:
            pass

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (with this close code and reason for the peer). Pending calls
        fail with ConnectionLost."""
        if self.close_reason is None:
            self.close_reason = "closed by this side"
        try:
            if code == 1000 and not reason:
                self.transport.close()
            else:
                self.transport.close(code, fit_close_reason(reason))
        except Exception:
            pass
        self._shutdown()

    def wait_closed(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def close_at_exit(self) -> None:
        """Close without waiting long for the peer's closing handshake (the process exits)."""
        if self.closed:
            return
        self.close_reason = "this process is exiting"
        transport: Any = self.transport  # websockets' connections have close_timeout
        if getattr(transport, "close_timeout", None) is not None:
            transport.close_timeout = 0.2
        self.close()

    def _shutdown(self) -> None:
        _open_sessions.discard(self)
        waiters = self._fail_pending()
        if waiters:
            error = self._lost_error()
            for waiter in waiters:
                waiter.set_exception(error)
        self.protocol.close()
        self._opened.set()
        self._done.set()

    # -- sending --------------------------------------------------------------------------

    def _send(self, frame: bytes) -> None:
        with self._send_lock:
            self.protocol.count_sent(frame)
            self.transport.send(frame)

    def call(
        self,
        receiver: int,
        selector: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any] | None = None,
        must_block: bool = False,
    ) -> Any:
        """Send a message and block until its answer comes back (or raise its error).

        Waits at most the connection's ``timeout`` or the current :func:`tether.timeout`,
        whichever is sooner; then raises TimeoutError and cancels the call remotely."""
        wait = remaining(self.timeout)
        if wait is not None and wait <= 0:
            raise TimeoutError(f"no time left for {selector!r}: the tether.timeout deadline has passed")
        waiter = _Waiter()
        if inline_nesting.depth >= MAX_INLINE_NESTING:
            waiter.idle = False  # this stack is deep enough: messages nested in this call go to workers
        protocol = self.protocol
        on_behalf = nested_in(self, threading.get_ident())
        with self._send_lock:
            exchange_id, frame = protocol.encode_call(receiver, selector, args, kwargs, on_behalf=on_behalf)
            with self._pending_lock:
                if self.closed:
                    raise self._lost_error()
                self._pending[exchange_id] = waiter  # type: ignore[index]
            protocol.frames_sent += 1
            protocol.bytes_sent += len(frame)
            try:
                self.transport.send(frame)
            except Exception as exc:
                self._pending.pop(exchange_id, None)  # type: ignore[arg-type]
                if self.close_reason is None:
                    self.close_reason = _describe_close(exc)
                raise self._lost_error() from None
        try:
            return waiter.wait(wait, selector, self._run_nested)
        except BaseException:  # timed out, or interrupted: nobody waits for the answer now
            with self._pending_lock:
                abandoned = self._pending.pop(exchange_id, None) is not None  # type: ignore[arg-type]
                waiter.idle = False
                job, waiter.job = waiter.job, None
            if job is not None:  # handed over just now: a worker runs it instead
                self.gate.submit(job)
            if abandoned:
                self.cancel_remote([exchange_id])  # type: ignore[list-item]
            raise

    def cancel_remote(self, exchange_ids: list[bytes]) -> None:
        """Tell the peer that nobody waits for these calls' answers any more (one-way)."""
        key = self.protocol.peer_tether_key
        if key is None or self.closed:
            return
        try:
            self.send_one_way(key, "cancel", (exchange_ids,))
        except Exception:
            pass  # the connection is gone: nothing runs there any more

    def send_one_way(self, receiver: int, selector: str, args: tuple[Any, ...]) -> None:
        with self._send_lock:
            _, frame = self.protocol.encode_call(receiver, selector, args, one_way=True)
            self.protocol.count_sent(frame)
            self.transport.send(frame)

    # -- incoming messages ----------------------------------------------------------------

    def _start_message(self, message: MessageSend) -> None:
        self._pool.submit(self._run_message, message)

    def _refuse_message(self, message: MessageSend, error: BaseException) -> None:
        frame = self.protocol.fail(message, error)
        if frame is not None:
            self._send_quietly(frame)

    def _run_message(self, message: MessageSend) -> None:
        """Perform a message the gate admitted, then let the gate start the next one."""
        token = current_gate.set(self.gate)
        exchange_id = message.exchange_id
        exchange = current_exchange.set((self, exchange_id, threading.get_ident()) if exchange_id else None)
        try:
            self._perform_message(message)
        finally:
            current_exchange.reset(exchange)
            current_gate.reset(token)
            if not self.closed:
                self.gate.done()

    def _hand_to_waiter(self, message: MessageSend) -> bool:
        """Give a message sent on behalf of one of our calls to the thread waiting for that
        call's answer, if it is idle; False: it runs in a worker as usual."""
        with self._pending_lock:
            waiter = self._pending.get(message.on_behalf)  # type: ignore[arg-type]
            if waiter is None or not waiter.idle:
                return False
            waiter.give(message)
        return True

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
        self._perform_message(message)

    def _perform_message(self, message: MessageSend) -> None:
        protocol = self.protocol
        exchange_id = message.exchange_id
        if exchange_id is not None:
            self._running.add(exchange_id)
        try:
            result = protocol.start(message)
            if needs_await(result):
                result = _run_awaitable(result)
        except BaseException as exc:
            frame = protocol.fail(message, exc)
            del exc
            if frame is not None and not self._was_cancelled(exchange_id):
                self._send_quietly(frame)
            return
        if exchange_id is None or self._was_cancelled(exchange_id):
            return
        try:
            with self._send_lock:
                frame = protocol.encode_answer(exchange_id, result)
                protocol.count_sent(frame)
                self.transport.send(frame)
        except Exception:
            pass  # the connection is gone; the reader reports it

    def _send_quietly(self, frame: bytes) -> None:
        try:
            self._send(frame)
        except Exception:
            pass

    # -- releases -------------------------------------------------------------------------

    def _release_queued(self) -> None:
        if not self._release_requested:
            self._release_requested = True
            release_flusher.request(self._flush_releases)

    def _flush_releases(self) -> None:
        self._release_requested = False
        if self.closed:
            return
        frame = self.protocol.take_releases()
        if frame is not None:
            self._send_quietly(frame)


def _run_awaitable(awaitable: Any) -> Any:
    import asyncio  # only when a sync server exposes async methods

    async def wait() -> Any:
        return await awaitable

    return asyncio.run(wait())


class Peer(PeerBase):
    """The other end of a connection, as seen from this side (sync face).

    ``root`` is a proxy to the peer's root object (``None`` when it exposes none); ``stats()``
    the connection's counters. Close it with :meth:`close` or by leaving a ``with`` block.
    """

    session: Session

    def __init__(self, session: Session, root_fetched: bool = False, root: Any = None) -> None:
        self.session = session
        self._root = root
        self._root_fetched = root_fetched
        self._root_lock = threading.Lock()

    @property
    def root(self) -> Any:
        """A proxy to the peer's root object (fetched on first use on the serving side)."""
        if not self._root_fetched:
            with self._root_lock:
                if not self._root_fetched:
                    self._root = self.session.call_tether("root", (), must_block=True)
                    self._root_fetched = True
        return self._root

    def close(self) -> None:
        self.session.close()

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until the connection is closed; return False on timeout."""
        return self.session.wait_closed(timeout)

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<tether.Peer {self.session.describe()} {state}>"


def open_session(
    transport: Any, *, root: object = None, url: str | None = None, open_timeout: float = 10.0, **options: Any
) -> Peer:
    """Start the client side of a conversation on ``transport``; return the connected Peer.

    Sends our exposure, waits for the peer's, then asks for its ``hello`` and ``root`` in one
    round trip.
    """
    deadline = time.monotonic() + open_timeout
    session = Session(transport, root=root, client=True, url=url, **options)
    session.start()
    session.wait_opened(open_timeout)
    peer = Peer(session)
    _handshake(session, peer, deadline)
    return peer


def _handshake(session: Session, peer: Peer, deadline: float) -> None:
    """Send ``hello`` and ``root`` back to back and wait for both answers (one round trip)."""
    hello_waiter, root_waiter = _Waiter(), _Waiter()
    key = session.protocol.peer_tether_key
    assert key is not None
    for selector, args, waiter in (
        ("hello", (session.protocol.hello_info(),), hello_waiter),
        ("root", (), root_waiter),
    ):
        with session._send_lock:
            exchange_id, frame = session.protocol.encode_call(key, selector, args)
            with session._pending_lock:
                if session.closed:
                    raise session._lost_error()
                session._pending[exchange_id] = waiter  # type: ignore[index]
            session.protocol.count_sent(frame)
            session.transport.send(frame)
    try:
        try:
            info: object = hello_waiter.wait(max(0.0, deadline - time.monotonic()))
        except (AttributeError, ProtocolError, ConnectionLost) as exc:
            info = exc
        session.take_hello(info)
        peer._root = root_waiter.wait(max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        session.close()
        raise session.handshake_timed_out() from None
    except ConnectionLost as exc:
        raise session.handshake_broken(exc) from None
    peer._root_fetched = True


