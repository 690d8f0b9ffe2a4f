"""The async face's server: :func:`serve` and :class:`Server`.

A listening ``asyncio`` server whose connections (``tether.aio.transport``: websockets'
sans-I/O protocol in an ``asyncio.Protocol``) answer the WebSocket upgrade on the loop; once
one is open, the admission (token, origins; a refusal closes with 4401 or 4403 before any
Tether frame) and then a session, to which the connection pushes every message.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as _ssl
from collections.abc import Callable, Generator, Sequence
from typing import Any

from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from ..admission import SUBPROTOCOL, Admission, tls_server_context
from ..options import Options, resolve_options
from ..session import SHUTDOWN_CODE, SHUTDOWN_REASON
from ..websocket import DEFAULT_PORT, ConnectionCount, admit, keepalive_options, select_ws_subprotocol
from .client import dialer
from .session import AsyncPeer, serve_connection
from .settings import Settings, server_settings
from .transport import ServerConnection

__all__ = ["Server", "listen", "serve"]

log = logging.getLogger("tether")


class Server:
    """A listening Tether server on the running event loop.

    Use ``async with tether.aio.serve(root, port=0) as server`` (``server.url``), then
    ``await server.serve_forever()`` or ``await server.close()``.
    """

    def __init__(
        self,
        root: Any,
        host: str,
        port: int,
        options: Options,
    ):
        self._root = root
        self._admission = Admission(options.token, options.origins)
        self._host = host
        self._port = port
        self._options = options
        self._session_options = {
            **options.session(serving=True),
            "run_sync_in_threads": options.run_sync_in_threads,
        }
        self._peers: set[AsyncPeer] = set()
        self._settings = server_settings(
            "tether.aio.serve", keepalive_options(options.keepalive), options.transport, max_size=options.max_frame_size
        )
        self._connections: set[ServerConnection] = set()  # from accept until lost
        self._count = ConnectionCount(options.max_connections, "tether.aio server")  # bounds them
        self._handlers: set[asyncio.Task[None]] = set()
        self._ws: asyncio.Server | None = None
        self.url = ""
        self._closed: asyncio.Event | None = None

    async def start(self) -> Server:
        self._closed = asyncio.Event()
        self._ws = await listen(
            self._host,
            self._port,
            self._opened,
            ssl=tls_server_context(self._options.ssl),
            settings=self._settings,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            select_subprotocol=select_ws_subprotocol,
            connections=self._connections,
            count=self._count,
        )
        sockname = self._ws.sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{'wss' if self._options.ssl is not None else 'ws'}://{shown}:{self.port}"
        self._count.where = f"tether.aio server on {self.url}"
        self._session_options.update(advertise=self._options.advertised(self.url, self.host), dialer=dialer(self._options))
        return self

    @property
    def peers(self) -> list[AsyncPeer]:
        return list(self._peers)

    def _opened(self, connection: ServerConnection) -> None:
        """A connection's WebSocket handshake succeeded (in its ``data_received``): serve it
        in a task of its own."""
        task = asyncio.get_running_loop().create_task(self._handle(connection))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _handle(self, ws: ServerConnection) -> None:
        url, refusal = admit(self._admission, ws)
        if refusal is not None:  # before anything is exposed: no session, no frame
            await ws.close(*refusal)
            return
        if self._closed is not None and self._closed.is_set():
            await ws.close(SHUTDOWN_CODE, SHUTDOWN_REASON)
            return
        try:
            await serve_connection(ws, self._root, url, self._peers, self._session_options)
        except Exception as exc:  # the root factory failed: say so to the client
            log.error("serving %s failed", url, exc_info=True)
            await ws.close(1011, f"root factory failed: {exc}"[:120])

    async def serve_forever(self) -> None:
        """Wait until :meth:`close` is called."""
        assert self._closed is not None, "start the server first"
        await self._closed.wait()

    async def close(self) -> None:
        """Stop listening and close every connection; their pending calls fail."""
        if self._closed is not None:
            self._closed.set()
        if self._ws is not None:
            self._ws.close()  # no more connections
            # tell each client, whose waiting calls then fail saying so
            await asyncio.gather(*(peer.session.close(SHUTDOWN_CODE, SHUTDOWN_REASON) for peer in list(self._peers)),
                                 return_exceptions=True)  # fmt: skip
            for connection in list(self._connections):  # handshaking, refused, or just admitted
                if connection.state.name == "OPEN":
                    await connection.close(SHUTDOWN_CODE, SHUTDOWN_REASON)
                else:
                    connection.abort()
            for task in list(self._handlers):
                await asyncio.wait({task}, timeout=1.0)
            await self._ws.wait_closed()

    def __await__(self) -> Generator[Any, None, Server]:
        return self.start().__await__()

    async def __aenter__(self) -> Server:
        if self._ws is None:
            await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()


def serve(
    root: object, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, options: Options | None = None, **kwargs: Any
) -> Server:
    """Expose ``root`` (an object, or a function called with each new AsyncPeer, possibly
    ``async``) on ``ws://host:port``. Await it or use ``async with``.

    Plain methods run on worker threads so they may block; pass ``run_sync_in_threads=False``
    to run them on the loop when you know they never block (saves a thread hop per call).
    The options are those of :class:`tether.Options`, as keywords or as ``options=``.
    """
    return Server(root, host, port, resolve_options("tether.aio.serve", True, "aio", options, kwargs))


async def listen(host: str, port: int, on_open: Callable[[ServerConnection], None], *,
                 ssl: _ssl.SSLContext | None, settings: Settings, subprotocols: Sequence[Subprotocol] | None = None,
                 select_subprotocol: Callable[[Any, Sequence[Subprotocol]], Subprotocol | None] | None = None,
                 connections: set[ServerConnection] | None = None,
                 count: ConnectionCount | None = None) -> asyncio.Server:  # fmt: skip
    """Listen on ``host:port`` (``settings.sock`` if given); answer each WebSocket upgrade
    (TLS with ``ssl``; the handshake within ``settings.open_timeout``) and call
    ``on_open(connection)`` once it is open. ``connections`` (if given) holds every connection
    from its TCP accept until it is lost, for a server to drop them when it closes; ``count``
    (if given) bounds them (``max_connections``): one more is answered with an HTTP 503 and
    closed, before anything is read."""
    loop = asyncio.get_running_loop()

    def make() -> asyncio.Protocol:
        if count is not None and not count.take():
            return _Refused(count.refusal)
        protocol = ServerProtocol(subprotocols=subprotocols, select_subprotocol=select_subprotocol,
                                  max_size=settings.max_size, logger=settings.logger)  # fmt: skip
        connection = ServerConnection(protocol, settings, on_open)
        if connections is not None:
            connections.add(connection)
            connection._lost.add_done_callback(lambda _: connections.discard(connection))
        if count is not None:
            connection._lost.add_done_callback(lambda _: count.give_back())
        return connection

    options = dict(settings.create_server)
    if ssl is not None and settings.open_timeout is not None:
        options["ssl_handshake_timeout"] = settings.open_timeout
    if settings.sock is not None:
        return await loop.create_server(make, sock=settings.sock, ssl=ssl, **options)
    return await loop.create_server(make, host, port, ssl=ssl, **options)


class _Refused(asyncio.Protocol):
    """A connection over ``max_connections``: it is answered with ``refusal`` (an HTTP 503) and
    closed; nothing it sends is read."""

    def __init__(self, refusal: bytes) -> None:
        self._refusal = refusal

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]
        transport.write(self._refusal)  # type: ignore[attr-defined]
        transport.close()
