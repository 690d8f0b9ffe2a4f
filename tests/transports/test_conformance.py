"""One conformance suite for the transport contracts of ``tether.transports``, run on every
transport tether ships (each connected pair is a fixture parameter):

- ``memory``: ``tether.testing.memory_pair`` (:class:`~tether.transports.Transport`);
- ``async-memory``: ``tether.testing.async_memory_pair`` (``AsyncTransport``);
- ``sync-tether``: ``tether.sync.transport``'s ``PushingServerConnection`` and
  ``PushingClientConnection`` (websockets' sans-I/O protocol over sockets), opened and accepted
  as ``tether.connect`` and ``tether.serve`` do, the accepting thread reading the server's
  end (``PushTransport``); ``sync-tether-tls``: the same over TLS (a CA made by ``trustme``);
- ``sync-websockets-plain``: plain ``websockets.sync`` connections, which
  ``tether.sync.session`` says are transports too (``Transport``);
- ``aio-websockets``: ``websockets.asyncio`` server and client connections, which an
  ``AsyncSession`` takes as they are (``AsyncTransport``);
- ``aio-tether``: ``tether.aio.transport``'s ``ServerConnection`` and ``ClientConnection``
  (websockets' sans-I/O protocol in an ``asyncio.Protocol``), listened and opened as
  ``tether.aio.serve`` and ``tether.aio.connect`` do (``AsyncPushTransport``);
  ``aio-tether-tls``: the same over TLS;
- ``web-aiohttp``: ``tether.web.WebSocketTransport`` on the ``/ws`` endpoint of a real
  ``tether.web.serve_web`` (its own ``WebSocketResponse`` settings and admission), whose
  session is replaced by the test so that the test drives the transport itself; the other
  end is a ``websockets.asyncio`` client. Its Pyodide folder is a stand-in (``serve_web``
  only checks that two files exist), so neither Pyodide nor a browser is needed; it is
  skipped when ``aiohttp`` is missing.
- ``asgi-uvicorn``: ``tether.asgi.ASGITransport`` on the ``/ws`` endpoint of a real
  ``tether.asgi.app`` under ``uvicorn.Server`` (run on the test's loop), its session replaced
  the same way; the other end is a ``websockets.asyncio`` client. Skipped without uvicorn.

The browser's transport (``tether.browser.BrowserTransport``, an ``AsyncPushTransport``) needs
Pyodide in Chromium, so it cannot run here; only its shape is checked
(:func:`test_the_shipped_classes_have_the_shape_of_their_contracts`). ``tests/browser``
exercises it.

What is checked on each pair, from both ends: that each end satisfies its protocol (and that
the async ones are coroutine functions); binary messages arrive whole and in order, empty ones
and one of 1 MiB included, also those sent before the receiver starts reading and those sent
from several threads or tasks at once; async sends go out in the order they were started;
text messages arrive as ``str``; closing from either side (plain, or with a code and reason)
ends both sides' ``recv`` (or calls ``on_closed`` once) within a bounded time, after the
messages sent before the close, and ``recv`` keeps raising after; the peer sees the close
code and reason where the transport exposes them; closing twice, or after the peer closed,
or from both sides at once is harmless; sending after the close raises (the exception each
transport raises is listed in its ``End``); a push transport keeps messages that arrive
before ``attach`` and its ``on_message`` may send; an async ``recv`` that was cancelled leaves
the transport usable; a reason cut by ``fit_close_reason`` (what sessions pass) closes the
connection and reaches the peer whole. (This suite found that an uncut reason over 123 bytes
made ``websockets``' ``close`` raise and leave the connection open, and that
``WebSocketTransport`` cut inside a character: the sessions and ``WebSocketTransport`` now cut
with ``fit_close_reason``; tests/native/test_close_reason.py checks it through the sessions.)

Everything runs on 127.0.0.1 and every wait is bounded (``WAIT``; pytest-timeout besides).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tether.exceptions import ConnectionLost
from tether.protocol import DEFAULT_MAX_FRAME_SIZE
from tether.testing import AsyncMemoryTransport, MemoryTransport, async_memory_pair, memory_pair
from tether.transports import (
    AsyncPushTransport,
    AsyncTransport,
    CloseDetails,
    PushTransport,
    Transport,
    fit_close_reason,
)

pytestmark = pytest.mark.timeout(60)

WAIT = 5.0  # the bound on anything the contract says happens soon
MiB = 2**20
BIG = random.Random(1).randbytes(MiB)  # one message of 1 MiB
RECEIVED_KINDS = ("message", "end")


# -- driving a transport from the test's thread ------------------------------------------------


class LoopThread:
    """An event loop in a thread of its own, for the async transports."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="conformance-loop", daemon=True)
        self.thread.start()

    def submit(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Any, timeout: float = WAIT, what: str = "a coroutine") -> Any:
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except TimeoutError:
            if future.done():
                raise
            future.cancel()
            raise AssertionError(f"{what} did not finish within {timeout} s") from None

    def stop(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        if not self.thread.is_alive():
            self.loop.close()


def bounded(fn: Callable[[], Any], what: str, timeout: float = WAIT) -> None:
    """Run ``fn`` in a thread; fail if it takes longer than ``timeout``; re-raise its error."""
    error: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="conformance-bounded", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(f"{what} did not return within {timeout} s")
    if error:
        raise error[0]


class End:
    """One end of a connection under test, driven from the test's thread.

    What it receives goes to ``events`` as ``(kind, value)``: ``("message", data)``;
    ``("end", exception)`` when ``recv`` raises, or ``("end", reason)`` when a push transport
    calls ``on_closed``; after the end of a ``recv`` transport, ``("again", exception)`` from
    one more ``recv``. Anything else is a contract violation.

    ``send_error``: what its ``send`` raises once closed. ``close_details``: whether it has
    ``close_code``/``close_reason``. ``code_seen``/``reason_seen``: whether it tells the close
    code/reason of a peer that closed (in those attributes, a ``websockets`` exception's
    ``rcvd`` frame, or the text of its end).
    """

    def __init__(
        self,
        label: str,
        transport: Any,
        *,
        send_error: type[Exception],
        close_details: bool,
        code_seen: bool,
        reason_seen: bool,
        send_text: Callable[[str], None],
        loop: LoopThread | None = None,
    ) -> None:
        self.label = label
        self.transport = transport
        self.send_error = send_error
        self.close_details = close_details
        self.code_seen = code_seen
        self.reason_seen = reason_seen
        self.send_text = send_text
        self.loop = loop
        self.is_async = loop is not None
        self.pushes = hasattr(transport, "attach")
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.on_closed_calls = 0
        self.on_message_hook: Callable[[bytes | str], None] | None = None
        self._in_callback = False
        self._started = False

    def __repr__(self) -> str:
        return f"<End {self.label}>"

    # -- receiving ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start receiving: attach (push transports) or read in a thread or task."""
        assert not self._started
        self._started = True
        if self.pushes:
            if self.loop is not None:

                async def attach() -> None:
                    self.transport.attach(self._on_message, self._on_closed)

                self.loop.run(attach(), what=f"{self.label}.attach")
            else:
                bounded(
                    lambda: self.transport.attach(self._on_message, self._on_closed), f"{self.label}.attach"
                )
        elif self.loop is not None:
            self.loop.submit(self._read_async())
        else:
            threading.Thread(target=self._read, name=f"reader {self.label}", daemon=True).start()

    def _on_message(self, data: bytes | str) -> None:
        if self._in_callback:
            self.events.put(("on_message called while another on_message ran", data))
        if self.on_closed_calls:
            self.events.put(("on_message called after on_closed", data))
        self._in_callback = True
        try:
            self.events.put(("message", data))
            if self.on_message_hook is not None:
                self.on_message_hook(data)
        finally:
            self._in_callback = False

    def _on_closed(self, reason: str) -> None:
        self.on_closed_calls += 1
        if self.on_closed_calls == 1:
            self.events.put(("end", reason))

    def _read(self) -> None:
        recv = self.transport.recv
        while True:
            try:
                data = recv()
            except Exception as exc:
                self.events.put(("end", exc))
                break
            except BaseException as exc:
                self.events.put(("recv raised a BaseException that is not an Exception", exc))
                return
            self.events.put(("message", data))
        try:
            again = recv()  # (a recv that blocks here shows as a missing "again" event)
        except Exception as exc:
            self.events.put(("again", exc))
        else:
            self.events.put(("recv returned after the end", again))

    async def _read_async(self) -> None:
        recv = self.transport.recv
        while True:
            try:
                data = await recv()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.events.put(("end", exc))
                break
            self.events.put(("message", data))
        try:
            again = await asyncio.wait_for(recv(), WAIT)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            self.events.put(("recv blocked after the end", None))
        except Exception as exc:
            self.events.put(("again", exc))
        else:
            self.events.put(("recv returned after the end", again))

    def next(self, timeout: float = WAIT) -> tuple[str, Any]:
        try:
            kind, value = self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.label}: nothing received within {timeout} s") from None
        if kind not in (*RECEIVED_KINDS, "again"):
            raise AssertionError(f"{self.label}: {kind}: {value!r}")
        return kind, value

    def messages(self, count: int) -> list[bytes | str]:
        received: list[bytes | str] = []
        for _ in range(count):
            kind, value = self.next()
            assert kind == "message", (
                f"{self.label}: the end ({value!r}) after {len(received)} of {count} messages"
            )
            received.append(value)
        return received

    def wait_end(self) -> Any:
        """The end of this side (its recv raised, or on_closed was called): its exception or reason."""
        kind, value = self.next()
        assert kind == "end", f"{self.label}: {kind} {value!r} where the end was expected"
        return value

    def check_recv_after_end(self) -> None:
        """A recv transport's recv raises again, at once, after the end."""
        if self.pushes:
            return
        try:
            kind, value = self.next()
        except AssertionError:
            raise AssertionError(f"{self.label}: recv blocked after the connection ended") from None
        assert kind == "again" and isinstance(value, Exception), (kind, value)

    def assert_quiet(self) -> None:
        """Nothing more arrived (no message after the end, no violation)."""
        with contextlib.suppress(queue.Empty):
            kind, value = self.events.get_nowait()
            raise AssertionError(f"{self.label}: unexpected {kind}: {value!r}")

    def observed_close(self, end: Any) -> tuple[int | None, str | None]:
        """The close code and reason this side tells of, after its end."""
        transport = self.transport
        if isinstance(transport, CloseDetails):
            deadline = time.monotonic() + WAIT
            while transport.close_code is None and time.monotonic() < deadline:
                time.sleep(0.01)
            return transport.close_code, transport.close_reason
        rcvd = getattr(end, "rcvd", None)
        if rcvd is not None:
            return rcvd.code, rcvd.reason
        found = re.search(r"code (\d+)(?:: (.*))?\)", str(end))
        if found is None:
            return None, None
        return int(found.group(1)), found.group(2)

    # -- sending and closing ------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.loop is not None:
            self.loop.run(self.transport.send(data), what=f"{self.label}.send")
        else:
            self.transport.send(data)

    def send_concurrently(self, batches: list[list[bytes]]) -> None:
        """Send each batch in order, the batches at once (threads, or tasks)."""
        if self.loop is not None:

            async def send_all() -> None:
                async def send_batch(batch: list[bytes]) -> None:
                    for data in batch:
                        await self.transport.send(data)

                await asyncio.gather(*(send_batch(b) for b in batches))

            self.loop.run(send_all(), timeout=4 * WAIT, what=f"{self.label}: concurrent sends")
            return
        errors: list[BaseException] = []

        def send_batch(batch: list[bytes]) -> None:
            try:
                for data in batch:
                    self.transport.send(data)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=send_batch, args=(b,), daemon=True) for b in batches]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(4 * WAIT)
            assert not thread.is_alive(), f"{self.label}: concurrent sends did not finish"
        assert not errors, errors

    def close(self, *args: Any) -> None:
        """Close (bounded in time)."""
        if self.loop is not None:
            self.loop.run(self.transport.close(*args), what=f"{self.label}.close{args}")
        else:
            bounded(lambda: self.transport.close(*args), f"{self.label}.close{args}")

    def start_close(self, *args: Any) -> Callable[[], None]:
        """Start closing; return a function that waits (bounded) for the close to return."""
        if self.loop is not None:
            future = self.loop.submit(self.transport.close(*args))
            return lambda: future.result(WAIT)
        error: list[BaseException] = []

        def close() -> None:
            try:
                self.transport.close(*args)
            except BaseException as exc:
                error.append(exc)

        thread = threading.Thread(target=close, daemon=True)
        thread.start()

        def wait() -> None:
            thread.join(WAIT)
            assert not thread.is_alive(), f"{self.label}.close{args} did not return within {WAIT} s"
            if error:
                raise error[0]

        return wait


