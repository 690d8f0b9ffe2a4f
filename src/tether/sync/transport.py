"""The sync flavour's transport: a WebSocket connection over a plain socket (``wss://`` with an
``ssl.SSLContext``), run by websockets' sans-I/O protocol (``websockets.client.ClientProtocol``,
``websockets.server.ServerProtocol``), that pushes each message to its session from the thread
that read it (:class:`~tether.transports.PushTransport`).

- **Receiving** (``tether.sync.reading``): one thread at a time reads the socket into a buffer
  the connection owns, frames it (``tether.framing``: whole binary messages here, every other
  frame by the protocol) and hands each message to ``on_message``: a watcher (the
  connection's own thread at first, then pool workers, leader/followers), which
  may keep a message to run itself (:meth:`Connection.run_here`) while another watches on, or
  a caller waiting for its answer when nobody else reads (:meth:`Connection.read_here`). No
  queue, no thread hop per message.
- **Sending**: the calling thread frames the message (``tether.framing``) and writes it to
  the socket itself, under the connection's send lock; ``send_many`` writes several in one
  system call. What the protocol answers on its own (a pong, the echo of a close frame) is
  written by whichever thread holds the send lock next, or by the reading thread when none
  does: the reading thread never waits for a sender.
- **TLS** (``tether.sync.tls``): an ``ssl.SSLObject`` over memory buffers, used under the
  connection's lock, so reading and writing never run in OpenSSL at once on one connection
  (which an ``SSLSocket`` read by one thread and written by another does:
  ``tether.admission.tls_server_context`` says what that did to websockets' sync client).
- **Keepalive**, without a thread of its own: a watcher waits for the socket with a timeout,
  so when the line has been silent for ``ping_interval`` it wakes and sends a
  ping; when no pong came ``ping_timeout`` later it closes with 1011 "keepalive ping timeout"
  and reports the peer as stalled (:func:`~tether.session.describe_keepalive_timeout`).
- **Closing**: :meth:`Connection.close` sends the close frame and waits (``close_timeout``)
  for the watchers to see the closing handshake through; the last one then closes the socket
  and calls ``on_closed`` once.

:func:`open_connection` opens a client connection (TCP, TLS, the HTTP upgrade);
:func:`accept_connection` answers the upgrade on a socket a server accepted;
``tether.sync.client`` and ``tether.sync.server`` use them, with the settings of
``tether.sync.settings`` (the ``transport=`` option).
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from websockets.frames import OK_CLOSE_CODES, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event, Protocol, State
from websockets.server import ServerProtocol
from websockets.typing import Origin, Subprotocol
from websockets.uri import parse_uri

from ..framing import FastFrames, handshake_ended_cleanly
from ..session import describe_keepalive_timeout, describe_peer_close
from ..transports import OnClosed, OnMessage
from .reading import Reading
from .settings import Settings
from .tls import Deadline, MemoryTLS

__all__ = [
    "KEEPALIVE_TIMEOUT_REASON",
    "Connection",
    "PushingClientConnection",
    "PushingServerConnection",
    "accept_connection",
    "open_connection",
]

log = logging.getLogger("tether")

KEEPALIVE_TIMEOUT_REASON: Final = "keepalive ping timeout"
"""The reason of the close frame (1011) sent to a peer that stopped answering pings."""

_OPEN: Final = State.OPEN
_CLOSED: Final = State.CLOSED
_PONG: Final = Opcode.PONG
_BUFFER_SIZE: Final = 65536
_DROPPED: Final = "the connection dropped without a closing handshake"


# -- sockets -------------------------------------------------------------------------------------


def _no_delay(sock: socket.socket) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)


def _address(get: Callable[[], Any]) -> Any:
    try:
        return get()
    except OSError:
        return None


# -- the connection ------------------------------------------------------------------------------


class Connection(Reading):
    """One WebSocket connection, pushing what it receives (see the module docstring).

    :class:`PushingClientConnection` and :class:`PushingServerConnection` are its two sides.
    ``send``, ``close`` and ``attach`` are the :class:`~tether.transports.PushTransport`
    contract; ``close_code``/``close_reason`` are :class:`~tether.transports.CloseDetails`;
    ``state``, ``subprotocol``, ``request``, ``response``, ``remote_address`` and
    ``local_address`` mean what they mean on a ``websockets`` connection, and ``close_timeout``
    (seconds, writable) bounds how long :meth:`close` waits for the peer.
    """

    # What tether.websocket.WebSocketDetails tells on the asyncio face's connection, told here
    # again: mypyc compiles this class, and a compiled class cannot have an interpreted base.

    @property
    def state(self) -> State:
        return self.protocol.state

    @property
    def subprotocol(self) -> Subprotocol | None:
        return self.protocol.subprotocol

    @property
    def close_code(self) -> int | None:
        code: int | None = self.protocol.close_code  # (typed here: the build may not have websockets)
        return code

    @property
    def close_reason(self) -> str | None:
        reason: str | None = self.protocol.close_reason
        return reason

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.remote_address} {self.protocol.state.name}>"

    def __init__(self, sock: socket.socket, protocol: Protocol, tls: MemoryTLS | None, settings: Settings) -> None:
        self.socket = sock
        self.protocol = protocol
        self._tls = tls
        self.ping_interval = settings.ping_interval
        self.ping_timeout = settings.ping_timeout
        self.close_timeout = settings.close_timeout
        self.pause_reading_above = settings.pause_reading_above  # (read by the session: hold_reading)
        self.request: Request | None = None
        self.response: Response | None = None
        self.remote_address: Any = _address(sock.getpeername)
        self.local_address: Any = _address(sock.getsockname)
        self._lock = threading.Lock()  # the protocol and the TLS object
        self._send_lock = threading.Lock()  # writing to the socket
        self._push_lock = threading.Lock()  # attach against the reading thread
        self._on_message: OnMessage | None = None
        self._on_closed: OnClosed | None = None
        self._early: list[bytes | str] = []
        self._ended = False
        self._done = threading.Event()  # the watchers are done: the socket is closed
        self._receiver: int | None = None  # the ident of the thread that reads it now
        self._init_reading(sock)
        self._handshake_events: list[Event] = []  # parsed along with the opening handshake
        self._handshake_read = False
        self._handshake_data = bytearray()  # what the opening handshake read (see _opened)
        self._max_size = settings.max_size
        # Frames the common case itself, websockets the rest (tether.framing); from _opened on.
        self._frames = FastFrames(protocol, settings.max_size, enabled=False)
        # How long the watcher waits before it looks at the time (keepalive, closing).
        self._tick: float | None = None
        if self.ping_interval is not None:
            self._tick = self.ping_interval if self.ping_timeout is None else min(self.ping_interval, self.ping_timeout)
        self._ping: bytes | None = None  # the keepalive ping waiting for its pong
        self._ping_sent = 0.0
        self._close_deadline: float | None = None
        self._failure: BaseException | None = None  # what ended the connection, if not a close
        # An anonymous mapping: only the pages that data reaches become resident, and reading
        # into it never asks malloc for a block per message (docs/benchmarks.md, "Load and soak").
        self._buffer = mmap.mmap(-1, _BUFFER_SIZE)
        self._view = memoryview(self._buffer)

    # -- sending -------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send ``data`` as one binary message, from the calling thread (thread-safe)."""
        with self._send_lock:
            with self._lock:
                if self.protocol.state is not _OPEN:
                    chunks = None
                else:
                    chunks = self._output(self._frames.frame(data))
            failed = chunks is None or not self._write(chunks)
        if failed:
            raise self._closed_error()
        tls = self._tls
        if self.protocol.writes or (tls is not None and tls.outgoing.pending):
            self._write_pending()  # an automatic answer was queued meanwhile: ours to write

    def send_many(self, messages: list[bytes]) -> None:
        """Send each of ``messages`` as one binary message, in order, in one write (as
        :meth:`send`; what many threads queued at once costs one system call, not one each)."""
        with self._send_lock:
            with self._lock:
                if self.protocol.state is not _OPEN:
                    chunks = None
                else:
                    frame = self._frames.frame
                    chunks = self._output(b"".join([frame(message) for message in messages]))
            failed = chunks is None or not self._write(chunks)
        if failed:
            raise self._closed_error()
        tls = self._tls
        if self.protocol.writes or (tls is not None and tls.outgoing.pending):
            self._write_pending()

    def send_text(self, text: str) -> None:
        """Send ``text`` as one text message (Tether never does: for tests and tools)."""
        with self._send_lock:
            with self._lock:
                if self.protocol.state is not _OPEN:
                    chunks = None
                else:
                    self.protocol.send_text(text.encode())
                    chunks = self._output()
            failed = chunks is None or not self._write(chunks)
        if failed:
            raise self._closed_error()
        if self._has_output():
            self._write_pending()

    def _output(self, frame: bytes | None = None) -> list[bytes]:
        """What the protocol has to send, then ``frame`` if given, encrypted with TLS (under
        ``_lock``); ``b""``: end the stream (half-close)."""
        protocol = self.protocol
        # (data_to_send hands over protocol.writes and empties it: nothing to hand over, no call)
        writes = protocol.data_to_send() if protocol.writes else []
        if frame is not None:
            writes.append(frame)
        tls = self._tls
        if tls is None:
            return writes
        out: list[bytes] = []
        for chunk in writes:
            if chunk:
                tls.encrypt(chunk)
                continue
            pending = tls.outgoing.read()  # what was encrypted before the end of the stream
            if pending:
                out.append(pending)
            out.append(b"")
        pending = tls.outgoing.read()
        if pending:
            out.append(pending)
        return out

    def _has_output(self) -> bool:
        tls = self._tls
        return bool(self.protocol.writes) or (tls is not None and tls.outgoing.pending > 0)

    def _write(self, chunks: list[bytes]) -> bool:
        """Write ``chunks`` to the socket (under ``_send_lock``); False if the socket failed,
        which ends the connection."""
        sock = self.socket
        try:
            for chunk in chunks:
                if chunk:
                    sock.sendall(chunk)
                else:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self._abort(exc)
            return False
        return True

    def _write_pending(self) -> None:
        """Write what the protocol queued by itself (a pong, a close frame's echo) unless a
        sender holds the send lock: that sender writes it once it is done (it checks after
        releasing the lock), so the reading thread never waits for a sender."""
        while self._has_output():
            if not self._send_lock.acquire(blocking=False):
                return
            try:
                with self._lock:
                    chunks = self._output()
                if chunks:
                    self._write(chunks)
            finally:
                self._send_lock.release()

    def _abort(self, failure: BaseException | None = None) -> None:
        """End the connection now, without a closing handshake: the watchers wake up (the
        socket is shut down) and the last one closes the socket and reports the end."""
        if failure is not None and self._failure is None:
            self._failure = failure
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)

    def _closed_error(self) -> ConnectionClosed:
        """What a send or a handshake step raises once the connection is closing or closed: it
        waits (``close_timeout``) for the closing handshake to end, so that the exception says
        the close frames of both sides."""
        self._wait_done()
        protocol = self.protocol
        rcvd, sent = protocol.close_rcvd, protocol.close_sent
        ok = rcvd is not None and sent is not None and rcvd.code in OK_CLOSE_CODES and sent.code in OK_CLOSE_CODES
        error_type = ConnectionClosedOK if ok else ConnectionClosedError
        error = error_type(rcvd, sent, protocol.close_rcvd_then_sent)
        error.__cause__ = self._failure
        return error

    # -- closing -------------------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake with ``code`` and ``reason`` and wait, at most
        ``close_timeout`` seconds, for it to end (then the connection is dropped). Idempotent;
        from any thread. From the thread that reads it now it does not wait: the watchers see
        the handshake through after it."""
        timeout = self.close_timeout
        if self._send_lock.acquire(timeout=-1 if timeout is None else timeout):
            try:
                with self._lock:
                    if self.protocol.state is _OPEN:
                        self.protocol.send_close(code, reason)
                        chunks: list[bytes] | None = self._output()
                    else:
                        chunks = None
                if chunks:
                    self._write(chunks)
            finally:
                self._send_lock.release()
            if self._has_output():  # what the reading thread left to us meanwhile
                self._write_pending()
        else:  # a send is stuck (the peer does not read): give up on a polite close
            self._abort(TimeoutError("timed out while closing: a send did not finish"))
        self._wait_done()

    def _wait_done(self) -> None:
        """Wait for the watchers to end (``close_timeout``, then drop the connection); on the
        thread that reads it now, have the watchers drop the connection after ``close_timeout``."""
        if self._done.is_set():
            return
        timeout = self.close_timeout
        if threading.get_ident() == self._receiver:
            if self._close_deadline is None and timeout is not None:
                self._close_deadline = time.monotonic() + timeout
                if self._tick is None or timeout < self._tick:
                    self._tick = timeout
            return
        if not self._done.wait(timeout):
            self._abort(TimeoutError("timed out while closing the connection"))
            self._done.wait(max(1.0, timeout or 0.0))

    # -- receiving -----------------------------------------------------------------------------

    def attach(self, on_message: OnMessage, on_closed: OnClosed) -> None:
        """Hand every message to ``on_message`` from now on (those received before first, in
        order) and the end to ``on_closed`` (at once if the connection has ended already)."""
        with self._push_lock:
            for data in self._early:
                on_message(data)
            self._early = []
            self._on_message = on_message
            ended = self._ended
            if not ended:
                self._on_closed = on_closed
        if ended:
            on_closed(self._describe_end())

    def _process(self, events: Sequence[Any]) -> None:
        """Hand on what ``tether.framing`` made of what arrived: messages, and pongs."""
        for item in events:
            kind = type(item)
            if kind is bytes or kind is str:
                self._deliver(item)
            elif item.opcode is _PONG:
                if self._ping is not None and bytes(item.data) == self._ping:
                    self._ping = None

    def _deliver(self, data: bytes | str) -> None:
        handler = self._on_message
        if handler is None:
            with self._push_lock:
                handler = self._on_message
                if handler is None:
                    self._early.append(data)
                    return
        handler(data)

    def _on_silence(self) -> bool:
        """The watcher waited ``_tick`` seconds: drop a connection whose close timed out, ping
        a peer silent for ``ping_interval``, give up on one that does not answer. False: the
        connection ends."""
        now = time.monotonic()
        if self._close_deadline is not None and now >= self._close_deadline:
            self._abort(TimeoutError("timed out while closing the connection"))
            return False
        interval, tick = self.ping_interval, self._tick
        if interval is None or tick is None or self.protocol.state is not _OPEN:
            return True
        slack = tick / 20  # (a wait may end a little early: not a tick late for that)
        if self._ping is not None:
            if self.ping_timeout is not None and now - self._ping_sent >= self.ping_timeout - slack:
                with self._lock:
                    if self.protocol.state is _OPEN:
                        self.protocol.fail(1011, KEEPALIVE_TIMEOUT_REASON)
                self._write_pending()  # the close frame, unless a send is stuck
                self._abort(TimeoutError(KEEPALIVE_TIMEOUT_REASON))
                return False
            return True
        if now - self._received_at >= interval - slack:
            payload = os.urandom(4)
            with self._lock:
                self.protocol.send_ping(payload)
            self._ping, self._ping_sent = payload, now
            self._write_pending()  # (a stuck send keeps it: then no pong comes, and that counts)
        return True

    def _finish(self) -> None:
        """The watcher is done: the protocol sees the end of the stream, the socket
        is closed (once no sender uses it: shut down first, a blocked send returns), and the
        session is told."""
        sock = self.socket
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            self._frames.receive_eof()  # idempotent; the state is CLOSED from here
            self.protocol.data_to_send()
        with self._read_lock, self._send_lock:  # no other thread reads it, or writes to it
            self._over = True
            self._ready.close()
            sock.close()
        self._buffer_release()
        self._done.set()
        with self._push_lock:
            self._ended = True
            on_closed, self._on_closed = self._on_closed, None
        if on_closed is not None:
            on_closed(self._describe_end())

    def _buffer_release(self) -> None:
        self._view.release()
        with contextlib.suppress(BufferError):
            self._buffer.close()

    def _describe_end(self) -> str:
        """Why the connection ended, for people (the session's reason it was lost)."""
        protocol = self.protocol
        rcvd, sent = protocol.close_rcvd, protocol.close_sent
        if rcvd is not None:
            return describe_peer_close(rcvd.code, rcvd.reason)
        if sent is not None and sent.reason == KEEPALIVE_TIMEOUT_REASON:
            return describe_keepalive_timeout(self.ping_interval)
        return _DROPPED

    # -- the opening handshake (in the thread that opens or accepts) ---------------------------

    def _handshake_step(self, deadline: Deadline) -> list[Event]:
        """Read once (within ``deadline``), feed the protocol, write what it answers. (The
        first step with TLS reads what came with the TLS handshake's last flight first.)"""
        tls = self._tls
        if tls is not None and tls.incoming.pending and not self._handshake_read:
            n = -1
        else:
            self.socket.settimeout(deadline.left())
            n = self.socket.recv_into(self._view)
        self._handshake_read = True
        with self._lock:
            if not n:
                self.protocol.receive_eof()
            elif tls is None:
                data = bytes(self._view[:n])
                self._handshake_data += data
                self.protocol.receive_data(data)
            else:
                data, ended = tls.decrypt(self._view[:n] if n > 0 else b"")
                if data:
                    self._handshake_data += data
                    self.protocol.receive_data(data)
                if ended:
                    self.protocol.receive_eof()
            events: list[Event] = self.protocol.events_received()
            chunks = self._output()
        if chunks:
            self._write_handshake(chunks, deadline)
        return events

    def _write_handshake(self, chunks: list[bytes], deadline: Deadline) -> None:
        self.socket.settimeout(deadline.left())
        for chunk in chunks:
            if chunk:
                self.socket.sendall(chunk)
            else:
                with contextlib.suppress(OSError):
                    self.socket.shutdown(socket.SHUT_WR)

    def _opened(self) -> None:
        """The handshake is done: the socket blocks from now on (the receive timeout of
        keepalive is the watchers' wait). The common case of framing is ours from here if
        websockets' parser is at a frame boundary (nothing came after the HTTP message)."""
        self.socket.settimeout(None)
        clean = handshake_ended_cleanly(self._handshake_data) and not self._handshake_events
        self._frames = FastFrames(self.protocol, self._max_size, enabled=clean)
        self._handshake_data = bytearray()

    def _drop(self) -> None:
        """Close a connection that never opened (no watcher)."""
        self._ready.close()
        with contextlib.suppress(OSError):
            self.socket.close()
        self._buffer_release()
        with self._lock:
            self.protocol.receive_eof()
        self._done.set()
        self._ended = True


class PushingClientConnection(Connection):
    """The client side: opened by :func:`open_connection`, which starts its watching thread."""

    protocol: ClientProtocol

    def _handshake(self, settings: Settings, deadline: Deadline) -> None:
        protocol = self.protocol
        request = protocol.connect()
        if settings.additional_headers is not None:
            request.headers.update(settings.additional_headers)
        if settings.user_agent_header is not None:
            request.headers.setdefault("User-Agent", settings.user_agent_header)
        self.request = request
        with self._lock:
            protocol.send_request(request)
            chunks = self._output()
        self._write_handshake(chunks, deadline)
        while self.response is None:
            events = self._handshake_step(deadline)
            if events and isinstance(events[0], Response):
                self.response = events[0]
                self._handshake_events = events[1:]  # frames sent right after the answer
            elif protocol.handshake_exc is None and protocol.state is _CLOSED:
                raise protocol.close_exc
            if protocol.handshake_exc is not None:
                raise protocol.handshake_exc


class PushingServerConnection(Connection):
    """The server side: made by :func:`accept_connection` on an accepted socket; the thread
    that accepted it runs its receiving loop (:meth:`~Connection.run`)."""

    protocol: ServerProtocol

    def _handshake(self, settings: Settings, deadline: Deadline) -> bool:
        """Read the upgrade request and answer it; False if it was not a WebSocket request
        (answered with an HTTP error, or dropped)."""
        protocol = self.protocol
        while self.request is None:
            events = self._handshake_step(deadline)
            for index, event in enumerate(events):
                if isinstance(event, Request):
                    self.request = event
                    self._handshake_events = list(events[index + 1 :])
                    break
            else:
                if protocol.handshake_exc is not None or protocol.state is _CLOSED:
                    return False
        response = protocol.accept(self.request)
        if settings.server_header is not None:
            response.headers["Server"] = settings.server_header
        self.response = response
        with self._lock:
            protocol.send_response(response)
            chunks = self._output()
        self._write_handshake(chunks, deadline)
        accepted: bool = response.status_code == 101
        return accepted


# -- opening and accepting -----------------------------------------------------------------------


def open_connection(url: str, *, subprotocols: Sequence[Subprotocol] | None, ssl_context: ssl.SSLContext | None,
                    settings: Settings) -> PushingClientConnection:  # fmt: skip
    """Connect to ``url`` (``ws://`` or ``wss://``), open the WebSocket (TLS handshake with
    ``ssl_context``, or the default context for ``wss://``; the HTTP upgrade offering
    ``subprotocols``), all within ``settings.open_timeout``, and start the watching thread.

    Raises what websockets' ``connect`` raises for the same failures (``InvalidURI``,
    ``InvalidStatus``, ``InvalidHandshake``, ``TimeoutError``, ``OSError``...), which
    :func:`tether.websocket.handshake_error` turns into Tether errors."""
    ws_uri = parse_uri(url)
    if not ws_uri.secure and ssl_context is not None:
        raise ValueError("ssl= is for wss:// URLs, not ws://")
    deadline = Deadline(settings.open_timeout)
    sock = settings.sock
    if sock is None:
        sock = socket.create_connection((ws_uri.host, ws_uri.port), timeout=deadline.left())
    try:
        _no_delay(sock)
        tls = None
        if ws_uri.secure:
            context = ssl_context if ssl_context is not None else ssl.create_default_context()
            tls = MemoryTLS(context, False, settings.server_hostname or ws_uri.host)
            tls.handshake(sock, deadline)
        origin = None if settings.origin is None else Origin(settings.origin)
        protocol = ClientProtocol(ws_uri, origin=origin, subprotocols=subprotocols, max_size=settings.max_size,
                                  logger=settings.logger)  # fmt: skip
        connection = PushingClientConnection(sock, protocol, tls, settings)
        connection._handshake(settings, deadline)
        connection._opened()
    except BaseException:
        sock.close()
        raise
    connection.start()
    return connection


def accept_connection(sock: socket.socket, *, ssl_context: ssl.SSLContext | None, settings: Settings,
                      subprotocols: Sequence[Subprotocol] | None = None,
                      select_subprotocol: Callable[[Any, Sequence[Subprotocol]], Subprotocol | None] | None = None,
                      ) -> PushingServerConnection | None:  # fmt: skip
    """Answer the WebSocket upgrade on ``sock`` (a socket a server accepted): TLS with
    ``ssl_context``, then the HTTP handshake, within ``settings.open_timeout``. Returns the
    open connection, whose receiving loop the calling thread then runs (``run()``), or None
    when the request was not a WebSocket upgrade (it was answered with an HTTP error and the
    socket is closed). Raises on a network failure or a timeout (the socket is closed)."""
    deadline = Deadline(settings.open_timeout)
    connection: PushingServerConnection | None = None
    try:
        _no_delay(sock)
        tls = None
        if ssl_context is not None:
            tls = MemoryTLS(ssl_context, True)
            tls.handshake(sock, deadline)
        protocol = ServerProtocol(subprotocols=subprotocols, select_subprotocol=select_subprotocol,
                                  max_size=settings.max_size, logger=settings.logger)  # fmt: skip
        connection = PushingServerConnection(sock, protocol, tls, settings)
        if not connection._handshake(settings, deadline):
            connection._drop()
            return None
        connection._opened()
    except BaseException:
        if connection is not None:
            connection._drop()
        else:
            sock.close()
        raise
    connection._receiver = threading.get_ident()  # the accepting thread reads it from now on
    return connection
