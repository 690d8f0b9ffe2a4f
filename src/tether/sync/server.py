"""The sync face's server: :func:`serve` and :class:`Server`.

A listening socket with an accepting thread, and a thread per connection: it answers the
WebSocket upgrade (``tether.sync.transport``: websockets' sans-I/O protocol over the socket),
checks the admission (token, origins; a refusal closes with 4401 or 4403 before any Tether
frame), then reads the connection for the rest of its life, pushing every message to its
:class:`~tether.sync.session.Session`; incoming messages run on the process-wide worker pool.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from typing import Any

from websockets.typing import Subprotocol

from ..admission import SUBPROTOCOL, Admission, tls_server_context
from ..options import Options, resolve_options
from ..session import (
    SHUTDOWN_CODE,
    SHUTDOWN_REASON,
    is_factory,
)
from ..websocket import DEFAULT_PORT, ConnectionCount, admit, keepalive_options, select_ws_subprotocol
from .client import dialer
from .session import Peer, Session
from .settings import listen, server_settings
from .transport import PushingServerConnection, accept_connection

__all__ = ["Server", "serve"]

log = logging.getLogger("tether")

_SUBPROTOCOLS = [Subprotocol(SUBPROTOCOL)]


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
        self._settings = server_settings(
            "tether.serve", keepalive_options(o.keepalive), o.transport, max_size=o.max_frame_size
        )
        self._ssl = tls_server_context(o.ssl)
        self._peers: set[Peer] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._listener = listen(host, port, self._settings)
        sockname = self._listener.getsockname()
        self.host, self.port = sockname[0], sockname[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{'wss' if o.ssl is not None else 'ws'}://{shown}:{self.port}"
        self._connections = ConnectionCount(o.max_connections, f"tether server on {self.url}")
        self._options.update(advertise=o.advertised(self.url, self.host), dialer=dialer(o))
        self._wake_up, self._waker = socket.socketpair()  # close() wakes the accepting thread
        self._thread = threading.Thread(target=self._accept, name="tether-server", daemon=True)
        self._thread.start()

    @property
    def peers(self) -> list[Peer]:
        with self._lock:
            return list(self._peers)

    def _accept(self) -> None:
        """The accepting thread: a thread per accepted connection, until :meth:`close`."""
        listener = self._listener
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(listener, selectors.EVENT_READ)
                selector.register(self._wake_up, selectors.EVENT_READ)
                while not self._closed.is_set():
                    ready = selector.select()
                    if self._closed.is_set() or any(key.fileobj is self._wake_up for key, _ in ready):
                        break
                    try:
                        sock, address = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as exc:  # out of file descriptors, say: wait a little
                        if self._closed.is_set():
                            break
                        log.warning("tether server on %s could not accept a connection: %s", self.url, exc)
                        time.sleep(0.1)
                        continue
                    if not self._connections.take():  # before any thread or read: an HTTP 503
                        self._refuse(sock)
                        continue
                    thread = threading.Thread(
                        target=self._serve_socket, args=(sock, address), name="tether-connection", daemon=True
                    )
                    thread.start()
        finally:
            for sock in (listener, self._wake_up, self._waker):
                with contextlib.suppress(OSError):
                    sock.close()

    def _refuse(self, sock: socket.socket) -> None:
        """A connection over ``max_connections``: an HTTP 503 saying so (without TLS: with it,
        the socket is only closed), written without waiting, then closed."""
        try:
            if self._ssl is None:
                sock.setblocking(False)
                sock.send(self._connections.refusal)
        except OSError:
            pass
        finally:
            sock.close()

    def _serve_socket(self, sock: socket.socket, address: Any) -> None:
        """One connection's thread: its place among ``max_connections`` until it is gone."""
        try:
            self._serve_connection(sock, address)
        finally:
            self._connections.give_back()

    def _serve_connection(self, sock: socket.socket, address: Any) -> None:
        """The handshake, the admission, then its receiving loop."""
        try:
            connection = accept_connection(
                sock, ssl_context=self._ssl, settings=self._settings, subprotocols=_SUBPROTOCOLS,
                select_subprotocol=select_ws_subprotocol,
            )  # fmt: skip
        except Exception as exc:  # a client that failed its handshake: nothing to serve
            log.debug("opening handshake with %s failed: %s", address, exc)
            return
        if connection is None:  # not a WebSocket request: answered with an HTTP error
            return
        peer = None
        try:
            peer = self._start(connection)
        finally:
            try:
                connection.run()  # until the connection ends (at once if it was refused)
            finally:
                if peer is not None:
                    with self._lock:
                        self._peers.discard(peer)

    def _start(self, connection: PushingServerConnection) -> Peer | None:
        """Admit the connection and start its session (or close it: a refusal, a shutdown, a
        root factory that failed)."""
        url, refusal = admit(self._admission, connection)
        if refusal is not None:  # before anything is exposed: no session, no frame
            connection.close(*refusal)
            return None
        if self._closed.is_set():
            connection.close(SHUTDOWN_CODE, SHUTDOWN_REASON)
            return None
        session = Session(connection, client=False, url=url, **self._options)
        peer = Peer(session)
        try:
            session.protocol.root = self._root(peer) if is_factory(self._root) else self._root
        except Exception as exc:
            log.error("root factory failed for %s", url, exc_info=True)
            connection.close(1011, f"root factory failed: {exc}"[:120])
            return None
        with self._lock:
            self._peers.add(peer)
        session.start()  # attach: the receiving loop (in this thread, next) pushes to it
        if self._closed.is_set():  # close() may have missed it
            session.close(SHUTDOWN_CODE, SHUTDOWN_REASON)
        return peer

    def serve_forever(self) -> None:
        """Block until :meth:`close` is called (from another thread or a signal handler)."""
        self._closed.wait()

    def close(self) -> None:
        """Stop listening and close every connection; their pending calls fail."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError):
            self._waker.send(b"x")  # stop accepting
        for peer in self.peers:  # tell each client, whose waiting calls then fail saying so
            peer.session.close(SHUTDOWN_CODE, SHUTDOWN_REASON)
        self._thread.join(5)
        for peer in self.peers:  # any that connected meanwhile
            peer.session.close(SHUTDOWN_CODE, SHUTDOWN_REASON)

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
    native clients only), ``max_connections`` (open or opening at once, 1,024: a thread each;
    one more gets an HTTP 503), ``ssl`` (serve ``wss://``), ``policy``/``trusted``/``accept_code``
    (what clients may reach and define here), ``limits``, ``send_tracebacks`` (default off:
    tracebacks show your source and paths to any client; turn it on while developing),
    ``timeout`` (seconds for calls the server makes to clients).
    """
    return Server(root, host, port, options=options, **kwargs)
