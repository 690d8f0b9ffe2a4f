"""One ASGI WebSocket connection as a Tether :class:`~tether.transports.AsyncTransport`.

:class:`ASGITransport` wraps the ``receive`` and ``send`` callables an ASGI server hands the
application for a ``websocket`` scope, once the application has accepted the connection
(``websocket.accept``). :func:`tether.asgi.app` makes one per admitted connection and gives
it to the asyncio session; write your own ASGI endpoint with it only if the app does not fit:
accept the connection, then ``await tether.aio.session.serve_connection(ASGITransport(receive,
send), root, url, peers, options)``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, NoReturn

from ..aio.stepping import send_now
from ..exceptions import ConnectionLost
from ..protocol import DEFAULT_MAX_FRAME_SIZE
from ..session import describe_peer_close
from ..transports import fit_close_reason

__all__ = ["CLOSE_MESSAGE_TOO_BIG", "ASGIReceive", "ASGISend", "ASGITransport", "Message"]

Message = MutableMapping[str, Any]
"""An ASGI event (a dict with a ``type``)."""
ASGIReceive = Callable[[], Awaitable[Message]]
ASGISend = Callable[[Message], Awaitable[None]]

CLOSE_MESSAGE_TOO_BIG = 1009


class ASGITransport:
    """The asyncio runtime's transport over an accepted ASGI WebSocket (``receive``/``send``).

    - ``send`` sends ``websocket.send`` events in the order the sends were started, whatever
      the server does inside its ``send`` (uvicorn may wait for its buffer to drain before it
      writes): one send writes at a time, later ones queue in order behind it. A send whose
      task is cancelled while queued still goes out.
    - ``recv`` returns ``bytes`` for a binary message and ``str`` for a text one (the session
      then closes with 1002). A binary message longer than ``max_frame_size`` closes the
      connection with 1009, as the ``websockets`` transports do: the ASGI server has already
      read it, up to its own limit (uvicorn's ``--ws-max-size``, 16 MiB by default, which
      refuses larger messages with 1009 itself). Keep the two equal.
    - ``close`` sends ``websocket.close`` after the sends started before it; it returns without
      waiting for the peer's answer (the ASGI server completes the closing handshake), and
      ``recv`` ends as soon as the server reports ``websocket.disconnect`` (uvicorn does at
      once; other servers when the handshake ends or their own close timeout passes).
    - ``close_code``/``close_reason`` (:class:`~tether.transports.CloseDetails`): ``None`` while
      open; then the peer's code and reason, or this side's when it closed first.
    - ``writing_paused`` and ``drain()``: whether a write is under way that the server has not
      finished (uvicorn waits for its buffer to drain: the peer reads slowly, or not at all),
      and a wait until none is. The session reads no further message from the peer meanwhile
      (unless it waits for that peer's answers), so a peer that does not read cannot make this
      side hold answers without bound.
    """

    def __init__(
        self, receive: ASGIReceive, send: ASGISend, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    ) -> None:
        self._receive = receive
        self._send = send
        self._max = max_frame_size
        self._queue: deque[tuple[Message, asyncio.Future[None]]] = deque()
        self._writing = False
        self._drainer: asyncio.Task[None] | None = None
        self._idle: list[asyncio.Future[None]] = []  # drain()s waiting for the writer to be free
        self._finishing: set[asyncio.Task[None]] = set()  # send_nowait()s that wait for the server
        self._closing = False  # close() was called: no more sends
        self._gone: str | None = None  # the server said the connection is over (why): no more writes
        self._ended: str | None = None  # recv has ended (why): it raises this again at once
        self.close_code: int | None = None
        self.close_reason: str | None = None

    # -- sending ---------------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        if self._closing or self._gone is not None:
            raise ConnectionLost(self._lost_text())
        await self._write_in_order({"type": "websocket.send", "bytes": data})

    def send_nowait(self, data: bytes) -> None:
        """:meth:`send`, its first step taken now (on the loop's thread): the message is written,
        or queued in order behind a write under way; the rest of a send that waits (for the
        server's buffer) goes on in a task. Raises ConnectionLost once closed."""
        send_now(self.send(data), self._finishing)

    async def _write_in_order(self, message: Message) -> None:
        if self._writing:  # another write is under way: queue behind it, in order
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._queue.append((message, waiter))
            await waiter
            return
        self._writing = True
        try:
            await self._write(message)
        finally:
            self._hand_over()

    def _hand_over(self) -> None:
        """After a write: let a task write what queued meanwhile, or mark the writer free."""
        if self._queue:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        else:
            self._free()

    def _free(self) -> None:
        """No write is under way any more: wake the drain()s."""
        self._writing = False
        idle, self._idle = self._idle, []
        for waiter in idle:
            if not waiter.done():
                waiter.set_result(None)

    @property
    def writing_paused(self) -> bool:
        """Whether a write is under way that the server has not finished (or writes queue
        behind one): the peer reads slowly, or not at all."""
        return self._writing

    async def drain(self) -> None:
        """Wait until no write is under way (see :attr:`writing_paused`)."""
        while self._writing:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            await waiter

    async def _drain(self) -> None:
        try:
            while self._queue:
                message, waiter = self._queue.popleft()
                try:
                    await self._write(message)
                except Exception as exc:
                    if not waiter.done():
                        waiter.set_exception(exc)
                else:
                    if not waiter.done():
                        waiter.set_result(None)
        finally:
            while self._queue:  # cancelled (the loop is closing): fail what is left
                _, waiter = self._queue.popleft()
                if not waiter.done():
                    waiter.set_exception(ConnectionLost(self._lost_text()))
            self._drainer = None
            self._free()

    async def _write(self, message: Message) -> None:
        closing = message["type"] == "websocket.close"
        if self._gone is not None:
            if closing:
                return
            raise ConnectionLost(self._lost_text())
        try:
            await self._send(message)
        except Exception as exc:  # the server's: uvicorn's ClientDisconnected, a RuntimeError...
            if self._gone is None:
                self._gone = f"the connection was lost ({_describe(exc)})"
            if not closing:
                raise ConnectionLost(self._lost_text()) from exc

    # -- receiving -------------------------------------------------------------------------

    async def recv(self) -> bytes | str:
        if self._ended is not None:
            raise ConnectionLost(self._ended)
        message = await self._receive()
        kind = message.get("type")
        if kind == "websocket.receive":
            data = message.get("bytes")
            if data is not None:
                if len(data) > self._max:
                    await self._give_up(
                        CLOSE_MESSAGE_TOO_BIG,
                        "message too big",
                        f"message too big ({len(data)} bytes; max_frame_size is {self._max})",
                    )
                return data if type(data) is bytes else bytes(data)
            text = message.get("text")
            if isinstance(text, str):
                if len(text) > self._max:
                    await self._give_up(
                        CLOSE_MESSAGE_TOO_BIG,
                        "message too big",
                        f"message too big ({len(text)} characters; max_frame_size is {self._max})",
                    )
                return text
            await self._give_up(
                1011, "", "the ASGI server sent a websocket.receive event with neither bytes nor text"
            )
        if kind == "websocket.disconnect":
            code = message.get("code", 1005)
            reason = message.get("reason") or ""
            if self.close_code is None:
                self.close_code, self.close_reason = code, reason
            self._gone = self._ended = (
                "closed by this side" if self._closing else describe_peer_close(code, reason)
            )
            raise ConnectionLost(self._ended)
        await self._give_up(1011, "", f"the ASGI server sent {kind!r} on a WebSocket")

    async def _give_up(self, code: int, reason: str, why: str) -> NoReturn:
        """Close with ``code`` and end ``recv`` saying ``why``."""
        await self.close(code, reason)
        self._ended = f"{why}: closed with {code}"
        raise ConnectionLost(self._ended)

    # -- closing ---------------------------------------------------------------------------

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closing:
            return
        self._closing = True
        if self._gone is not None:
            return  # the server already said the connection is over
        reason = fit_close_reason(reason)
        self.close_code, self.close_reason = code, reason
        try:
            await self._write_in_order({"type": "websocket.close", "code": code, "reason": reason})
        except Exception:
            pass  # lost meanwhile: closed all the same

    def _lost_text(self) -> str:
        if self._ended is not None:
            return self._ended
        if self._gone is not None:
            return self._gone
        return "closed by this side" + (f" (code {self.close_code})" if self.close_code is not None else "")

    def __repr__(self) -> str:
        state = "open" if not self._closing and self._gone is None else f"closed ({self._lost_text()})"
        return f"<tether.asgi.ASGITransport {state}>"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
