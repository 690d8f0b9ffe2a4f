"""The sync face's client over ``websockets.sync``: :func:`connect`.

The connection pushes each message to its session from websockets' receiving thread; nothing
else needs starting: a client can be called back by the server as soon as it is connected.
"""

from __future__ import annotations

from ssl import SSLContext
from typing import Any

from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from ..access import AccessPolicy
from ..admission import client_subprotocols
from ..websocket import DEFAULT_KEEPALIVE, handshake_error, keepalive_options
from ..limits import Limits
from ..protocol import DEFAULT_MAX_FRAME_SIZE
from .session import Peer, open_session
from .transport import PushingClientConnection

__all__ = ["connect"]


def connect(
    url: str,
    root: object = None,
    *,
    trusted: bool = False,
    policy: AccessPolicy | None = None,
    send_tracebacks: bool = True,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    marker_base: int | None = None,
    timeout: float | None = None,
    open_timeout: float = 10.0,
    accept_code: bool = False,
    passing: dict[type, str] | None = None,
    limits: Limits | None = None,
    token: str | None = None,
    ssl: SSLContext | None = None,
    keepalive: float | None = DEFAULT_KEEPALIVE,
    **ws_options: Any,
) -> Peer:
    """Connect to a Tether server; return the :class:`Peer` (``peer.root`` is its root proxy).

    ``root`` is exposed to the server as this side's root object. ``timeout`` bounds each call
    (default none: long calls are fine). ``accept_code`` lets the server send classes and
    functions by value that this side then defines (runs); ``passing`` overrides how
    instances of given classes travel. ``token`` is the server's secret, if it has one (a
    wrong one raises :class:`~tether.Refused`); ``ssl`` an ``ssl.SSLContext`` for ``wss://``
    (the default context verifies the server against the system's CAs). The server is an
    untrusted peer too: ``policy``/``trusted`` say what it may reach here. Use as a context
    manager, or call ``peer.close()``.
    """
    subprotocols = [Subprotocol(p) for p in client_subprotocols(token)]  # checks the token first
    try:
        ws = ws_connect(
            url,
            compression=None,
            max_size=max_frame_size,
            open_timeout=open_timeout,
            legacy=True,  # we own the connection's lifetime (Peer.close), not a with block
            create_connection=PushingClientConnection,
            subprotocols=subprotocols,
            ssl=ssl,
            **{**keepalive_options(keepalive), **ws_options},  # transport settings given win
        )
    except Exception as exc:
        raise handshake_error(url, exc, open_timeout) from exc
    return open_session(
        ws,
        root=root,
        url=url,
        open_timeout=open_timeout,
        trusted=trusted,
        policy=policy,
        send_tracebacks=send_tracebacks,
        max_frame_size=max_frame_size,
        marker_base=marker_base,
        timeout=timeout,
        accept_code=accept_code,
        passing=passing,
        limits=limits,
    )