class Pair:
    def __init__(self, name: str, a: End, b: End) -> None:
        self.name = name
        self.a = a
        self.b = b

    @property
    def ends(self) -> tuple[End, End]:
        return self.a, self.b

    def directed(self, first: str) -> tuple[End, End]:
        """(a, b) or (b, a): ``first`` is the end that sends, or closes."""
        return (self.a, self.b) if first == "a" else (self.b, self.a)

    def start(self) -> None:
        for end in self.ends:
            end.start()


# -- the transports, connected pairs of them ---------------------------------------------------

PairFactory = Callable[[Path, pytest.MonkeyPatch], contextlib.AbstractContextManager[Pair]]


@contextlib.contextmanager
def memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pair]:
    a, b = memory_pair()
    details = {"close_details": True, "code_seen": True, "reason_seen": True}
    yield Pair(
        "memory",
        End("MemoryTransport a", a, send_error=ConnectionLost, send_text=a.send, **details),
        End("MemoryTransport b", b, send_error=ConnectionLost, send_text=b.send, **details),
    )
    a.close()


@contextlib.contextmanager
def async_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pair]:
    loop = LoopThread()

    async def make() -> tuple[AsyncMemoryTransport, AsyncMemoryTransport]:
        return async_memory_pair()

    a, b = loop.run(make())
    # AsyncMemoryTransport keeps no close code: its ConnectionLost says "in-memory connection closed".
    details = {"close_details": False, "code_seen": False, "reason_seen": False}
    try:
        yield Pair(
            "async-memory",
            End("AsyncMemoryTransport a", a, send_error=ConnectionLost, loop=loop,
                send_text=lambda text: loop.run(a.send(text)), **details),
            End("AsyncMemoryTransport b", b, send_error=ConnectionLost, loop=loop,
                send_text=lambda text: loop.run(b.send(text)), **details),
        )  # fmt: skip
    finally:
        with contextlib.suppress(Exception):
            loop.run(a.close())
        loop.stop()


