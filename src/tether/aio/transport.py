"""The async face's transport: a WebSocket connection as an ``asyncio.Protocol`` driving
websockets' sans-I/O protocol (``websockets.client.ClientProtocol``,
``websockets.server.ServerProtocol``), that pushes each message to its session
(:class:`~tether.transports.AsyncPushTransport`).

- **Receiving**: ``data_received`` feeds the protocol and hands each whole message to
  ``on_message`` right there, on the loop's thread: no reader task, no queue, no future per
  message. Messages that arrive before ``attach`` are kept and handed over first (past 1 MiB
  of them, the connection stops reading until ``attach``: a server's root factory may take
  its time while a client floods).
- **Sending**: :meth:`Connection.send_nowait` frames the message and writes it to the asyncio
  transport at once (no task, no await); :meth:`Connection.send` does the same, then waits
  while the write buffer is above its high-water mark (``write_limit``). What the protocol
  answers on its own (pongs, the echo of a close frame) is written as it is received.
- **Backpressure**: the asyncio transport tells us when its write buffer goes over the
  high-water mark (``pause_writing``) and back under the low-water mark (``resume_writing``).
  While it holds more than ``pause_reading_above`` bytes, the connection stops reading from the
  peer (``pause_reading``), so a peer that sends calls but never reads the answers cannot make
  this side buffer without bound; it reads again once the buffer has drained.
- **Keepalive**, a loop timer (no task): after ``ping_interval`` seconds without a byte from the
  peer, a ping; no pong ``ping_timeout`` seconds later: close with 1011 "keepalive ping timeout"
  and drop the connection.
- **Closing**: :meth:`Connection.close` sends the close frame and waits for the peer's; a timer
  drops the connection when the closing handshake takes more than ``close_timeout``.
  ``on_closed`` is called once, from ``connection_lost``.
- **TLS** is asyncio's (``ssl=`` of ``create_connection`` / ``create_server``).

:func:`tether.aio.client.open_connection` opens a client connection;
:func:`tether.aio.server.listen` starts a server whose opened connections are handed to a
callback; both with the settings of ``tether.aio.settings`` (the ``transport=`` option).

On CPython, mypyc compiles this module (``pyproject.toml``'s ``[tool.tether.build] compiled``);
this file stays the reference and what other Pythons run. So it stays strictly typed (a compiled
module checks its annotations at run time: ``awaits_answers`` may return any truthy value), its
classes are subclassed only here, and its module constants are ``Final``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any, Final

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from websockets.frames import OK_CLOSE_CODES, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol

from ..framing import FastFrames, handshake_ended_cleanly
from ..session import describe_keepalive_timeout, describe_peer_close
from ..transports import OnClosed, OnMessage
from ..websocket import WebSocketDetails
from .settings import Settings

__all__ = ["KEEPALIVE_TIMEOUT_REASON", "ClientConnection", "Connection", "ServerConnection"]

log: Final = logging.getLogger("tether")

KEEPALIVE_TIMEOUT_REASON: Final = "keepalive ping timeout"
"""The reason of the close frame (1011) sent to a peer that stopped answering pings."""

# (Final: compiled, these are constants, not module lookups)
_OPEN: Final = State.OPEN
_CLOSED: Final = State.CLOSED
_CONNECTING: Final = State.CONNECTING
_PONG: Final = Opcode.PONG
_DROPPED: Final = "the connection dropped without a closing handshake"
_MAX_EARLY: Final = 2**20  # bytes of messages kept before attach; past it (after that read) reading waits


def _no_delay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        except OSError:
            pass


class Connection(WebSocketDetails, asyncio.Protocol):
    """One WebSocket connection on the event loop (see the module docstring).

    :class:`ClientConnection` and :class:`ServerConnection` are its two sides. ``send``,
    ``close`` and ``attach`` are the :class:`~tether.transports.AsyncPushTransport` contract,
    with its optional ``send_nowait`` and ``wait_closed``; ``writing_paused`` and :meth:`drain`
    tell a session when the peer does not keep up; ``close_code``/``close_reason`` are
    :class:`~tether.transports.CloseDetails`. ``state``, ``subprotocol``, ``request``,
    ``response``, ``remote_address`` and ``local_address`` mean what they mean on a
    ``websockets`` connection; ``close_timeout`` (seconds, writable) bounds the closing handshake.
    Every method runs on the loop's thread.
    """

    def __init__(self, protocol: Protocol, settings: Settings) -> None:
        self.protocol = protocol
        self.loop = asyncio.get_running_loop()
        # Frames the common case itself, websockets the rest (tether.framing); from the end of
        # the opening handshake on, if nothing came after the HTTP message.
        self._frames = FastFrames(protocol, settings.max_size, enabled=False)
        self._max_size = settings.max_size
        self._handshake_data: bytearray | None = bytearray()
        self.ping_interval = settings.ping_interval
        self.ping_timeout = settings.ping_timeout
        self.close_timeout = settings.close_timeout
        self._high, self._low = settings.write_limits()
        self._bound = settings.pause_reading_above
        self.transport: asyncio.Transport | None = None
        self.request: Request | None = None
        self.response: Response | None = None
        self.remote_address: Any = None
        self.local_address: Any = None
        self.writing_paused = False
        self.reading_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._batch: list[bytes] | None = None  # what send_nowait wrote while data_received runs
        self._on_message: OnMessage | None = None
        self._on_closed: OnClosed | None = None
        self._early: list[bytes | str] = []  # messages received before attach
        self._early_size = 0
        self._holding_early = False  # reading paused because _early is full
        self._ended = False
        self._opening: asyncio.Future[None] | None = self.loop.create_future()  # None once open
        self._lost: asyncio.Future[None] = self.loop.create_future()
        self._heard = False  # a byte came since the keepalive timer last looked
        self._ping: bytes | None = None  # the keepalive ping waiting for its pong
        self._keepalive: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._failure: BaseException | None = None
        # Set by the session: whether it waits for answers from the peer (then the connection
        # reads on whatever it buffers: those answers may be what the peer is sending).
        self.awaits_answers: Callable[[], object] | None = None  # (truthy: it does)

    # -- asyncio's callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(self._high, self._low)  # type: ignore[attr-defined]
        self.remote_address = transport.get_extra_info("peername")
        self.local_address = transport.get_extra_info("sockname")
        _no_delay(transport)

    def data_received(self, data: bytes) -> None:
        self._heard = True
        protocol = self.protocol
        if self._opening is None:
            events = self._frames.receive(data)
        else:
            if self._handshake_data is not None:
                self._handshake_data += data
            protocol.receive_data(data)
            events = protocol.events_received()
        if protocol.writes:
            self._write_out()
        if self._opening is not None:
            events = self._handshake_events(events)
            if self._opening is None and self._handshake_data is not None:  # opened just now
                clean = handshake_ended_cleanly(self._handshake_data) and not events
                self._frames = FastFrames(protocol, self._max_size, enabled=clean)
                self._handshake_data = None
                events = self._frames.messages(events)
        if len(events) > 1:  # what the session writes meanwhile goes out in one write
            self._batch = []
            try:
                self._process(events)
            finally:
                self._write_batch()
        elif events:
            self._process(events)

    def _write_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch and self.transport is not None:
            self.transport.write(b"".join(batch))
            if self.writing_paused:
                self._check_bound()

    def eof_received(self) -> bool | None:
        protocol = self.protocol
        opening = self._opening is not None
        if opening:  # (an HTTP answer may end with the stream: its events are the handshake's)
            protocol.receive_eof()
            events = protocol.events_received()
        else:
            events = self._frames.receive_eof()  # (what it holds of a frame first)
        self._write_out()
        if opening:
            events = self._frames.messages(self._handshake_events(events))
        if events:
            self._process(events)
        return None  # the transport closes itself: after a WebSocket's EOF nothing more is written

    def connection_lost(self, exc: Exception | None) -> None:
        protocol = self.protocol
        self._frames.receive_eof()  # idempotent: the state is CLOSED from here
        protocol.data_to_send()
        if exc is not None and self._failure is None:
            self._failure = exc
        for timer in (self._keepalive, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._keepalive = self._close_timer = None
        opening = self._opening
        if opening is not None and not opening.done():
            opening.set_exception(self._handshake_failure())
            opening.exception()  # retrieved: the opener may have given up already
        self._lost.set_result(None)
        self.writing_paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._ended = True
        on_closed, self._on_closed = self._on_closed, None
        self._on_message = None
        if on_closed is not None:
            on_closed(self._describe_end())

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._check_bound()

    def resume_writing(self) -> None:
        self.writing_paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            if not self._holding_early:
                self.transport.resume_reading()

    def _check_bound(self) -> None:
        """Stop reading from the peer while more than ``pause_reading_above`` bytes wait to be
        sent (``resume_writing`` reads again, at the low-water mark), unless the session waits
        for answers from that peer: a peer that does not read because it is busy sending us
        answers must not be made to wait for us in turn (both would stop for good)."""
        transport = self.transport
        if (not self.reading_paused and transport is not None and not transport.is_closing()
                and transport.get_write_buffer_size() > self._bound
                and (self.awaits_answers is None or not self.awaits_answers())):  # fmt: skip
            self.reading_paused = True
            if not self._holding_early:
                transport.pause_reading()

    # -- receiving -----------------------------------------------------------------------------

    def attach(self, on_message: OnMessage, on_closed: OnClosed) -> None:
        """Hand every message to ``on_message`` from now on (those received before first, in
        order) and the end to ``on_closed`` (at once if the connection has ended already)."""
        early, self._early, self._early_size = self._early, [], 0
        for data in early:
            on_message(data)
        if self._ended:
            on_closed(self._describe_end())
            return
        self._on_message = on_message
        self._on_closed = on_closed
        if self._holding_early:  # read again (unless the write buffer says otherwise)
            self._holding_early = False
            if not self.reading_paused and self.transport is not None:
                self.transport.resume_reading()

    def _process(self, events: Sequence[Any]) -> None:
        """Hand on what ``tether.framing`` made of what arrived: messages, and pongs."""
        for item in events:
            kind = type(item)
            if kind is bytes or kind is str:
                handler = self._on_message
                if handler is not None:
                    handler(item)  # (what _deliver does, without a call per message)
                else:
                    self._deliver(item)
            elif item.opcode is _PONG:
                if self._ping is not None and bytes(item.data) == self._ping:
                    self._ping = None
                    self._schedule_keepalive(self.ping_interval)
        if self.protocol.state is not _OPEN:
            self._expect_close()

    def _deliver(self, data: bytes | str) -> None:
        handler = self._on_message
        if handler is None:
            if not self._ended:
                self._early.append(data)
                self._early_size += len(data)
                if self._early_size > _MAX_EARLY and not self._holding_early and self.transport is not None:
                    self._holding_early = True  # nobody takes them yet: stop reading until attach
                    if not self.reading_paused:
                        self.transport.pause_reading()
            return
        handler(data)

    # -- sending -------------------------------------------------------------------------------

    def send_nowait(self, data: bytes) -> None:
        """Send ``data`` as one binary message now: written to the socket, or to the asyncio
        transport's buffer. Raises ``ConnectionClosed`` once the connection is closing."""
        protocol = self.protocol
        if protocol.state is not _OPEN:
            raise self._closed_error()
        frame = self._frames.frame(data)
        batch = self._batch
        if batch is not None:  # (in data_received: written once it has handed every message on)
            if protocol.writes:
                batch += protocol.data_to_send()
            batch.append(frame)
            return
        write = self.transport.write  # type: ignore[union-attr]
        if protocol.writes:  # what websockets queued itself (a pong) goes first
            for chunk in protocol.data_to_send():
                write(chunk)
        write(frame)
        if self.writing_paused:
            self._check_bound()

    async def send(self, data: bytes) -> None:
        """Send ``data`` as one binary message (written before the first suspension), then wait
        while the write buffer is over its high-water mark."""
        if self.protocol.state is not _OPEN:
            await self._wait_lost()
            raise self._closed_error()
        self.send_nowait(data)
        if self.writing_paused:
            await self.drain()

    async def send_text(self, text: str) -> None:
        """Send ``text`` as one text message (Tether never does: for tests and tools)."""
        if self.protocol.state is not _OPEN:
            await self._wait_lost()
            raise self._closed_error()
        self.protocol.send_text(text.encode())
        self._write_out()

    async def drain(self) -> None:
        """Wait until the write buffer is back under its low-water mark (at once if it is not
        over the high-water mark, or once the connection is lost)."""
        if not self.writing_paused or self._lost.done():
            return
        waiter = self.loop.create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            self._drain_waiters.remove(waiter)

    def _write_out(self) -> None:
        """Write what the protocol has to send (``b""``: end the stream)."""
        transport = self.transport
        if transport is None:
            return
        if self._batch:
            self._write_batch()  # what was sent before, first
        for chunk in self.protocol.data_to_send():
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():
                try:
                    transport.write_eof()
                except Exception:  # (OSError, or a RuntimeError from some loops)
                    transport.close()
            else:
                transport.close()  # TLS: no half-close
        if self.writing_paused:
            self._check_bound()
        if self.protocol.close_expected():
            self._expect_close()

    def _closed_error(self) -> ConnectionClosed:
        protocol = self.protocol
        rcvd, sent = protocol.close_rcvd, protocol.close_sent
        ok = rcvd is not None and sent is not None and rcvd.code in OK_CLOSE_CODES and sent.code in OK_CLOSE_CODES
        error = (ConnectionClosedOK if ok else ConnectionClosedError)(rcvd, sent, protocol.close_rcvd_then_sent)
        error.__cause__ = self._failure
        return error

    # -- keepalive -----------------------------------------------------------------------------

    def _schedule_keepalive(self, delay: float | None) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        if delay is not None and not self._ended:
            self._keepalive = self.loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        """The keepalive timer: ping a peer silent for ``ping_interval``, give up on one that
        did not answer a ping within ``ping_timeout``."""
        self._keepalive = None
        if self.protocol.state is not _OPEN:
            return
        if self._ping is not None:  # no pong within ping_timeout
            self._failure = TimeoutError(KEEPALIVE_TIMEOUT_REASON)
            self.protocol.fail(1011, KEEPALIVE_TIMEOUT_REASON)
            self._write_out()
            self.abort()
            return
        if self._heard:
            self._heard = False
            self._schedule_keepalive(self.ping_interval)
            return
        payload = os.urandom(4)
        self.protocol.send_ping(payload)
        self._write_out()
        if self.ping_timeout is None:
            self._schedule_keepalive(self.ping_interval)
        else:
            self._ping = payload
            self._schedule_keepalive(self.ping_timeout)

    # -- closing -------------------------------------------------------------------------------

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake with ``code`` and ``reason`` and wait until the
        connection is closed (at most ``close_timeout`` seconds, then it is dropped).
        Idempotent."""
        if self.protocol.state is _OPEN:
            self.protocol.send_close(code, reason)
            self._write_out()
        elif self.transport is not None and self._opening is not None and not self._lost.done():
            self.abort()  # not open yet: nothing to say to the peer
        await self._wait_lost()

    async def wait_closed(self, timeout: float | None = None) -> None:
        """Wait until the connection is closed (at most ``timeout`` seconds, if given)."""
        if timeout is None:
            await asyncio.shield(self._lost)
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._lost), timeout)
        except TimeoutError:
            pass

    async def _wait_lost(self) -> None:
        if not self._lost.done():
            self._expect_close()
            await asyncio.shield(self._lost)

    def abort(self) -> None:
        """Drop the connection now, without a closing handshake (``on_closed`` follows)."""
        if self.transport is not None:
            self.transport.abort()

    def _expect_close(self) -> None:
        """The connection should end soon: drop it if it has not ``close_timeout`` from now."""
        if self._close_timer is None and not self._lost.done() and self.close_timeout is not None:
            self._close_timer = self.loop.call_later(self.close_timeout, self._close_timed_out)

    def _close_timed_out(self) -> None:
        self._close_timer = None
        if self._failure is None:
            self._failure = TimeoutError("timed out while closing the connection")
        self.abort()

    def _describe_end(self) -> str:
        """Why the connection ended, for people (the session's reason it was lost)."""
        protocol = self.protocol
        rcvd, sent = protocol.close_rcvd, protocol.close_sent
        if rcvd is not None:
            return describe_peer_close(rcvd.code, rcvd.reason)
        if sent is not None and sent.reason == KEEPALIVE_TIMEOUT_REASON:
            return describe_keepalive_timeout(self.ping_interval)
        return _DROPPED

    # -- the opening handshake -----------------------------------------------------------------

    def _handshake_events(self, events: list[Any]) -> list[Any]:
        """Events during the opening handshake; returns the frames that came after it."""
        raise NotImplementedError

    def _handshake_failure(self) -> BaseException:
        exc: BaseException | None = self.protocol.handshake_exc  # (typed here: the build may not have websockets)
        if exc is not None:
            return exc
        if self._failure is not None:
            return self._failure
        return EOFError("the connection closed during the opening handshake")

    def _opened(self) -> None:
        """The handshake is done: keepalive starts."""
        opening, self._opening = self._opening, None
        if opening is not None and not opening.done():
            opening.set_result(None)
        self._schedule_keepalive(self.ping_interval)


class ClientConnection(Connection):
    """The client side, opened by :func:`open_connection`."""

    protocol: ClientProtocol

    def __init__(self, protocol: ClientProtocol, settings: Settings) -> None:
        super().__init__(protocol, settings)
        self._settings = settings

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        settings = self._settings
        request = self.protocol.connect()
        if settings.additional_headers is not None:
            request.headers.update(settings.additional_headers)
        if settings.user_agent_header is not None:
            request.headers.setdefault("User-Agent", settings.user_agent_header)
        self.request = request
        self.protocol.send_request(request)
        self._write_out()

    def _handshake_events(self, events: list[Any]) -> list[Any]:
        opening = self._opening
        assert opening is not None
        if events and isinstance(events[0], Response):
            self.response = events[0]
            events = events[1:]
        exc = self.protocol.handshake_exc
        if exc is not None:
            if not opening.done():
                opening.set_exception(exc)
            self.abort()
            return []
        if self.response is None:
            return []
        self._opened()
        return events


class ServerConnection(Connection):
    """The server side: made by the server that :func:`listen` starts for each accepted
    connection; ``on_open(connection)`` is called once its handshake has succeeded."""

    protocol: ServerProtocol

    def __init__(self, protocol: ServerProtocol, settings: Settings, on_open: Callable[[ServerConnection], None]) -> None:
        super().__init__(protocol, settings)
        self._settings = settings
        self._on_open = on_open
        self._open_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._settings.open_timeout is not None:
            self._open_timer = self.loop.call_later(self._settings.open_timeout, self._open_timed_out)

    def _open_timed_out(self) -> None:
        self._open_timer = None
        if self._opening is not None:
            self._failure = TimeoutError("timed out during the opening handshake")
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        super().connection_lost(exc)

    def _handshake_events(self, events: list[Any]) -> list[Any]:
        protocol = self.protocol
        for index, event in enumerate(events):
            if isinstance(event, Request):
                self.request = event
                response = protocol.accept(event)
                if self._settings.server_header is not None:
                    response.headers["Server"] = self._settings.server_header
                self.response = response
                protocol.send_response(response)
                self._write_out()
                if response.status_code != 101:  # answered with an HTTP error: the protocol ends it
                    self._close_after_refusal()
                    return []
                if self._open_timer is not None:
                    self._open_timer.cancel()
                    self._open_timer = None
                self._opened()
                self._on_open(self)
                return events[index + 1 :]
        if protocol.handshake_exc is not None:  # not HTTP: the protocol answered and ends it
            self._close_after_refusal()
        return []

    def _close_after_refusal(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()  # (after what was written: the error response)
