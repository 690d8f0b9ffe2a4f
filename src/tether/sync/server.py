"""The sync face's server over ``websockets.sync``: :func:`serve` and :class:`Server`.

Each connection is read by the server's per-connection thread (websockets' own), which pushes
every message to its :class:`~tether.sync.session.Session`; incoming messages run on the
process-wide worker pool.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from websockets.sync.server import ServerConnection
from websockets.sync.server import serve as ws_serve
from websockets.typing import Subprotocol

from ..admission import SUBPROTOCOL, Admission, tls_server_context
from ..options import Options, resolve_options
from ..session import (
    SHUTDOWN_CODE,
    SHUTDOWN_REASON,
    is_factory,
)
from ..websocket import DEFAULT_PORT, admit, keepalive_options, select_ws_subprotocol
from .session import Peer, Session
from .transport import PushingServerConnection

__all__ = ["Server", "serve"]

log = logging.getLogger("tether")


class Server:
    """A listening Tether server running in a background thread.

    ``url`` is where clients connect (``ws://127.0.0.1:PORT``). Stop it with :meth:`close`
    or by leaving a ``with`` block; :meth:`serve_forever` blocks until then. ``peers`` lists
    the connected peers.
    """

    def __init__(
        self,
        root: Any,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        options: Options | None = None,
        **kwargs: Any,
    ) -> None:
        o = resolve_options("tether.serve", True, "sync", options, kwargs)
        self._root = root
        self._admission = Admission(o.token, o.origins)
        self._options: dict[str, Any] = o.session(serving=True)
        self._peers: set[Peer] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        transport = dict(o.transport)
        if ":" in host:  # an IPv6 address: socket.create_server needs the family said
            transport.setdefault("family", socket.AF_INET6)
        self._ws = ws_serve(
            self._handle,
            host,
            port,
            compression=None,
            max_size=o.max_frame_size,
            create_connection=PushingServerConnection,
            ssl=tls_server_context(o.ssl),
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            select_subprotocol=select_ws_subprotocol,
            **{**keepalive_options(o.keepalive), **transport},  # transport settings given win
        )
        sockname = self._ws.socket.getsockname()
        self.host, self.port = sockname[0], sockname[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{'wss' if o.ssl is not None else 'ws'}://{shown}:{self.port}"
        self._thread = threading.Thread(target=self._ws.serve_forever, name="tether-server", daemon=True)
        self._thread.start()

    @property
    def peers(self) -> list[Peer]:
        with self._lock:
            return list(self._peers)

    def _handle(self, ws: ServerConnection) -> None:
        url, refusal = admit(self._admission, ws)
        if refusal is not None:  # before anything is exposed: no session, no frame
            ws.close(*refusal)
            return
        session = Session(ws, client=False, url=url, **self._options)
        peer = Peer(session)
        try:
            session.protocol.root = self._root(peer) if is_factory(self._root) else self._root
        except Exception as exc:
            ws.close(1011, f"root factory failed: {exc}"[:120])
            raise
        with self._lock:
            self._peers.add(peer)
        try:
            session.start()
            session.wait_closed()
        finally:
            with self._lock:
                self._peers.discard(peer)

    def serve_forever(self) -> None:
        """Block until :meth:`close` is called (from another thread or a signal handler)."""
        self._closed.wait()

    def close(self) -> None:
        """Stop listening and close every connection; their pending calls fail."""
        if self._closed.is_set():
            return
        self._closed.set()
        for peer in self.peers:  # tell each client, whose waiting calls then fail saying so
            peer.session.close(SHUTDOWN_CODE, SHUTDOWN_REASON)
        self._ws.shutdown()  # (it would close them with 1001 alone)
        for peer in self.peers:  # any that connected meanwhile
            peer.session.close(SHUTDOWN_CODE, SHUTDOWN_REASON)
        self._thread.join(5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<tether.Server {self.url} peers={len(self._peers)}>"


def serve(
    root: object, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, options: Options | None = None, **kwargs: Any
) -> Server:
    """Expose ``root`` on ``ws://host:port`` and return the running :class:`Server`.

    ``root`` is an object, or a factory (a function) called with each new :class:`Peer`,
    whose result is that peer's root; server code can keep the peer to call the client back.
    ``port=0`` picks a free port (see ``server.url``). The options are those of
    :class:`tether.Options`, as keywords or as ``options=``: ``token`` (a secret every client
    must give: see ``docs/security.md``), ``origins`` (browser origins admitted; default none:
    native clients only), ``ssl`` (serve ``wss://``), ``policy``/``trusted``/``accept_code``
    (what clients may reach and define here), ``limits``, ``send_tracebacks`` (default off:
    tracebacks show your source and paths to any client; turn it on while developing),
    ``timeout`` (seconds for calls the server makes to clients).
    """
    return Server(root, host, port, options=options, **kwargs)
