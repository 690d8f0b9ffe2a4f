"""The asyncio runtime: a :class:`~tether.protocol.Protocol` driven by an event loop.

Incoming messages to ``async def`` methods run as tasks on the loop; messages to plain
methods run on worker threads (natively), so a blocking handler never stalls the loop, or as
tasks where there are no threads (Pyodide). Frames are encoded where they arise (the loop, a
worker thread) into the protocol's one ordered outbox; only the loop's thread sends, so the
wire order is the protocol's.

Two kinds of transport (``tether.transports``):

- a **push** transport (:class:`~tether.transports.AsyncPushTransport`: ``tether.aio.transport``,
  the page's ``BrowserTransport``) calls the session with each message from its own callback on
  the loop's thread (:meth:`AsyncSession._feed`), so there is no reader task; with
  ``send_nowait`` the session writes what it queued at once, on the loop's thread, with no task
  and no await per frame (:meth:`AsyncSession._flush`); a caller that awaits an answer waits
  first while the transport says its write buffer is full (``writing_paused``, ``drain()``).
- a **reading** transport (:class:`~tether.transports.AsyncTransport`: ``async send(bytes)``,
  ``async recv() -> bytes``, ``async close()``) is read by a task (:meth:`AsyncSession.run`) and
  written by one flush task at a time; its ``send`` must hand the frame to the connection
  before its first suspension point (true of ``websockets`` connections, of ``tether.web``'s
  and of the in-memory pair). One that also has ``send_nowait`` (``tether.web``'s,
  ``tether.asgi``'s) is written as a push transport is. One that has ``writing_paused`` and
  ``drain()`` (the same two) is read no further while its write buffer is full, until it
  drains (unless this side waits for the peer's answers: the peer may be busy writing them).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Generator
from typing import Any, cast

from ..errors import register_runtime_file
from ..exceptions import ConnectionLost, HandshakeFailed, UsageError
from ..protocol import CLOSE_PROTOCOL_ERROR, Event, State, Violation
from ..session import BaseSession, PeerBase, is_factory
from ..session import describe_close as _describe_close
from ..transports import AsyncPushTransport, AsyncTransport, fit_close_reason
from ..waiter import Waiter as _Waiter
from .promise import Promise
from .promising import PromiseWaiting
from .running import MessageRunner

__all__ = ["THREADS", "AsyncPeer", "AsyncSession", "ConnectingBase", "open_async_session", "serve_connection"]

register_runtime_file(__file__)  # its frames stay out of tracebacks sent to peers

log = logging.getLogger("tether")

THREADS = sys.platform != "emscripten"


class AsyncSession(PromiseWaiting, MessageRunner, BaseSession):
    """One connection in the asyncio runtime. ``await run()`` reads until it closes."""

    def __init__(
        self, transport: AsyncTransport | AsyncPushTransport, *, run_sync_in_threads: bool = THREADS, **options: Any
    ) -> None:
        super().__init__(**options)
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._threads = run_sync_in_threads and THREADS
        # Plain methods run at once on the loop when they may not use threads (natively: in a
        # page, plain code may block through JSPI, which only a task can).
        self._inline = not self._threads and THREADS
        self._running_plain = False
        self._flushing = False
        self._flush_soon = False  # a _flush_subscribed callback is scheduled
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tasks_by_id: dict[bytes, asyncio.Task[Any]] = {}  # the peer's calls running as tasks
        self._opened = self.loop.create_future()
        self._done = self.loop.create_future()
        self._reader: asyncio.Task[Any] | None = None
        self._pushed = False  # attached to a push transport
        # The transport's way to write a frame now (None: a flush task awaits send).
        self._send_nowait: Any = getattr(transport, "send_nowait", None)
        if self._threads:
            from ..workers import worker_pool

            self._pool = worker_pool()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Attach to a push transport (or start reading in a task), then send the opening
        frame if we are the client."""
        if hasattr(self.transport, "attach"):
            self._attach()
            if self.protocol.client:
                self.protocol.queue_opening()
                try:
                    for frame in self.protocol.data_to_send():
                        await self.transport.send(frame)
                except Exception:  # the server closed at once (a refusal): learn its close code
                    wait_closed = getattr(self.transport, "wait_closed", None)
                    if wait_closed is not None:
                        await wait_closed(2.0)
                    self._transport_closed(self.close_reason or "the connection closed at once")
            return
        if self.protocol.client:
            self.protocol.queue_opening()
            await self._drain()  # closed at once (a refusal): the session is closed, wait_opened reports it
            if self.closed:
                return
        self._reader = self._spawn(self.run())

    def _attach(self) -> None:
        if not self._pushed:
            self._pushed = True
            if hasattr(self.transport, "awaits_answers"):  # (tether.aio.transport's backpressure)
                self.transport.awaits_answers = self._pending.__len__
            cast(AsyncPushTransport, self.transport).attach(self._feed, self._transport_closed)

    async def wait_opened(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self._opened), timeout)
        except TimeoutError:
            await self.close()
            raise HandshakeFailed(
                f"{self.describe()} opened a WebSocket but sent no Tether frame within {timeout:g} s "
                "(not a Tether peer, or one that is stuck)"
            ) from None
        if self.closed:
            raise self._lost_error()

    async def run(self) -> None:
        """Handle frames until the connection closes: on a push transport, attach and wait;
        else read in this task."""
        if hasattr(self.transport, "attach"):
            self._attach()
            try:
                await asyncio.shield(self._done)
            except asyncio.CancelledError:
                if self.close_reason is None:
                    self.close_reason = "closed by this side"
                abort = getattr(self.transport, "abort", None)
                if abort is not None:
                    abort()
                self._shutdown()
            return
        try:
            transport = cast(AsyncTransport, self.transport)  # run() reads transports that do not push
            recv = transport.recv
            receive = self.protocol.receive
            # (a peer that sends calls and does not read the answers is read no further until they
            # drain; but while we wait for its answers, read on: it may be busy writing them)
            watched = hasattr(transport, "writing_paused") and hasattr(transport, "drain")
            while True:
                data = await recv()
                if isinstance(data, str):
                    await self._violate(CLOSE_PROTOCOL_ERROR, "Tether frames are binary messages, got a text message")
                    break
                if await self._handle(receive(data)):
                    break
                if watched and not self._pending and transport.writing_paused:  # type: ignore[attr-defined]
                    await transport.drain()  # type: ignore[attr-defined]
        except asyncio.CancelledError:
            if self.close_reason is None:
                self.close_reason = "closed by this side"
        except Exception as exc:
            if self.close_reason is None:
                self.close_reason = _describe_close(exc)
        finally:
            self._shutdown()

    # -- receiving from a push transport (no reader task) ------------------------------------

    def _feed(self, data: bytes | str) -> None:
        """Handle one message, synchronously, from the push transport's callback on the loop.

        What :meth:`run` does for each frame, minus the awaiting: a protocol violation closes
        the connection from a task. It must never raise (the transport's callback would)."""
        if isinstance(data, str):
            if self.protocol.state is State.CLOSING or self.closed:
                return
            self._stop(CLOSE_PROTOCOL_ERROR, "Tether frames are binary messages, got a text message")
            return
        try:
            violation = self.handle_events(self.protocol.receive(data))
            if violation is not None:
                self._stop(violation.code, violation.reason)
        except Exception as exc:  # a bug, not bad input: report it and drop the connection
            log.exception("error while handling a frame from %s", self.describe())
            if self.close_reason is None:
                self.close_reason = f"internal error: {exc!r}"
            self.protocol.state = State.CLOSING
            self._spawn(self.close())

    def _stop(self, code: int, reason: str) -> None:
        """Close the connection for a protocol violation (from a task: closing waits)."""
        self.protocol.state = State.CLOSING

        async def stop() -> None:
            await self._violate(code, reason)
            self._shutdown()

        self._spawn(stop())

    def _transport_closed(self, reason: str) -> None:
        """The push transport's connection ended: fail what is pending, as the end of ``run``
        does for a reading transport."""
        if self.close_reason is None:
            self.close_reason = reason or "the connection closed"
        self._shutdown()

    async def _handle(self, events: list[Event]) -> bool:
        violation = self.handle_events(events)
        if violation is not None:
            await self._violate(violation.code, violation.reason)
            return True
        return False

    def handle_events(self, events: list[Event]) -> Violation | None:
        """Act on what the protocol made of one frame (loop thread, synchronously): send what
        it produced, route answers, dispatch incoming messages. Returns a violation, if any,
        for the caller to close the connection with."""
        violation = self.route(events)
        if self.protocol.has_data_to_send():
            self._flush()
        return violation

    def _settle(self, waiter: Any, value: Any, error: BaseException | None) -> None:
        if type(waiter) is _Waiter:
            super()._settle(waiter, value, error)
        elif not waiter.done():  # (done: a future its caller cancelled meanwhile, or that timed out)
            if error is None:
                waiter.set_result(value)
            else:
                waiter.set_exception(error)

    def _on_opened(self) -> None:
        if not self._opened.done():
            self._opened.set_result(None)

    async def _violate(self, code: int, reason: str) -> None:
        log.warning("closing connection to %s: %s", self.describe(), reason)
        self.close_reason = f"protocol error: {reason}"
        try:
            await self.transport.close(code, fit_close_reason(reason))
        except Exception:
            pass

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (with this close code and reason for the peer); pending calls
        fail with ConnectionLost."""
        if self.close_reason is None:
            self.close_reason = "closed by this side"
        try:
            if code == 1000 and not reason:
                await self.transport.close()
            else:
                await self.transport.close(code, fit_close_reason(reason))
        except Exception:
            pass
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            try:
                await self._reader
            except BaseException:
                pass
        self._shutdown()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._done)

    def _shutdown(self) -> None:
        self._end()
        for future in (self._opened, self._done):
            if not future.done():
                future.set_result(None)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- sending: the loop's thread sends, in the protocol's order ---------------------------

    def _flush(self) -> None:
        """Send what the protocol queued (any thread). On the loop's thread, with the
        transport's ``send_nowait``: written now. Else a flush task on the loop, unless one runs
        (it sends these frames too)."""
        if threading.get_ident() != self._loop_thread:
            try:
                self.loop.call_soon_threadsafe(self._flush)
            except RuntimeError:
                pass  # the loop is closed: so is the connection
            return
        if self._flushing:
            return
        send = self._send_nowait
        if send is not None:
            try:
                for frame in self.protocol.data_to_send():
                    send(frame)
            except Exception as exc:  # the connection is gone: tell every caller
                if self.close_reason is None:
                    self.close_reason = _describe_close(exc)
                self._shutdown()
            return
        if not self.loop.is_closed():  # (closed: so is the connection)
            self._flushing = True
            self._spawn(self._drain_owned())

    async def _drain(self) -> None:
        """Send what the protocol queued, from a coroutine on the loop (at once, unless a flush
        already runs: it sends these frames too). On a push transport whose write buffer is
        full (the peer does not read), wait until it has drained."""
        if self._send_nowait is not None:
            self._flush()
            transport = self.transport
            if getattr(transport, "writing_paused", False):
                await transport.drain()  # type: ignore[union-attr]
            return
        if not self._flushing:
            self._flushing = True
            await self._drain_owned()

    async def _drain_owned(self) -> None:
        try:
            while True:
                frames = self.protocol.data_to_send()
                if not frames:
                    break
                for frame in frames:
                    await self.transport.send(frame)
        except Exception as exc:  # a send failed: the connection is gone, tell every caller
            if self.close_reason is None:
                self.close_reason = _describe_close(exc)
            self._shutdown()
        finally:
            self._flushing = False

    # -- calls ----------------------------------------------------------------------------

    def call(
        self,
        receiver: int,
        selector: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any] | None = None,
        must_block: bool = False,
    ) -> Any:
        """On the loop's thread: an awaitable of the answer. Elsewhere: block for the answer."""
        if threading.get_ident() == self._loop_thread:
            if must_block:
                raise UsageError(
                    f"{selector} on a proxy must return a plain value, which would block the "
                    f"event loop; in async code use: await tether.aio.call(proxy, {selector!r})"
                )
            return Promise(self, receiver, selector, args, kwargs)
        return self._call_and_block(receiver, selector, args, kwargs)

    async def acall(
        self,
        receiver: int,
        selector: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """Send a message and await its answer (loop thread only). A caller that is cancelled,
        or times out (``timeout=`` or :func:`tether.timeout`), frees its pending entry at once
        and cancels the call on the other side."""
        return await Promise(self, receiver, selector, args, kwargs)

    def _new_future(self) -> asyncio.Future[Any]:
        """The future an answer is set on (a runtime may make a cheaper one)."""
        return self.loop.create_future()

    def _await_in_thread(self, awaitable: Any) -> Any:
        future = asyncio.run_coroutine_threadsafe(_await(awaitable), self.loop)
        with self._pool.blocked():
            return future.result()

    def _schedule_release_flush(self) -> None:
        if THREADS:
            from ..workers import release_flusher

            release_flusher.request(self._flush_releases)
        else:
            self.loop.call_later(0.005, self._flush_releases)

    def _later(self, seconds: float, fn: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.loop.call_later, seconds, fn)
        except RuntimeError:
            pass  # the loop is closed: so is the connection

    def _close_soon(self) -> None:
        if threading.get_ident() != self._loop_thread:
            try:
                self.loop.call_soon_threadsafe(self._close_soon)
            except RuntimeError:
                pass
            return
        self._spawn(self.close())

    def _resume(self, read: Any) -> None:
        if threading.get_ident() != self._loop_thread:
            try:
                self.loop.call_soon_threadsafe(self._resume, read)
            except RuntimeError:
                pass  # the loop is closed: so is the connection
            return
        violation = self.handle_events(read())
        if violation is not None:
            self._spawn(self._violate(violation.code, violation.reason))


async def _await(awaitable: Any) -> Any:
    return await awaitable


class AsyncPeer(PeerBase):
    """The other end of a connection, as seen from async code.

    ``root`` is a proxy to the peer's root (on the serving side, ``await peer.fetch_root()``
    first). Close with ``await peer.close()`` or by leaving ``async with``.
    """

    session: AsyncSession

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._root: Any = None
        self._root_fetched = False

    @property
    def root(self) -> Any:
        if not self._root_fetched:
            if threading.get_ident() == self.session._loop_thread:
                raise UsageError("the peer's root is not fetched yet: use `await peer.fetch_root()`")
            self._root = self.session.call_tether("root", ())
            self._root_fetched = True
        return self._root

    async def fetch_root(self) -> Any:
        """Ask the peer for its root object (once) and return the proxy."""
        if not self._root_fetched:
            self._root = await self.session.call_tether("root", ())
            self._root_fetched = True
        return self._root

    async def close(self) -> None:
        await self.session.close()

    async def wait_closed(self) -> None:
        await self.session.wait_closed()

    async def __aenter__(self) -> AsyncPeer:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<tether.aio.AsyncPeer {self.session.describe()} {'closed' if self.closed else 'open'}>"


class ConnectingBase:
    """What a ``connect`` returns: await it for the peer, or use it with ``async with`` (the
    peer is closed on exit). Subclasses open the connection in ``_open``."""

    _peer: AsyncPeer | None = None

    async def _open(self) -> AsyncPeer:
        raise NotImplementedError

    def __await__(self) -> Generator[Any, None, AsyncPeer]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncPeer:
        self._peer = await self._open()
        return self._peer

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._peer is not None:
            await self._peer.close()


async def serve_connection(
    transport: Any, root: Any, url: str, peers: set[AsyncPeer], options: dict[str, Any]
) -> None:
    """Serve one accepted connection until it closes: a session whose root is ``root``, or
    what the factory ``root`` makes for the new peer (it may be a coroutine). The peer is in
    ``peers`` while it is connected."""
    session = AsyncSession(transport, client=False, url=url, **options)
    peer = AsyncPeer(session)
    made = root(peer) if is_factory(root) else root
    if asyncio.iscoroutine(made):
        made = await made
    session.protocol.root = made
    peers.add(peer)
    try:
        await session.run()
    finally:
        peers.discard(peer)


async def open_async_session(
    transport: Any,
    *,
    root: object = None,
    url: str | None = None,
    open_timeout: float = 10.0,
    session_class: type[AsyncSession] | None = None,
    **options: Any,
) -> AsyncPeer:
    """Start the client side of a conversation on ``transport``; return the AsyncPeer.

    ``session_class`` lets a runtime use its own session (the browser's blocks through JSPI).
    """
    deadline = time.monotonic() + open_timeout
    session = (session_class or AsyncSession)(transport, root=root, client=True, url=url, **options)
    await session.start()
    await session.wait_opened(open_timeout)
    peer = AsyncPeer(session)
    # Futures, not proxies' calls: the handshake is async whichever face the caller uses (a
    # browser page's tether.connect runs it from plain code).
    hello, root_call = session._new_future(), session._new_future()
    hello_id = session._queue_handshake(hello, root_call)
    try:
        root_proxy = await asyncio.wait_for(asyncio.shield(root_call), max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        await session.close()
        raise session.handshake_timed_out() from None
    except ConnectionLost as exc:
        raise session.handshake_broken(exc) from None
    answered = hello.done()
    session.take_hello(hello_id, answered, (hello.exception() or hello.result()) if answered else None)
    peer._root = root_proxy
    peer._root_fetched = True
    return peer