@contextlib.contextmanager
def sync_websockets_plain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pair]:
    from websockets.sync.client import connect
    from websockets.sync.server import serve

    accepted: queue.Queue[Any] = queue.Queue()
    release = threading.Event()

    def handler(connection: Any) -> None:
        accepted.put(connection)
        release.wait(120)  # the connection lives until the test is over

    server = serve(handler, "127.0.0.1", 0, compression=None, max_size=DEFAULT_MAX_FRAME_SIZE)
    thread = threading.Thread(target=server.serve_forever, name="conformance-server", daemon=True)
    thread.start()
    client = None
    try:
        port = server.socket.getsockname()[1]
        client = connect(
            f"ws://127.0.0.1:{port}", compression=None, max_size=DEFAULT_MAX_FRAME_SIZE, open_timeout=WAIT,
            legacy=True,
        )  # fmt: skip
        served = accepted.get(timeout=WAIT)
        details = {"close_details": True, "code_seen": True, "reason_seen": True}
        yield Pair(
            "sync-websockets-plain",
            End("websockets.sync ServerConnection", served, send_error=ConnectionClosed, send_text=served.send,
                **details),
            End("websockets.sync ClientConnection", client, send_error=ConnectionClosed, send_text=client.send,
                **details),
        )  # fmt: skip
    finally:
        release.set()
        if client is not None:
            bounded(client.close, "closing the client")
        bounded(server.shutdown, "shutting the server down")
        thread.join(WAIT)


