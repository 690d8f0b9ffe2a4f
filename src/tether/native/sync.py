"""The sync face over ``websockets.sync``: :func:`serve` and :func:`connect`.

Each connection gets a reader thread (the server's per-connection thread, or one that
:func:`connect` starts); incoming messages run on the process-wide worker pool. Nothing else
needs starting: a client can be called back by the server as soon as it is connected.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable
from ssl import SSLContext
from typing import Any

from websockets.exceptions import InvalidHandshake, InvalidMessage, InvalidStatus, InvalidURI
from websockets.frames import Frame, Opcode
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import ServerConnection
from websockets.sync.server import serve as ws_serve
from websockets.typing import Subprotocol

from ..access import AccessPolicy
from ..admission import (
    SUBPROTOCOL,
    Admission,
    client_subprotocols,
    offered_subprotocols,
    select_subprotocol,
    tls_server_context,
)
from ..exceptions import ConnectionLost, HandshakeFailed, UsageError
from ..limits import Limits
from ..protocol import DEFAULT_MAX_FRAME_SIZE
from ..session import (
    SHUTDOWN_CODE,
    SHUTDOWN_REASON,
    Peer,
    Session,
    describe_keepalive_timeout,
    describe_peer_close,
    is_factory,
    open_session,
)

log = logging.getLogger("tether")
DEFAULT_PORT = 8765
_DATA = (Opcode.BINARY, Opcode.TEXT, Opcode.CONT)


class _Pushing:
    """Makes a ``websockets.sync`` connection push each message to a callback from its own
    receiving thread (see ``Session.start``), instead of queueing it for a reader thread.

    Messages that arrive before :meth:`attach` are kept and delivered, in order, on attach.
    """

    def _init_push(self) -> None:
        self._push_lock = threading.Lock()
        self._on_message: Any = None
        self._on_closed: Any = None
        self._early: list[bytes | str] = []
        self._fragments: list[bytes] = []
        self._fragment_opcode: Opcode | None = None

    def attach(self, on_message: Any, on_closed: Any) -> None:
        with self._push_lock:
            for data in self._early:
                on_message(data)
            self._early = []
            self._on_closed = on_closed
            self._on_message = on_message
        if self.state.name == "CLOSED":  # type: ignore[attr-defined]
            on_closed(self._close_description())

    def process_event(self, event: Any) -> None:
        if not isinstance(event, Frame) or event.opcode not in _DATA:
            super().process_event(event)  # type: ignore[misc]
            return
        if event.opcode is Opcode.CONT or not event.fin:
            if event.opcode is not Opcode.CONT:
                self._fragment_opcode = event.opcode
                self._fragments = []
            self._fragments.append(bytes(event.data))
            if not event.fin:
                return
            data: bytes | str = b"".join(self._fragments)
            opcode, self._fragments = self._fragment_opcode, []
        else:
            data, opcode = bytes(event.data), event.opcode
        if opcode is Opcode.TEXT:
            data = data.decode("utf-8", "replace")  # type: ignore[union-attr]
        handler = self._on_message
        if handler is None:
            with self._push_lock:
                handler = self._on_message
                if handler is None:
                    self._early.append(data)
                    return
        handler(data)

    def close_socket(self) -> None:
        super().close_socket()  # type: ignore[misc]
        with self._push_lock:
            on_closed, self._on_closed = self._on_closed, None
        if on_closed is not None:
            on_closed(self._close_description())

    def _close_description(self) -> str:
        rcvd = self.protocol.close_rcvd  # type: ignore[attr-defined]
        if rcvd is None:
            sent = self.protocol.close_sent  # type: ignore[attr-defined]
            if sent is not None and sent.reason == "keepalive ping timeout":
                return describe_keepalive_timeout(self.ping_interval)  # type: ignore[attr-defined]
            return "the connection dropped without a closing handshake"
        return describe_peer_close(rcvd.code, rcvd.reason)


class PushingClientConnection(_Pushing, ClientConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._init_push()
        super().__init__(*args, **kwargs)


class PushingServerConnection(_Pushing, ServerConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._init_push()
        super().__init__(*args, **kwargs)


DEFAULT_KEEPALIVE = 20.0


class _QuietKeepalive(logging.Filter):
    """Keepalive failures are reported to callers as ConnectionLost, not printed."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "keepalive" not in record.getMessage()


_WS_LOGGER = logging.getLogger("tether.websockets")
_WS_LOGGER.addFilter(_QuietKeepalive())


def keepalive_options(keepalive: float | None) -> dict[str, Any]:
    """websockets options for a ping every ``keepalive`` seconds, a peer that has not answered
    one within ``keepalive`` seconds more counted as gone (so detected within about twice
    ``keepalive``), and nothing printed when that happens. ``None`` turns pings off."""
    if keepalive is not None and (not isinstance(keepalive, (int, float)) or keepalive <= 0):
        raise UsageError(f"keepalive= is a number of seconds above 0, or None for no pings; not {keepalive!r}")
    close_timeout = 10.0 if keepalive is None else min(10.0, keepalive)
    return dict(ping_interval=keepalive, ping_timeout=keepalive, close_timeout=close_timeout, logger=_WS_LOGGER)


