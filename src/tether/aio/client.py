"""The async face's client: :func:`connect`.

The connection (``tether.aio.transport``: websockets' sans-I/O protocol in an
``asyncio.Protocol``) pushes each message to its session from the event loop's callback; a
client can be called back by the server as soon as it is connected.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from websockets.client import ClientProtocol
from websockets.typing import Origin, Subprotocol
from websockets.uri import parse_uri

from ..admission import client_subprotocols
from ..options import Options, resolve_options
from ..websocket import handshake_error, keepalive_options
from .session import AsyncPeer, ConnectingBase, open_async_session
from .settings import Settings, client_settings
from .transport import ClientConnection

__all__ = ["connect", "dialer", "open_connection"]


class _Connecting(ConnectingBase):
    """What :func:`connect` returns: await it, or use it with ``async with``."""

    def __init__(self, url: str, root: object, options: Options):
        self._subprotocols = [Subprotocol(p) for p in client_subprotocols(options.token)]
        self._settings = client_settings(
            "tether.aio.connect", keepalive_options(options.keepalive), options.transport,
            open_timeout=options.open_timeout, max_size=options.max_frame_size,
        )  # fmt: skip
        self._url = url
        self._root = root
        self._options = options
        self._peer: AsyncPeer | None = None

    async def _open(self) -> AsyncPeer:
        o = self._options
        try:
            connection = await open_connection(
                self._url, subprotocols=self._subprotocols, ssl=o.ssl, settings=self._settings
            )
        except Exception as exc:
            raise handshake_error(self._url, exc, o.open_timeout) from exc
        try:
            return await open_async_session(
                connection,
                root=self._root,
                url=self._url,
                open_timeout=o.open_timeout,
                run_sync_in_threads=o.run_sync_in_threads,
                dialer=dialer(o),
                **o.session(serving=False),
            )
        except BaseException:
            connection.abort()
            raise


def connect(url: str, root: object = None, *, options: Options | None = None, **kwargs: Any) -> _Connecting:
    """Connect to a Tether server from async code.

    ``async with tether.aio.connect(url) as peer: await peer.root.add(3, 4)``, or
    ``peer = await tether.aio.connect(url)`` and later ``await peer.close()``. The options
    (``token``, ``ssl`` for ``wss://``, ``policy``, ``timeout``, ``run_sync_in_threads``...) are
    those of :class:`tether.Options`, as keywords or as ``options=``; ``transport=`` takes the
    settings of ``tether.aio.settings.CLIENT_SETTINGS`` (an unknown one raises UsageError).
    """
    return _Connecting(url, root, resolve_options("tether.aio.connect", False, "aio", options, kwargs))


def dialer(o: Options) -> Callable[[str], Awaitable[Any]]:
    """How a connection made with options ``o`` opens another, to be introduced to an object's
    owner (three-party handoff): a client connection exposing nothing, with ``o`` minus its
    token (:meth:`Options.for_dialing`). Gives the new connection's session."""
    dial_options = o.for_dialing()

    async def dial(url: str) -> Any:
        return (await connect(url, options=dial_options)).session

    return dial


async def open_connection(url: str, *, subprotocols: Sequence[Subprotocol] | None, ssl: _ssl.SSLContext | None,
                          settings: Settings) -> ClientConnection:  # fmt: skip
    """Connect to ``url`` (``ws://`` or ``wss://``) and open the WebSocket (TLS with ``ssl``,
    or the default context for ``wss://``; the HTTP upgrade offering ``subprotocols``), all
    within ``settings.open_timeout``.

    Raises what websockets' ``connect`` raises for the same failures (``InvalidURI``,
    ``InvalidStatus``, ``InvalidHandshake``, ``InvalidMessage``, ``TimeoutError``,
    ``OSError``...), which :func:`tether.websocket.handshake_error` turns into Tether errors."""
    ws_uri = parse_uri(url)
    if not ws_uri.secure and ssl is not None:
        raise ValueError("ssl= is for wss:// URLs, not ws://")
    loop = asyncio.get_running_loop()
    origin = None if settings.origin is None else Origin(settings.origin)
    protocol = ClientProtocol(ws_uri, origin=origin, subprotocols=subprotocols, max_size=settings.max_size,
                              logger=settings.logger)  # fmt: skip
    connection = ClientConnection(protocol, settings)
    tls: dict[str, Any] = {}
    if ws_uri.secure:
        tls = {"ssl": ssl if ssl is not None else _ssl.create_default_context(),
               "server_hostname": settings.server_hostname or ws_uri.host}  # fmt: skip
        if settings.open_timeout is not None:
            tls["ssl_handshake_timeout"] = settings.open_timeout
    try:
        async with asyncio.timeout(settings.open_timeout):
            if settings.sock is not None:
                await loop.create_connection(lambda: connection, sock=settings.sock, **tls)
            else:
                await loop.create_connection(lambda: connection, ws_uri.host, ws_uri.port, **tls)
            opening = connection._opening
            if opening is not None:
                await asyncio.shield(opening)
    except BaseException:
        connection.abort()
        raise
    return connection