def _sync_tether(tls: bool) -> PairFactory:
    @contextlib.contextmanager
    def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pair]:
        import socket
        import ssl

        from tether.admission import tls_server_context
        from tether.sync.settings import client_settings, server_settings
        from tether.sync.transport import accept_connection, open_connection
        from tether.websocket import DEFAULT_KEEPALIVE, keepalive_options, select_ws_subprotocol

        server_ssl = client_ssl = None
        if tls:
            trustme = pytest.importorskip("trustme")
            ca = trustme.CA()
            server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert("127.0.0.1").configure_cert(server_ssl)
            client_ssl = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            ca.configure_trust(client_ssl)
        keepalive = keepalive_options(DEFAULT_KEEPALIVE)
        listener = socket.create_server(("127.0.0.1", 0))
        accepted: queue.Queue[Any] = queue.Queue()

        def accept() -> None:
            """As tether.serve's connection threads: accept, then read the connection."""
            sock, _ = listener.accept()
            try:
                served = accept_connection(
                    sock, ssl_context=tls_server_context(server_ssl), subprotocols=[Subprotocol("tether")],
                    select_subprotocol=select_ws_subprotocol,
                    settings=server_settings("conformance", keepalive, {}, max_size=DEFAULT_MAX_FRAME_SIZE),
                )  # fmt: skip
            except BaseException as exc:
                accepted.put(exc)
                raise
            accepted.put(served)
            if served is not None:
                served.run()

        thread = threading.Thread(target=accept, name="conformance-accept", daemon=True)
        thread.start()
        client = None
        try:
            port = listener.getsockname()[1]
            settings = client_settings("conformance", keepalive, {}, open_timeout=WAIT, max_size=DEFAULT_MAX_FRAME_SIZE)
            client = open_connection(f"{'wss' if tls else 'ws'}://127.0.0.1:{port}", subprotocols=[Subprotocol("tether")],
                                     ssl_context=client_ssl, settings=settings)  # fmt: skip
            served = accepted.get(timeout=WAIT)
            assert not isinstance(served, BaseException) and served is not None, served
            assert client.subprotocol == served.subprotocol == "tether"
            details = {"close_details": True, "code_seen": True, "reason_seen": True}
            yield Pair(
                "sync-tether-tls" if tls else "sync-tether",
                End("PushingServerConnection", served, send_error=ConnectionClosed, send_text=served.send_text,
                    **details),
                End("PushingClientConnection", client, send_error=ConnectionClosed, send_text=client.send_text,
                    **details),
            )  # fmt: skip
        finally:
            if client is not None:
                bounded(client.close, "closing the client")
            listener.close()
            thread.join(WAIT)

    return factory


async def _aio_client(url: str, subprotocols: list[str] | None = None) -> Any:
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    return await connect(
        url,
        compression=None,
        max_size=DEFAULT_MAX_FRAME_SIZE,
        open_timeout=WAIT,
        subprotocols=[Subprotocol(p) for p in subprotocols] if subprotocols else None,
    )


@contextlib.contextmanager
def aio_websockets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pair]:
    from websockets.asyncio.server import serve

    loop = LoopThread()
    state: dict[str, Any] = {}

    async def start() -> tuple[Any, Any]:
        accepted: asyncio.Queue[Any] = asyncio.Queue()
        release = state["release"] = asyncio.Event()

        async def handler(connection: Any) -> None:
            await accepted.put(connection)
            await release.wait()  # the connection lives until the test is over

        server = state["server"] = await serve(
            handler, "127.0.0.1", 0, compression=None, max_size=DEFAULT_MAX_FRAME_SIZE
        )
        port = next(iter(server.sockets)).getsockname()[1]
        client = state["client"] = await _aio_client(f"ws://127.0.0.1:{port}")
        served = await asyncio.wait_for(accepted.get(), WAIT)
        return served, client

    async def stop() -> None:
        if "release" in state:
            state["release"].set()
        if "client" in state:
            await state["client"].close()
        if "server" in state:
            state["server"].close()
            await state["server"].wait_closed()

    try:
        served, client = loop.run(start())
        details = {"close_details": True, "code_seen": True, "reason_seen": True}
        yield Pair(
            "aio-websockets",
            End("websockets.asyncio ServerConnection", served, send_error=ConnectionClosed, loop=loop,
                send_text=lambda text: loop.run(served.send(text)), **details),
            End("websockets.asyncio ClientConnection", client, send_error=ConnectionClosed, loop=loop,
                send_text=lambda text: loop.run(client.send(text)), **details),
        )  # fmt: skip
    finally:
        with contextlib.suppress(Exception):
            loop.run(stop())
        loop.stop()


