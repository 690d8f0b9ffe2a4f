"""What a session needs of a transport: the contracts, as :class:`typing.Protocol` classes.

A transport carries one WebSocket-like connection: whole messages, binary (``bytes``) or text
(``str``), in order, and a closing handshake with a code and a reason. Tether ships these:

- :class:`Transport`: ``tether.testing.MemoryTransport``; plain ``websockets.sync``
  connections (``tether.sync.session.open_session`` on one).
- :class:`PushTransport`: ``tether.sync.transport.PushingClientConnection`` and
  ``PushingServerConnection`` (what ``tether.connect`` and ``tether.serve`` use).
- :class:`AsyncTransport`: ``tether.testing.AsyncMemoryTransport``; plain ``websockets.asyncio``
  connections; ``tether.web.WebSocketTransport`` (aiohttp, the ``/ws`` endpoint of
  ``tether.web.serve_web``); ``tether.asgi.ASGITransport`` (an ASGI server's WebSocket, the
  endpoint of ``tether.asgi.app``).
- :class:`AsyncPushTransport`: ``tether.aio.transport``'s ``ClientConnection`` and
  ``ServerConnection`` (what ``tether.aio.connect`` and ``tether.aio.serve`` use);
  ``tether.browser.BrowserTransport`` (a page's WebSocket).

A threading :class:`~tether.sync.session.Session` takes a :class:`Transport` or a
:class:`PushTransport` (it calls ``attach`` when there is one, and then never ``recv``); an
:class:`~tether.aio.session.AsyncSession` takes an :class:`AsyncTransport` or an
:class:`AsyncPushTransport` (a page's ``BrowserSession`` is one). :class:`CloseDetails` is what a
transport may tell about how its connection closed. The sync and async contracts have the same
method names: ``isinstance`` (these protocols are runtime-checkable) tells only that the
methods exist, not whether they are coroutine functions, nor anything of the behaviour each
docstring asks for; ``tests/transports/test_conformance.py`` checks that behaviour on every
transport above but the browser's (which needs Chromium: ``tests/browser`` exercises it).

When a transport fails an operation because the connection is closed, it raises an
``Exception``: :class:`~tether.exceptions.ConnectionLost` for tether's own transports, or
``websockets.exceptions.ConnectionClosed`` for ``websockets``' connections (the sessions
describe a close from its ``rcvd``/``sent`` close frames when it has them). The sessions catch
``Exception`` there; an exception that is not one (``BaseException`` only) is not caught.

Standard library only: this module is part of the sans-I/O core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = [
    "MAX_CLOSE_REASON",
    "AsyncPushTransport",
    "AsyncTransport",
    "CloseDetails",
    "OnClosed",
    "OnMessage",
    "PushTransport",
    "Transport",
    "fit_close_reason",
]

MAX_CLOSE_REASON = 123
"""Bytes of UTF-8 a WebSocket close frame carries as its reason."""


def fit_close_reason(reason: str) -> str:
    """``reason`` cut to what a close frame carries (123 bytes of UTF-8), at a character
    boundary. A session passes every reason through this before :meth:`Transport.close`."""
    data = reason.encode("utf-8")
    if len(data) <= MAX_CLOSE_REASON:
        return reason
    return data[:MAX_CLOSE_REASON].decode("utf-8", "ignore")

OnMessage = Callable[[bytes | str], None]
"""What a push transport calls with each message (see :meth:`PushTransport.attach`)."""

OnClosed = Callable[[str], None]
"""What a push transport calls, once, with a description of why its connection ended."""


@runtime_checkable
class Transport(Protocol):
    """A blocking transport, for the threading runtime (``tether.sync.session.Session``).

    The session reads with :meth:`recv` in a reader thread of its own, sends from many threads
    and closes from any thread. A ``websockets.sync`` connection is one, and so are the ends
    of :func:`tether.testing.memory_pair`.

    Optionally, a transport whose :meth:`close` waits for the peer's closing handshake may have
    a writable ``close_timeout`` attribute (seconds): the session sets it to 0.2 before closing
    when the interpreter exits, so that the process does not wait long for a stalled peer.
    """

    def send(self, data: bytes) -> None:
        """Send ``data`` as one binary message.

        - The peer receives it whole (never split or merged with another message, whatever
          its size; an empty ``bytes`` is a message too), and messages from one thread arrive
          in the order they were sent.
        - Thread-safe: called from worker threads, callers' threads and (on a
          :class:`PushTransport`) from inside ``on_message``, while :meth:`recv` blocks in the
          reader thread and while another thread calls :meth:`close`. The session sends one
          frame at a time (under its own lock), but a transport shared by other code must
          not interleave two messages.
        - May block for back-pressure, but not for ever once the connection closes.
        - Once the connection is closed (this side called :meth:`close`, or :meth:`recv`
          raised because it ended), raises an ``Exception`` (see the module docstring:
          ``ConnectionLost``, or ``websockets``' ``ConnectionClosed``). It must never return
          as though it had sent: the session fails the call whose frame it was.
        """
        ...

    def recv(self) -> bytes | str:
        """Block until the next message arrives and return it: ``bytes`` for a binary message,
        ``str`` for a text message.

        - Whole messages, in the order the peer sent them. Never decode a binary message nor
          encode a text one: the session closes the connection with a protocol error (1002)
          when it gets ``str``, since Tether frames are binary.
        - One thread calls it at a time (the session's reader thread).
        - Messages that arrived before the connection closed are returned first, in order.
          Then, once the connection is closed, by either side or by a failure, it raises an
          ``Exception`` (``ConnectionLost``, ``ConnectionClosed``), and so does every later
          call, without blocking. It never returns ``None`` or ``b""`` to mean the end
          (``b""`` is an empty message).
        - It must return (raise) within a bounded time after :meth:`close` is called on this
          side from another thread, and after the peer closes: the session's reader thread is
          blocked in it when the session closes.
        """
        ...

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with this WebSocket close ``code`` and ``reason``.

        - The session calls it as ``close()`` (a normal close, 1000) or positionally as
          ``close(code, reason)``: 1001 when a server shuts down, 1002 for a protocol error,
          application codes 4000-4999.
        - ``reason`` fits a WebSocket close frame (at most 123 bytes of UTF-8): the session
          passes every reason through :func:`fit_close_reason` first. (``websockets`` raises
          instead of closing for a longer one, which would leave the connection open.)
        - Idempotent: closing a transport that is already closed (by this side, by the peer
          or by a failure) does nothing and does not raise.
        - Callable from any thread, while :meth:`recv` blocks in another: that :meth:`recv`
          raises soon after, and so does the peer's once it has read the messages sent
          before. A transport that can carry them tells the peer ``code`` and ``reason``.
        - May block until the peer answers the closing handshake, for a bounded time
          (``websockets``: ``close_timeout``, 10 s by default). The session never calls it
          from the thread that delivers messages (a :class:`PushTransport`'s
          ``on_message``), since that thread reads the peer's answer.
        - :meth:`send` raises once it has returned.
        """
        ...


@runtime_checkable
class PushTransport(Protocol):
    """A blocking transport that pushes each message to the session from its own receiving
    thread instead of having a reader thread call ``recv`` (one thread hop less per message).

    ``tether.sync.transport``'s ``PushingClientConnection`` and ``PushingServerConnection``
    (what ``tether.connect`` and ``tether.serve`` use) are push transports. :meth:`send` and
    :meth:`close` are as in :class:`Transport` (``close_timeout`` too). There is no ``recv`` in this contract: once
    ``attach`` is called the session never calls it (those connections have the ``recv`` of
    ``websockets``, but it delivers no message: they keep messages for ``attach``).

    Two optional methods let the session save the remaining hops (``tether.sync.reading``
    has them): ``run_here(fn, *args) -> bool``, called from ``on_message``, runs ``fn`` on the
    thread that delivered the message once another thread reads on (False: the session starts
    it on a worker); ``read_here(timeout, stop, wake) -> bool`` lets a caller waiting for an
    answer read the connection itself when nobody else does. A third, ``send_many(messages)``,
    sends several messages, in order, in one write (``tether.sync.transport`` has it): the
    session's flush uses it when more than one frame is queued.
    """

    def send(self, data: bytes) -> None:
        """As :meth:`Transport.send`; it is also called from inside ``on_message`` (the session
        answers some frames at once), so ``on_message`` must not be called while holding a lock
        that ``send`` needs."""
        ...

    def close(self, code: int = 1000, reason: str = "") -> None:
        """As :meth:`Transport.close`. After it returns (or the connection ends otherwise),
        ``on_closed`` is called (see :meth:`attach`)."""
        ...

    def attach(self, on_message: OnMessage, on_closed: OnClosed) -> None:
        """From now on, hand every message to ``on_message`` and the end to ``on_closed``.

        The session calls it once, first thing (before it sends its opening frame).

        - ``on_message(data)``: each message, whole, ``bytes`` for binary and ``str`` for
          text, in the order the peer sent them, called from the thread that reads the
          connection, one call at a time (never two at once). Messages that arrived before
          ``attach`` are kept and handed over first, in order (possibly from ``attach``
          itself, before it returns), before any later message.
        - ``on_closed(reason)``: called once, after the last ``on_message``, when the
          connection ends for whatever reason (this side's or the peer's close, a failure),
          with a description for people (``"peer closed the connection (code 4000: bye)"``),
          which the session uses as the reason the connection was lost. If the connection
          is already closed when ``attach`` is called, call it from ``attach``, after the
          kept messages. Never call ``on_message`` after it.
        - The session's callbacks do not block for long and do not raise; ``on_message`` may
          call :meth:`send` (never :meth:`close`).
        """
        ...


@runtime_checkable
class AsyncTransport(Protocol):
    """An asyncio transport, for ``tether.aio.session.AsyncSession``.

    Everything is called on the thread of the event loop the session was made on. A
    ``websockets.asyncio`` connection is one, and so are ``tether.web.WebSocketTransport``
    (aiohttp) and :func:`tether.testing.async_memory_pair`'s ends. The methods are coroutine
    functions (``async def``).

    Optional, as :class:`AsyncPushTransport` describes them: ``writing_paused`` and ``drain()``
    (``tether.web``'s and ``tether.asgi``'s have them): the session reads no further from the
    peer while ``writing_paused`` (unless it waits for that peer's answers) until ``drain()``
    returns; and ``send_nowait`` (the same two's, made with ``tether.aio.stepping.send_now``):
    the session then writes each frame as it is queued, with no flush task.
    """

    async def send(self, data: bytes) -> None:
        """Send ``data`` as one binary message, whole.

        - It must hand the message to the connection (write it, or queue it in order) before
          its first suspension point, and may only then wait (for back-pressure, say). The
          session relies on this: several tasks send at once, and the frames must go out in
          the order the sends were started, since a frame may use a class another defines.
        - Several sends may be in progress at once (from several tasks); each message still
          arrives whole.
        - Once the connection is closed (this side's :meth:`close` was called, or
          :meth:`recv` raised because it ended), raises an ``Exception`` (``ConnectionLost``,
          ``ConnectionClosed``) and never returns as though it had sent.
        """
        ...

    async def recv(self) -> bytes | str:
        """The next message: ``bytes`` for binary, ``str`` for text (see
        :meth:`Transport.recv`: whole, in order, never decoded or encoded).

        - One task awaits it at a time (the session's reader task).
        - Messages that arrived before the connection closed come first; then it raises an
          ``Exception`` (``ConnectionLost``, ``ConnectionClosed``), and so does every later
          call, without waiting. It never returns ``None`` or ``b""`` to mean the end.
        - It ends (raises) within a bounded time after :meth:`close` is called by another
          task and after the peer closes. The session may also cancel the task awaiting it
          (``AsyncSession.close`` does after closing): a cancelled ``recv`` must leave the
          transport usable for :meth:`close`.
        """
        ...

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with this close ``code`` and ``reason``, called as ``close()``
        or ``close(code, reason)`` (see :meth:`Transport.close` for the codes; the reason fits
        a close frame: :func:`fit_close_reason`).

        - Idempotent: closing an already closed transport does nothing and does not raise.
        - May wait for the peer's closing handshake, for a bounded time (``websockets``:
          ``close_timeout``; aiohttp's ``WebSocketResponse``: its ``timeout``; the browser's:
          2 s). A :meth:`recv` awaited by another task raises soon after, as does the peer's.
        - :meth:`send` raises once it has returned.
        """
        ...


@runtime_checkable
class AsyncPushTransport(Protocol):
    """An asyncio transport that pushes each message to the session from a synchronous
    callback on the loop's thread, instead of a reader task awaiting ``recv``.

    ``tether.aio.transport``'s connections are (their ``data_received`` calls the session) and
    so is ``tether.browser.BrowserTransport`` (the browser's ``message`` listener does): an
    ``AsyncSession`` on one has no reader task. :meth:`send` and :meth:`close` are as in
    :class:`AsyncTransport`.

    Optional members make the session faster or more informative:

    - ``send_nowait(data: bytes) -> None`` hands a message to the connection without awaiting
      (raising as :meth:`send` does once closed): the session then writes each frame as it is
      queued, with no task and no await per frame (and the page's sync face blocks on an answer
      without a task);
    - ``writing_paused: bool`` and ``async drain() -> None``: whether the connection's send
      buffer is over its high-water mark, and a wait until it is not; a caller that awaits an
      answer waits for ``drain()`` first while ``writing_paused``;
    - ``awaits_answers``, a writable attribute: the session sets it to a function telling
      whether it waits for answers from the peer (``tether.aio.transport`` then keeps reading
      whatever it buffers: see ``docs/security.md`` 7);
    - ``async wait_closed(timeout: float) -> None`` waits (at most ``timeout`` seconds) until
      the connection is known closed, so that a refused connection is reported with its close
      code; ``abort() -> None`` drops the connection at once (a cancelled session does).
    """

    async def send(self, data: bytes) -> None:
        """As :meth:`AsyncTransport.send`; it may be called from inside ``on_message``
        (which then does not await it: it hands the frame over before its first suspension)."""
        ...

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """As :meth:`AsyncTransport.close`; ``on_closed`` is called when the connection ends."""
        ...

    def attach(self, on_message: OnMessage, on_closed: OnClosed) -> None:
        """From now on, call ``on_message(data)`` with each message and ``on_closed(reason)``
        once when the connection ends, as :meth:`PushTransport.attach` says, except that both
        are called synchronously on the event loop's thread (from the transport's own
        callbacks), and must therefore never block; the session's never raise."""
        ...


@runtime_checkable
class CloseDetails(Protocol):
    """What a transport may tell about how its connection closed (optional; the sessions do
    not need it, tests and tools read it).

    ``websockets`` connections, :class:`tether.testing.MemoryTransport`,
    ``tether.asgi.ASGITransport`` and the browser's transport have both attributes;
    ``AsyncMemoryTransport`` and ``tether.web``'s ``WebSocketTransport`` do not (the latter
    says the code in its ``ConnectionLost``).
    """

    @property
    def close_code(self) -> int | None:
        """``None`` while the connection is open. Once it is closed, on the side that did not
        start the close: the code the peer closed with (1000 for a plain ``close()``); 1006 if
        it ended without a closing handshake."""
        ...

    @property
    def close_reason(self) -> str | None:
        """The reason that goes with :attr:`close_code` (``""`` for none); ``None`` or ``""``
        while open."""
        ...