def handshake_error(url: str, exc: BaseException, open_timeout: float) -> ConnectionLost:
    """What a failure to open the WebSocket to ``url`` means, as a Tether error."""
    if isinstance(exc, InvalidURI):
        return HandshakeFailed(f"{url!r} is not a WebSocket URL: use ws://HOST:PORT or wss://HOST:PORT")
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return HandshakeFailed(
            f"{url} answered HTTP {status} {exc.response.reason_phrase} instead of opening a "
            "WebSocket: not a Tether server (check the host, port and path)"
        )
    if isinstance(exc, TimeoutError):
        return HandshakeFailed(f"{url} did not complete a WebSocket handshake within {open_timeout:g} s")
    if isinstance(exc, (InvalidHandshake, InvalidMessage)):
        return HandshakeFailed(f"{url} did not answer with a WebSocket handshake ({exc}): not a Tether server")
    if isinstance(exc, OSError):
        return ConnectionLost(f"cannot connect to {url}: {exc}")
    return HandshakeFailed(f"cannot open a WebSocket to {url}: {type(exc).__name__}: {exc}")


def admit(admission: Admission, ws: Any) -> tuple[str, tuple[int, str] | None]:
    """A websockets connection's description, and the admission's verdict on its handshake
    request (``None``, or the close code and reason to refuse it with; refusals are logged)."""
    remote = ws.remote_address
    url = f"client {remote[0]}:{remote[1]}" if remote else "a client"
    headers = ws.request.headers if ws.request is not None else None
    refusal = admission.check(
        headers.get("Origin") if headers is not None else None,
        offered_subprotocols(headers.get_all("Sec-WebSocket-Protocol") if headers is not None else []),
    )
    if refusal is not None:
        log.info("refused %s: %s", url, refusal[1])
    return url, refusal


def _select(_ws: Any, offered: Any) -> Subprotocol | None:
    chosen = select_subprotocol(offered)
    return None if chosen is None else Subprotocol(chosen)


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
        trusted: bool = False,
        policy: AccessPolicy | None = None,
        send_tracebacks: bool = False,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        marker_base: int | None = None,
        timeout: float | None = None,
        accept_code: bool = False,
        passing: dict[type, str] | None = None,
        limits: Limits | None = None,
        token: str | None = None,
        origins: Iterable[str] | None = None,
        ssl: SSLContext | None = None,
        keepalive: float | None = DEFAULT_KEEPALIVE,
        **ws_options: Any,
    ) -> None:
        self._root = root
        self._admission = Admission(token, origins)
        self._options: dict[str, Any] = dict(
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
        self._peers: set[Peer] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        if ":" in host:  # an IPv6 address: socket.create_server needs the family said
            ws_options.setdefault("family", socket.AF_INET6)
        self._ws = ws_serve(
            self._handle,
            host,
            port,
            compression=None,
            max_size=max_frame_size,
            create_connection=PushingServerConnection,
            ssl=tls_server_context(ssl),
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            select_subprotocol=_select,
            **{**keepalive_options(keepalive), **ws_options},  # transport settings given win
        )
        sockname = self._ws.socket.getsockname()
        self.host, self.port = sockname[0], sockname[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{'wss' if ssl is not None else 'ws'}://{shown}:{self.port}"
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


def serve(root: object, host: str = "127.0.0.1", port: int = DEFAULT_PORT, **options: Any) -> Server:
    """Expose ``root`` on ``ws://host:port`` and return the running :class:`Server`.

    ``root`` is an object, or a factory (a function) called with each new :class:`Peer`,
    whose result is that peer's root; server code can keep the peer to call the client back.
    ``port=0`` picks a free port (see ``server.url``). Options: ``trusted`` (let peers reach
    private names), ``send_tracebacks`` (default False: tracebacks show your source and paths
    to any client; turn it on while developing), ``max_frame_size`` (bytes, default 16 MiB),
    ``timeout`` (seconds for calls the server makes to clients; default none),
    ``accept_code`` (define classes and functions that clients send by value: only for
    clients you trust, since that runs their code; default False), ``passing`` (per-class
    ``"value"`` or ``"reference"``, overriding how instances travel), ``policy`` (an
    :class:`~tether.AccessPolicy`, e.g. ``AccessPolicy(allow=[Point])``), ``limits`` (a
    :class:`~tether.Limits`), ``token`` (a secret every client must give: see
    ``docs/security.md``), ``origins`` (browser origins admitted; default none: native
    clients only), ``ssl`` (an ``ssl.SSLContext``: serve ``wss://``).
    """
    return Server(root, host, port, **options)


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
