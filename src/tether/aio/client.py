"""The async face's client over ``websockets`` (asyncio): :func:`connect`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import connect as ws_connect
from websockets.typing import Subprotocol

from ..admission import client_subprotocols
from ..options import Options, resolve_options
from ..websocket import handshake_error, keepalive_options
from .session import AsyncPeer, ConnectingBase, open_async_session

__all__ = ["connect", "dialer"]


class _Connecting(ConnectingBase):
    """What :func:`connect` returns: await it, or use it with ``async with``."""

    def __init__(self, url: str, root: object, options: Options):
        self._subprotocols = [Subprotocol(p) for p in client_subprotocols(options.token)]
        self._url = url
        self._root = root
        self._options = options
        self._peer: AsyncPeer | None = None

    async def _open(self) -> AsyncPeer:
        o = self._options
        try:
            ws = await ws_connect(
                self._url,
                compression=None,
                max_size=o.max_frame_size,
                open_timeout=o.open_timeout,
                subprotocols=self._subprotocols,
                ssl=o.ssl,
                **{**keepalive_options(o.keepalive), **o.transport},  # transport settings given win
            )
        except Exception as exc:
            raise handshake_error(self._url, exc, o.open_timeout) from exc
        return await open_async_session(
            ws,
            root=self._root,
            url=self._url,
            open_timeout=o.open_timeout,
            run_sync_in_threads=o.run_sync_in_threads,
            dialer=dialer(o),
            **o.session(serving=False),
        )


def connect(url: str, root: object = None, *, options: Options | None = None, **kwargs: Any) -> _Connecting:
    """Connect to a Tether server from async code.

    ``async with tether.aio.connect(url) as peer: await peer.root.add(3, 4)``, or
    ``peer = await tether.aio.connect(url)`` and later ``await peer.close()``. The options
    (``token``, ``ssl`` for ``wss://``, ``policy``, ``timeout``, ``run_sync_in_threads``...) are
    those of :class:`tether.Options`, as keywords or as ``options=``.
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
