"""The async face's client over ``websockets`` (asyncio): :func:`connect`."""

from __future__ import annotations

from ssl import SSLContext
from typing import Any

from websockets.asyncio.client import connect as ws_connect
from websockets.typing import Subprotocol

from ..access import AccessPolicy
from ..admission import client_subprotocols
from ..websocket import DEFAULT_KEEPALIVE, handshake_error, keepalive_options
from ..limits import Limits
from ..protocol import DEFAULT_MAX_FRAME_SIZE
from .session import AsyncPeer, ConnectingBase, open_async_session

__all__ = ["connect"]


class _Connecting(ConnectingBase):
    """What :func:`connect` returns: await it, or use it with ``async with``."""

    def __init__(
        self, url: str, root: object, options: dict[str, Any], ws_options: dict[str, Any], token: str | None
    ):
        self._subprotocols = [Subprotocol(p) for p in client_subprotocols(token)]
        self._url = url
        self._root = root
        self._options = options
        self._ws_options = ws_options
        self._peer: AsyncPeer | None = None

    async def _open(self) -> AsyncPeer:
        try:
            ws = await ws_connect(
                self._url,
                compression=None,
                max_size=self._options["max_frame_size"],
                open_timeout=self._options["open_timeout"],
                subprotocols=self._subprotocols,
                **self._ws_options,
            )
        except Exception as exc:
            raise handshake_error(self._url, exc, self._options["open_timeout"]) from exc
        return await open_async_session(ws, root=self._root, url=self._url, **self._options)



def connect(
    url: str,
    root: object = None,
    *,
    trusted: bool = False,
    policy: AccessPolicy | None = None,
    send_tracebacks: bool = True,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    timeout: float | None = None,
    open_timeout: float = 10.0,
    run_sync_in_threads: bool = True,
    accept_code: bool = False,
    passing: dict[type, str] | None = None,
    limits: Limits | None = None,
    token: str | None = None,
    ssl: SSLContext | None = None,
    keepalive: float | None = DEFAULT_KEEPALIVE,
    **ws_options: Any,
) -> _Connecting:
    """Connect to a Tether server from async code.

    ``async with tether.aio.connect(url) as peer: await peer.root.add(3, 4)``, or
    ``peer = await tether.aio.connect(url)`` and later ``await peer.close()``. Options are
    those of :func:`tether.connect` (``token``, ``ssl`` for ``wss://``, ``policy``...).
    """
    if ssl is not None:
        ws_options["ssl"] = ssl
    ws_options = {**keepalive_options(keepalive), **ws_options}  # transport settings given win
    options = dict(
        policy=policy,
        limits=limits,
        trusted=trusted,
        send_tracebacks=send_tracebacks,
        max_frame_size=max_frame_size,
        timeout=timeout,
        open_timeout=open_timeout,
        run_sync_in_threads=run_sync_in_threads,
        accept_code=accept_code,
        passing=passing,
    )
    return _Connecting(url, root, options, ws_options, token)