def _aio_tether(tls: bool) -> PairFactory:
    @contextlib.contextmanager
    def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pair]:
        import ssl

        from tether.admission import tls_server_context
        from tether.aio.client import open_connection
        from tether.aio.server import listen
        from tether.aio.settings import client_settings, server_settings
        from tether.websocket import DEFAULT_KEEPALIVE, keepalive_options, select_ws_subprotocol

        server_ssl = client_ssl = None
        if tls:
            trustme = pytest.importorskip("trustme")
            ca = trustme.CA()
            server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert("127.0.0.1").configure_cert(server_ssl)
            client_ssl = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            ca.configure_trust(client_ssl)
        keepalive = keepalive_options(DEFAULT_KEEPALIVE)
        loop = LoopThread()
        state: dict[str, Any] = {}

        async def start() -> tuple[Any, Any]:
            """As tether.aio.serve and tether.aio.connect open them."""
            accepted: asyncio.Queue[Any] = asyncio.Queue()
            server = state["server"] = await listen(
                "127.0.0.1", 0, accepted.put_nowait, ssl=tls_server_context(server_ssl),
                settings=server_settings("conformance", keepalive, {}, max_size=DEFAULT_MAX_FRAME_SIZE),
                subprotocols=[Subprotocol("tether")], select_subprotocol=select_ws_subprotocol,
            )  # fmt: skip
            port = server.sockets[0].getsockname()[1]
            settings = client_settings("conformance", keepalive, {}, open_timeout=WAIT, max_size=DEFAULT_MAX_FRAME_SIZE)
            client = state["client"] = await open_connection(
                f"{'wss' if tls else 'ws'}://127.0.0.1:{port}", subprotocols=[Subprotocol("tether")], ssl=client_ssl,
                settings=settings,
            )  # fmt: skip
            served = await asyncio.wait_for(accepted.get(), WAIT)
            return served, client

        async def stop() -> None:
            if "client" in state:
                await state["client"].close()
            if "server" in state:
                state["server"].close()
                await state["server"].wait_closed()

        try:
            served, client = loop.run(start())
            assert client.subprotocol == served.subprotocol == "tether"
            details = {"close_details": True, "code_seen": True, "reason_seen": True}
            yield Pair(
                "aio-tether-tls" if tls else "aio-tether",
                End("tether.aio ServerConnection", served, send_error=ConnectionClosed, loop=loop,
                    send_text=lambda text: loop.run(served.send_text(text)), **details),
                End("tether.aio ClientConnection", client, send_error=ConnectionClosed, loop=loop,
                    send_text=lambda text: loop.run(client.send_text(text)), **details),
            )  # fmt: skip
        finally:
            with contextlib.suppress(Exception):
                loop.run(stop())
            loop.stop()

    return factory


def _capture_served(module: Any, monkeypatch: pytest.MonkeyPatch, state: dict[str, Any]) -> asyncio.Queue[Any]:
    """Replace ``module.serve_connection`` (on the running loop) by one that hands each endpoint
    transport to the test through the queue returned, and holds it until ``state["release"]``."""
    accepted: asyncio.Queue[Any] = asyncio.Queue()
    release = state["release"] = asyncio.Event()

    async def serve_connection(transport: Any, root: Any, url: str, peers: Any, options: Any) -> None:
        """In place of the session: hand the endpoint's transport to the test."""
        await accepted.put(transport)
        await release.wait()

    monkeypatch.setattr(module, "serve_connection", serve_connection)
    return accepted


@contextlib.contextmanager
def web_aiohttp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pair]:
    pytest.importorskip("aiohttp", reason="tether.web needs aiohttp (pip install 'tether[web]')")
    import tether.web

    pyodide = tmp_path / "pyodide"  # a stand-in: serve_web only checks that these two files exist
    pyodide.mkdir()
    (pyodide / "pyodide.mjs").write_text("export {}")
    (pyodide / "pyodide.asm.wasm").write_bytes(b"\0asm")
    loop = LoopThread()
    state: dict[str, Any] = {}

    async def start() -> tuple[Any, Any]:
        accepted = _capture_served(tether.web, monkeypatch, state)
        server = state["server"] = await tether.web.serve_web(None, port=0, pyodide_dir=pyodide)
        client = state["client"] = await _aio_client(server.ws_url, ["tether"])
        served = await asyncio.wait_for(accepted.get(), WAIT)
        return served, client

    async def stop() -> None:
        if "release" in state:
            state["release"].set()
        if "client" in state:
            await state["client"].close()
        if "server" in state:
            await state["server"].close()

    try:
        served, client = loop.run(start())
        assert isinstance(served, tether.web.WebSocketTransport)
        yield Pair(
            "web-aiohttp",
            # It has no close_code/close_reason; its ConnectionLost says the peer's code, not the reason.
            End("tether.web.WebSocketTransport", served, send_error=ConnectionLost, loop=loop,
                close_details=False, code_seen=True, reason_seen=False,
                send_text=lambda text: loop.run(served.ws.send_str(text))),
            End("websockets.asyncio ClientConnection", client, send_error=ConnectionClosed, loop=loop,
                close_details=True, code_seen=True, reason_seen=True,
                send_text=lambda text: loop.run(client.send(text))),
        )  # fmt: skip
    finally:
        with contextlib.suppress(Exception):
            loop.run(stop())
        loop.stop()


