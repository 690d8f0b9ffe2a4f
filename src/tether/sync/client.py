"""The sync face's client: :func:`connect`.

The connection (``tether.sync.transport``: websockets' sans-I/O protocol over a socket) pushes
each message to its session from its receiving thread; nothing else needs starting: a client
can be called back by the server as soon as it is connected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from websockets.typing import Subprotocol

from ..admission import client_subprotocols
from ..options import Options, resolve_options
from ..websocket import handshake_error, keepalive_options
from .session import Peer, open_session
from .settings import client_settings
from .transport import open_connection

__all__ = ["connect", "dialer"]


def connect(url: str, root: object = None, *, options: Options | None = None, **kwargs: Any) -> Peer:
    """Connect to a Tether server; return the :class:`Peer` (``peer.root`` is its root proxy).

    ``root`` is exposed to the server as this side's root object. The options are those of
    :class:`tether.Options`, as keywords or as ``options=``: ``timeout`` bounds each call
    (default none: long calls are fine); ``token`` is the server's secret, if it has one (a
    wrong one raises :class:`~tether.Refused`); ``ssl`` an ``ssl.SSLContext`` for ``wss://``
    (the default context verifies the server against the system's CAs). The server is an
    untrusted peer too: ``policy``/``trusted`` say what it may reach here. Use as a context
    manager, or call ``peer.close()``.
    """
    o = resolve_options("tether.connect", False, "sync", options, kwargs)
    settings = client_settings(
        "tether.connect", keepalive_options(o.keepalive), o.transport, open_timeout=o.open_timeout,
        max_size=o.max_frame_size,
    )  # fmt: skip
    subprotocols = [Subprotocol(p) for p in client_subprotocols(o.token)]
    try:
        connection = open_connection(url, subprotocols=subprotocols, ssl_context=o.ssl, settings=settings)
    except Exception as exc:
        raise handshake_error(url, exc, o.open_timeout) from exc
    return open_session(
        connection, root=root, url=url, open_timeout=o.open_timeout, dialer=dialer(o), **o.session(serving=False)
    )


def dialer(o: Options) -> Callable[[str], Any]:
    """How a connection made with options ``o`` opens another, to be introduced to an object's
    owner (three-party handoff): a client connection exposing nothing, with ``o`` minus its
    token (:meth:`Options.for_dialing`). Gives the new connection's session."""
    dial_options = o.for_dialing()

    def dial(url: str) -> Any:
        return connect(url, options=dial_options).session

    return dial
