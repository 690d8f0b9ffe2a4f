"""The threading flavour's session: a :class:`~tether.session.BaseSession` on a blocking
transport, and the sync face's :class:`Peer`.

A :class:`Session` receives frames in order (on a reader thread of its own, or pushed by a
transport's reading thread), routes answers to waiting callers and runs every incoming message
as a worker of its own would: on a thread of the process-wide elastic pool (``tether.workers``),
or, when the transport lets it (``run_here``, ``tether.sync.reading``), on the thread that read
it while another thread reads on; so a handler may block, sleep, or call back into the peer
while the connection goes on reading and answering. Callers block on a per-call lock until
their answer arrives, or read it themselves when the transport lets them (``read_here``) and
nobody else reads. A message the peer sends on behalf of a call waiting here (a callback or
nested call from that call's handler; ``MessageSend.on_behalf``) runs on the waiting caller's
thread instead of a worker (``tether.waiter``), so nested chains hold few threads.

A transport is anything with ``send(bytes)`` (thread-safe), ``recv() -> bytes`` (blocking,
raising when closed) and ``close()``: ``websockets.sync`` connections are, and so is
:func:`tether.testing.memory_pair`. A transport that also has ``attach(on_message, on_closed)``
pushes each message to the session from the thread that reads it instead, which saves a
thread hop per message (``tether.sync.transport`` does this with ``websockets``, and also has
``run_here`` and ``read_here``).
Open one with :func:`open_session`; ``tether.sync.client.connect`` and
``tether.sync.server.Server`` do.
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, cast

from .. import deadline
from ..errors import register_runtime_file
from ..exceptions import ConnectionLost, HandshakeFailed
from ..frames import MessageSend
from ..handoff import Dial, Pause, connection_to, dialed
from ..limits import DEFAULT_PAUSE_READING_ABOVE, HELD_READING_LOOK
from ..protocol import CLOSE_PROTOCOL_ERROR, Event, State
from ..session import BaseSession, PeerBase
from ..session import describe_close as _describe_close
from ..transports import PushTransport, Transport, fit_close_reason
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

    _run_here: Callable[..., bool] | None = None  # the transport's, if it has one (start)
    _send_many: Callable[[list[bytes]], None] | None = None  # the transport's, if it has one (start)

    def __init__(self, transport: Transport | PushTransport, **options: Any) -> None:
        super().__init__(**options)
        _open_sessions.add(self)
        self.transport = transport
        self._send_lock = threading.Lock()
        self._opened = threading.Event()
        self._done = threading.Event()
        self._pool = worker_pool()
        self._reader: threading.Thread | None = None
        # Frames are read under this lock, and so are frames held for a handoff when it is
        # resolved (on a worker thread): either way in the order they arrived.
        self._receive_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Send the opening frame if we are the client, then read in a background thread
        (or, for a transport that pushes messages, attach to it)."""
        attach = getattr(self.transport, "attach", None)
        if attach is not None:
            self._run_here = getattr(self.transport, "run_here", None)
            self._send_many = getattr(self.transport, "send_many", None)
            self._read_here = getattr(self.transport, "read_here", None)
            bound = getattr(self.transport, "pause_reading_above", None)
            if bound is not None and hasattr(self.transport, "hold_reading"):
                self.transport.hold_reading = functools.partial(self._holds_too_much, bound)
            attach(self._feed, self._transport_closed)
        if self.protocol.client:
            self.protocol.queue_opening()
            self._flush()  # closed at once (a refusal): the session is closed, wait_opened reports it
            if self.closed:
                return
        if attach is None:
            self._reader = threading.Thread(target=self.run, name="tether-reader", daemon=True)
            self._reader.start()

    def _feed(self, data: bytes | str) -> None:
        """Handle one message pushed by the transport (from its receiving thread)."""
        if isinstance(data, str):
            if self.protocol.state is State.CLOSING:
                return
            self.protocol.state = State.CLOSING
            violation = "Tether frames are binary messages, got a text message"
            self._pool.submit(self._violate, CLOSE_PROTOCOL_ERROR, violation)
            return
        try:
            with self._receive_lock:
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
            bound = getattr(self.transport, "pause_reading_above", DEFAULT_PAUSE_READING_ABOVE)
            while True:
                data = recv()
                if isinstance(data, str):
                    self._violate(CLOSE_PROTOCOL_ERROR, "Tether frames are binary messages, got a text message")
                    break
                with self._receive_lock:
                    done = self._handle(receive(data))
                if done:
                    break
                while self._holds_too_much(bound) and not self.closed:  # (as the pushing one's watchers)
                    time.sleep(HELD_READING_LOOK)
        except Exception as exc:  # the transport closed or failed: that ends the session
            if self.close_reason is None:
                self.close_reason = _describe_close(exc)
        finally:
            self._shutdown()

    def _handle(self, events: list[Event], deferred_close: bool = False) -> bool:
        violation = self.route(events)
        if self.protocol.has_data_to_send():
            self._flush()
        if violation is None:
            return False
        if deferred_close:  # closing waits for the reply our receiving thread reads
            self._pool.submit(self._violate, violation.code, violation.reason)
        else:
            self._violate(violation.code, violation.reason)
        return True

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
        self._end()
        self._opened.set()
        self._done.set()

    def _holds_too_much(self, bound: int) -> bool:
        """Whether the connection should read nothing more from the peer for now (its watchers
        ask): more than ``bound`` bytes of frames wait to be written (a thread's write is stuck:
        the peer does not read), and this side waits for none of the peer's answers (if it
        did, the peer might be busy writing them, and stopping too would stop both)."""
        return self.protocol.queued_bytes > bound and not self._pending

    # -- sending --------------------------------------------------------------------------

    def _flush(self) -> None:
        """Send what the protocol queued, in order, under the send lock (any thread). A thread
        that finds the lock taken does not wait for it: the thread sending looks at the outbox
        again once it has let go, and sends what came meanwhile (in one write, with the
        transport's ``send_many``), so many workers answering at once neither queue up on the
        lock nor each take a system call. A send that fails ends the session: every waiting
        caller is told."""
        lock, protocol = self._send_lock, self.protocol
        while lock.acquire(False):
            try:
                frames = protocol.data_to_send()
                if len(frames) > 1 and self._send_many is not None:
                    self._send_many(frames)  # one write for all (answers of many workers at once)
                else:
                    for frame in frames:
                        self.transport.send(frame)
            except Exception as exc:
                reason = _describe_close(exc)
                break
            finally:
                lock.release()
            if not protocol.has_data_to_send():  # (queued before another thread found the lock
                return  # taken: this one sends it, unless a third has taken the lock since)
        else:
            return
        if self.close_reason is None:
            self.close_reason = reason
        self._shutdown()
        self._pool.submit(self.close)  # and let the transport go (it may not know yet)

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
        return self._call_and_block(receiver, selector, args, kwargs)

    # -- incoming messages: each in a worker thread ---------------------------------------

    def _start_message(self, message: MessageSend) -> None:
        """Run ``message`` on the thread that read it, if the transport lets it (``run_here``:
        that thread hands the reading to another first), else on a worker."""
        run_here = self._run_here
        if run_here is None or not run_here(self._run_in_worker, message):
            self._pool.submit(self._run_in_worker, message)

    def _await_in_thread(self, awaitable: Any) -> Any:
        return _run_awaitable(awaitable)

    def _schedule_release_flush(self) -> None:
        release_flusher.request(self._flush_releases)

    # -- three-party handoff: the steps of tether.handoff.resolve, blocking in a worker --------

    def _run_steps(self, steps: Any, done: Any) -> None:
        self._pool.submit(self._drive_steps, steps, done)

    def _drive_steps(self, steps: Any, done: Any) -> None:
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
                    time.sleep(step.seconds)
                elif type(step) is Dial:
                    value = self._dial(step)
                else:
                    with deadline.timeout(max(0.001, step.deadline - time.monotonic())):
                        value = step.session.call_tether("withdraw_gift", (step.gift, step.secret))
            except Exception as exc:
                error = exc

    def _dial(self, step: Dial) -> Any:
        """A session on a connection to ``step.url``: one connection per vat (a second
        resolution for that vat waits for the first's and uses it)."""
        if self.dialer is None:
            raise ConnectionLost("this connection was made without a way to open others (no dialer)")
        with _dial_lock(step.vat):
            session = connection_to(step.vat)
            if session is None:
                session = self.dialer(step.url)
                if session.protocol.peer_info.get("vat") != step.vat:
                    session.close()  # someone else listens there
                    raise ConnectionLost(f"{step.url} is not the vat the handoff names")
                dialed(session)
            return session

    def _resume(self, read: Any) -> None:
        with self._receive_lock:
            self._handle(read(), deferred_close=True)

    def _later(self, seconds: float, fn: Any) -> None:
        timer = threading.Timer(seconds, fn)
        timer.daemon = True
        timer.start()

    def _close_soon(self) -> None:
        self._pool.submit(self.close)


_dial_locks: weakref.WeakValueDictionary[bytes, Any] = weakref.WeakValueDictionary()
_dial_locks_guard = threading.Lock()


def _dial_lock(vat: bytes) -> Any:
    with _dial_locks_guard:
        lock = _dial_locks.get(vat)
        if lock is None:
            lock = _dial_locks[vat] = _Lock()
        return lock


class _Lock:
    """A lock that can be weakly referenced (threading.Lock cannot)."""

    __slots__ = ("__weakref__", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc_info: Any) -> None:
        self._lock.release()


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
    hello_id = session._queue_handshake(hello_waiter, root_waiter)
    try:
        root = root_waiter.wait(max(0.0, deadline - time.monotonic()))
        session.take_hello(hello_id, hello_waiter.done, hello_waiter.error or hello_waiter.value)
        peer._root = root
    except TimeoutError:
        session.close()
        raise session.handshake_timed_out() from None
    except ConnectionLost as exc:
        raise session.handshake_broken(exc) from None
    peer._root_fetched = True