@contextlib.contextmanager
def asgi_uvicorn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pair]:
    uvicorn = pytest.importorskip("uvicorn", reason="the ASGI transport is tested under uvicorn")
    import tether.asgi

    loop = LoopThread()
    state: dict[str, Any] = {}

    async def start() -> tuple[Any, Any]:
        accepted = _capture_served(tether.asgi, monkeypatch, state)
        config = uvicorn.Config(tether.asgi.app(None), host="127.0.0.1", port=0, lifespan="off",
                                log_level="warning", ws_max_size=DEFAULT_MAX_FRAME_SIZE)  # fmt: skip
        server = state["server"] = uvicorn.Server(config)
        state["task"] = asyncio.ensure_future(server.serve())  # on this loop, as the transport's calls are
        while not server.started:
            assert not state["task"].done(), "uvicorn exited while starting"
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        client = state["client"] = await _aio_client(f"ws://127.0.0.1:{port}/ws", ["tether"])
        served = await asyncio.wait_for(accepted.get(), WAIT)
        return served, client

    async def stop() -> None:
        if "release" in state:
            state["release"].set()
        if "client" in state:
            await state["client"].close()
        if "server" in state:
            state["server"].should_exit = True
            await asyncio.wait_for(state["task"], WAIT)

    try:
        served, client = loop.run(start())
        assert isinstance(served, tether.asgi.ASGITransport)
        yield Pair(
            "asgi-uvicorn",
            End("tether.asgi.ASGITransport", served, send_error=ConnectionLost, loop=loop,
                close_details=True, code_seen=True, reason_seen=True,
                send_text=lambda text: loop.run(served._send({"type": "websocket.send", "text": text}))),
            End("websockets.asyncio ClientConnection", client, send_error=ConnectionClosed, loop=loop,
                close_details=True, code_seen=True, reason_seen=True,
                send_text=lambda text: loop.run(client.send(text))),
        )  # fmt: skip
    finally:
        with contextlib.suppress(Exception):
            loop.run(stop())
        loop.stop()


PAIRS: dict[str, PairFactory] = {
    "memory": memory,
    "async-memory": async_memory,
    "sync-tether": _sync_tether(tls=False),
    "sync-tether-tls": _sync_tether(tls=True),
    "sync-websockets-plain": sync_websockets_plain,
    "aio-websockets": aio_websockets,
    "aio-tether": _aio_tether(tls=False),
    "aio-tether-tls": _aio_tether(tls=True),
    "web-aiohttp": web_aiohttp,
    "asgi-uvicorn": asgi_uvicorn,
}


@pytest.fixture(params=list(PAIRS))
def pair(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pair]:
    with PAIRS[request.param](tmp_path, monkeypatch) as connected:
        yield connected
        for end in connected.ends:  # never two on_closed calls, whatever the test did
            assert end.on_closed_calls <= 1, f"{end.label}: on_closed called {end.on_closed_calls} times"


FIRST = pytest.mark.parametrize("first", ["a", "b"])


def pattern(tag: int, size: int) -> bytes:
    """A message of ``size`` bytes that says which it is (when size allows) and is unlike others."""
    head = tag.to_bytes(4, "big")
    body = bytes((tag + i) % 251 for i in range(min(size, 251)))
    data = head + body * (size // max(len(body), 1) + 1)
    return data[:size]


# -- the contract ------------------------------------------------------------------------------


def test_the_shipped_classes_have_the_shape_of_their_contracts() -> None:
    from tether.browser.transport import BrowserTransport
    from tether.sync.transport import PushingClientConnection, PushingServerConnection

    assert issubclass(MemoryTransport, Transport)
    assert issubclass(PushingClientConnection, PushTransport)
    assert issubclass(PushingServerConnection, PushTransport)
    assert issubclass(AsyncMemoryTransport, AsyncTransport)
    assert issubclass(BrowserTransport, AsyncPushTransport)
    from tether.aio.transport import ClientConnection, ServerConnection

    for cls in (ClientConnection, ServerConnection):
        assert issubclass(cls, AsyncPushTransport)
        assert isinstance(getattr(cls, "close_code", None), property) and isinstance(getattr(cls, "close_reason", None), property)
        for name in ("send", "close", "wait_closed", "drain"):
            assert inspect.iscoroutinefunction(getattr(cls, name)), (cls, name)
        assert not inspect.iscoroutinefunction(cls.attach) and not inspect.iscoroutinefunction(cls.send_nowait)
    for name in ("send", "close"):
        assert inspect.iscoroutinefunction(getattr(BrowserTransport, name)), name
    assert not inspect.iscoroutinefunction(BrowserTransport.attach)
    assert not inspect.iscoroutinefunction(BrowserTransport.send_nowait)  # the optional extras
    assert inspect.iscoroutinefunction(BrowserTransport.wait_closed)
    from tether.asgi import ASGITransport

    assert issubclass(ASGITransport, AsyncTransport)
    assert not inspect.iscoroutinefunction(ASGITransport.send_nowait)
    assert inspect.iscoroutinefunction(ASGITransport.drain)
    assert isinstance(ASGITransport.writing_paused, property)
    try:
        from tether.web import WebSocketTransport
    except ImportError:
        return
    assert issubclass(WebSocketTransport, AsyncTransport)
    # its optional extras, which the session writes with: no task per frame
    assert not inspect.iscoroutinefunction(WebSocketTransport.send_nowait)
    assert inspect.iscoroutinefunction(WebSocketTransport.drain)
    assert isinstance(WebSocketTransport.writing_paused, property)


def test_each_end_satisfies_its_protocol(pair: Pair) -> None:
    for end in pair.ends:
        transport = end.transport
        if end.is_async:
            assert isinstance(transport, AsyncPushTransport if end.pushes else AsyncTransport), end
        else:
            assert isinstance(transport, PushTransport if end.pushes else Transport), end
        for name in ("send", "close") if end.pushes else ("send", "recv", "close"):
            assert inspect.iscoroutinefunction(getattr(transport, name)) == end.is_async, (end, name)
        assert isinstance(transport, CloseDetails) == end.close_details, end
        if end.close_details:
            assert transport.close_code is None, end  # open


@FIRST
def test_binary_messages_arrive_whole_and_in_order(pair: Pair, first: str) -> None:
    sender, receiver = pair.directed(first)
    sender.start()
    messages = [b"", b"x", BIG, *(pattern(i, i * 97) for i in range(60)), b"", pattern(99, 70_000)]
    for data in messages[:3]:  # sent before the receiver starts reading: kept for it
        sender.send(data)
    receiver.start()
    for data in messages[3:]:
        sender.send(data)
    received = receiver.messages(len(messages))
    assert [type(data) for data in received] == [bytes] * len(messages)
    assert [len(data) for data in received] == [len(data) for data in messages]
    assert received == messages
    receiver.assert_quiet()


@FIRST
def test_messages_sent_at_once_from_several_threads_or_tasks_arrive_whole(pair: Pair, first: str) -> None:
    sender, receiver = pair.directed(first)
    pair.start()
    rng = random.Random(2)
    batches = [[pattern(100 * s + i, rng.choice((0, 5, 300, 4096, 70_000, 300_000))) for i in range(40)]
               for s in range(4)]  # fmt: skip
    sender.send_concurrently(batches)
    received = receiver.messages(sum(len(b) for b in batches))
    for batch in batches:  # each whole, and each sender's in its order
        expected = [data for data in batch if len(data) >= 4]
        got = [data for data in received if len(data) >= 4 and data[:4] in {d[:4] for d in expected}]
        assert got == expected
    assert sorted(received) == sorted(data for batch in batches for data in batch)


@FIRST
def test_async_sends_go_out_in_the_order_they_were_started(pair: Pair, first: str) -> None:
    sender, receiver = pair.directed(first)
    if not sender.is_async:
        pytest.skip("an async contract (a blocking send returns once it has sent)")
    pair.start()
    messages = [pattern(i, MiB if i % 5 == 0 else i * 31) for i in range(40)]  # big ones make sends wait

    async def start_all() -> None:
        tasks = [asyncio.ensure_future(sender.transport.send(data)) for data in messages]
        await asyncio.gather(*tasks)

    assert sender.loop is not None
    sender.loop.run(start_all(), timeout=4 * WAIT, what="the sends")
    assert receiver.messages(len(messages)) == messages


@FIRST
def test_a_text_message_arrives_as_str(pair: Pair, first: str) -> None:
    sender, receiver = pair.directed(first)
    pair.start()
    sender.send_text("héllo, wörld")
    sender.send(b"h\xc3\xa9")  # binary that is valid UTF-8 stays bytes
    assert receiver.messages(2) == ["héllo, wörld", b"h\xc3\xa9"]


@FIRST
@pytest.mark.parametrize("how", [(), (4000, "bye")], ids=["plain", "code-and-reason"])
def test_closing_ends_both_sides_after_the_messages_sent_before(
    pair: Pair, first: str, how: tuple[Any, ...]
) -> None:
    closing, other = pair.directed(first)
    pair.start()
    closing.send(b"sent before the close")
    began = time.monotonic()
    closing.close(*how)
    assert other.messages(1) == [b"sent before the close"]
    end = other.wait_end()
    closing.wait_end()
    assert time.monotonic() - began < WAIT
    for end_ in (other, closing):
        end_.check_recv_after_end()
    code, reason = other.observed_close(end)
    expected_code, expected_reason = how or (1000, "")
    if other.code_seen:
        assert code == expected_code, (other, end)
    if other.reason_seen:
        assert (reason or "") == expected_reason, (other, end)
    if closing.close_details:
        assert closing.transport.close_code is not None
    for end_ in pair.ends:
        end_.assert_quiet()
        if end_.pushes:
            assert end_.on_closed_calls == 1


@FIRST
def test_closing_twice_or_after_the_peer_closed_is_harmless(pair: Pair, first: str) -> None:
    closing, other = pair.directed(first)
    pair.start()
    closing.close()
    closing.close()
    closing.close(4000, "again")
    other.wait_end()
    other.close()
    other.close(1001, "")
    closing.wait_end()
    for end in pair.ends:
        end.check_recv_after_end()
        end.assert_quiet()


def test_both_sides_closing_at_once_end_both(pair: Pair) -> None:
    pair.start()
    waits = [pair.a.start_close(4000, "a closes"), pair.b.start_close(4001, "b closes")]
    for wait in waits:
        wait()
    for end in pair.ends:
        end.wait_end()
        end.check_recv_after_end()


@FIRST
def test_sending_after_the_close_raises(pair: Pair, first: str) -> None:
    closing, other = pair.directed(first)
    pair.start()
    closing.close(4000, "bye")
    with pytest.raises(closing.send_error):
        closing.send(b"after my close")
    other.wait_end()
    with pytest.raises(other.send_error):
        other.send(b"after the peer's close")
    closing.wait_end()
    for end in pair.ends:
        end.check_recv_after_end()
        end.assert_quiet()


@FIRST
def test_a_reason_cut_to_fit_a_close_frame_reaches_the_peer(pair: Pair, first: str) -> None:
    """Sessions pass every reason through ``fit_close_reason`` (123 bytes of UTF-8, cut at a
    character boundary): with such a reason the connection closes and the peer sees it.
    (Uncut, ``websockets`` raises ProtocolError('control frame too long') and stays open.)"""
    closing, other = pair.directed(first)
    pair.start()
    long_reason = "é" * 120  # 240 bytes of UTF-8
    reason_sent = fit_close_reason(long_reason)
    assert len(reason_sent.encode()) <= 123 and long_reason.startswith(reason_sent)
    closing.close(4000, reason_sent)
    end = other.wait_end()
    closing.wait_end()
    code, reason = other.observed_close(end)
    if other.code_seen:
        assert code == 4000, (other, end)
    if other.reason_seen:
        assert reason == reason_sent, (other, end)


@FIRST
def test_a_cancelled_recv_leaves_the_transport_usable(pair: Pair, first: str) -> None:
    """``AsyncSession.close`` cancels its reader task, which awaits ``recv``, after closing;
    a reader may also be cancelled before: the transport must still close and end the peer."""
    closing, other = pair.directed(first)
    if not closing.is_async or closing.pushes:
        pytest.skip("an async recv contract")
    other.start()

    async def cancel_a_recv() -> None:
        task = asyncio.ensure_future(closing.transport.recv())
        await asyncio.sleep(0)  # it waits for a message
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    assert closing.loop is not None
    closing.loop.run(cancel_a_recv())
    other.send(b"after the cancel")
    closing.start()
    assert closing.messages(1) == [b"after the cancel"]
    closing.close(4000, "bye")
    closing.wait_end()
    other.wait_end()


# -- push transports ---------------------------------------------------------------------------


@FIRST
def test_a_push_transport_keeps_what_arrives_before_attach_and_its_end(pair: Pair, first: str) -> None:
    sender, receiver = pair.directed(first)
    if not receiver.pushes:
        pytest.skip(f"{receiver.label} does not push (no attach)")
    sender.start()
    messages = [pattern(i, i * 1000) for i in range(20)]
    for data in messages:
        sender.send(data)
    sender.close(4000, "bye")
    deadline = time.monotonic() + WAIT  # until the receiving side has seen it all
    while getattr(getattr(receiver.transport, "state", None), "name", "CLOSED") != "CLOSED":
        assert time.monotonic() < deadline, "the receiving side did not close"
        time.sleep(0.01)
    receiver.start()  # attach: what was kept, in order, then on_closed
    assert receiver.messages(len(messages)) == messages
    end = receiver.wait_end()
    assert receiver.observed_close(end) == (4000, "bye")
    assert receiver.on_closed_calls == 1
    receiver.assert_quiet()


@FIRST
def test_a_push_transport_lets_on_message_send(pair: Pair, first: str) -> None:
    sender, receiver = pair.directed(first)
    if not receiver.pushes:
        pytest.skip(f"{receiver.label} does not push (no attach)")
    # echo from inside on_message (an async push transport: send_nowait, or a send not awaited)
    transport = receiver.transport
    if not receiver.is_async:
        receiver.on_message_hook = transport.send
    elif hasattr(transport, "send_nowait"):
        receiver.on_message_hook = transport.send_nowait
    else:
        receiver.on_message_hook = lambda data: asyncio.ensure_future(transport.send(data))
    pair.start()
    messages = [pattern(i, (i % 7) * 40_000) for i in range(50)]
    for data in messages:
        sender.send(data)
    assert sender.messages(len(messages)) == messages  # the echoes
    assert receiver.messages(len(messages)) == messages
    receiver.assert_quiet()
