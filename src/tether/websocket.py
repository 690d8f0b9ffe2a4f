"""What the native WebSocket flavours share (``tether.sync``, ``tether.aio``, ``tether.web``):
the default port and keepalive, websockets' options for keepalive, how the faces' own
transports read ``transport=`` (:class:`SettingsReader`), the admission of a handshake, and
what a failed handshake means as a Tether error.

A flavour opens or accepts a connection with :func:`keepalive_options` (the faces' own
transports, ``tether.sync.transport`` and ``tether.aio.transport``, read them through
``tether.sync.settings`` and ``tether.aio.settings``; ``websockets``' own connections take them
as they are), checks an incoming one with :func:`admit` (any connection
with ``remote_address`` and the handshake ``request``), and turns a failure to open one into a
Tether error with :func:`handshake_error`; then it hands the connection to its flavour's
session.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

from websockets.datastructures import HeadersLike
from websockets.exceptions import InvalidHandshake, InvalidMessage, InvalidStatus, InvalidURI
from websockets.http11 import SERVER, USER_AGENT
from websockets.protocol import Protocol, State
from websockets.typing import Subprotocol

from .admission import Admission, offered_subprotocols, select_subprotocol
from .exceptions import ConnectionLost, HandshakeFailed, UsageError
from .limits import DEFAULT_PAUSE_READING_ABOVE
from .options import DEFAULT_KEEPALIVE

__all__ = ["CLIENT_SETTINGS", "COMMON_SETTINGS", "DEFAULT_KEEPALIVE", "DEFAULT_PORT", "SERVER_SETTINGS", "ConnectionCount",
           "SettingsReader", "TransportSettings", "WebSocketDetails", "admit", "handshake_error", "keepalive_options",
           "select_ws_subprotocol"]  # fmt: skip

log = logging.getLogger("tether")
DEFAULT_PORT = 8765



class _QuietKeepalive(logging.Filter):
    """Keepalive failures are reported to callers as ConnectionLost, not printed."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "keepalive" not in record.getMessage()


_WS_LOGGER = logging.getLogger("tether.websockets")
_WS_LOGGER.addFilter(_QuietKeepalive())


def keepalive_options(keepalive: float | None) -> dict[str, Any]:
    """websockets options for a ping every ``keepalive`` seconds, a peer that has not answered
    one within ``keepalive`` seconds more counted as gone (so detected within about twice
    ``keepalive``), and nothing printed when that happens. ``None`` turns pings off.
    (``keepalive`` was checked with the other options: :class:`tether.Options`.)"""
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


class ConnectionCount:
    """A server's connections open or opening (from the TCP accept until the connection is
    gone), bounded by ``max_connections``: :meth:`take` a place for each accepted connection
    (False: refuse it, :attr:`refusal` is the HTTP answer), :meth:`give_back` when it is gone.
    Refusals are logged at most once every 10 seconds (a flood would fill the log)."""

    def __init__(self, limit: int, where: str) -> None:
        self.limit = limit
        self.count = 0
        self.where = where  # (for the log: a server sets it again once it knows its URL)
        self._lock = threading.Lock()
        self._refused = 0
        self._logged_at = 0.0
        self.text = f"this server has {limit} connections open or opening, its max_connections: try again later\n"
        body = self.text.encode()
        self.refusal = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s") % (len(body), body)  # fmt: skip

    def take(self) -> bool:
        with self._lock:
            if self.count < self.limit:
                self.count += 1
                return True
            self._refused += 1
            now = time.monotonic()
            if now - self._logged_at < 10.0:
                return False
            refused, self._refused, self._logged_at = self._refused, 0, now
        log.warning("%s refused %d connection(s): %d are open or opening (max_connections)", self.where, refused, self.limit)
        return False

    def give_back(self) -> None:
        with self._lock:
            self.count -= 1


def select_ws_subprotocol(_ws: Any, offered: Any) -> Subprotocol | None:
    """websockets' ``select_subprotocol`` hook: the Tether subprotocol when offered."""
    chosen = select_subprotocol(offered)
    return None if chosen is None else Subprotocol(chosen)


# -- the transport= settings of the faces' own transports ----------------------------------------


@dataclass
class TransportSettings:
    """What a connection of the faces' own transports (``tether.sync.transport``,
    ``tether.aio.transport``) is opened or served with: keepalive and timeouts from
    :func:`keepalive_options`, the rest from ``transport=``, by websockets' names. Each face
    subclasses it (``tether.sync.settings.Settings``, ``tether.aio.settings.Settings``)."""

    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float | None = 10.0
    open_timeout: float | None = 10.0
    max_size: int | None = 2**20
    logger: Any = None
    max_queue: Any = None
    pause_reading_above: int = DEFAULT_PAUSE_READING_ABOVE  # (Tether's own: not websockets')
    # a client's
    origin: str | None = None
    additional_headers: HeadersLike | None = None
    user_agent_header: str | None = USER_AGENT
    server_hostname: str | None = None
    sock: socket.socket | None = None  # a client's connected socket, a server's listening one
    # a server's
    server_header: str | None = SERVER
    create_server: dict[str, Any] = field(default_factory=dict)  # what the listening socket is made with


COMMON_SETTINGS = frozenset({"ping_interval", "ping_timeout", "close_timeout", "logger", "max_queue", "sock", "compression",
                             "pause_reading_above"})  # fmt: skip
"""The ``transport=`` settings both faces take, on both sides."""
CLIENT_SETTINGS = COMMON_SETTINGS | {"origin", "additional_headers", "user_agent_header", "server_hostname"}
"""...and a client's."""
SERVER_SETTINGS = COMMON_SETTINGS | {"open_timeout", "server_header", "family", "backlog", "reuse_port"}
"""...and a server's (each face adds its listening socket's own)."""
_OWN_OPTIONS = {"open_timeout": "open_timeout=", "max_size": "max_frame_size=", "ssl": "ssl="}

_S = TypeVar("_S", bound=TransportSettings)


class SettingsReader(Generic[_S]):
    """Reads one face's ``transport=`` option into its settings class ``kind``: the names it
    takes on each side (``client``, ``server``), which of them make the listening socket
    (``create_server``), and a ``check`` of the face's own settings (raises UsageError)."""

    def __init__(self, face: str, kind: type[_S], client: frozenset[str], server: frozenset[str],
                 create_server: tuple[str, ...], check: Callable[[str, _S], None] | None = None) -> None:  # fmt: skip
        self._face, self._kind, self._client, self._server = face, kind, client, server
        self._create_server, self._check = create_server, check

    def client(self, where: str, keepalive: Mapping[str, Any], transport: Mapping[str, Any], *,
               open_timeout: float, max_size: int) -> _S:  # fmt: skip
        """The settings of a client connection: ``keepalive`` (:func:`keepalive_options`),
        then ``transport`` (the option; its settings win), with tether's ``open_timeout`` and
        ``max_frame_size``. Raises UsageError for a setting it does not take."""
        settings = self._read(where, self._client, keepalive, transport)
        settings.open_timeout, settings.max_size = open_timeout, max_size
        return settings

    def server(self, where: str, keepalive: Mapping[str, Any], transport: Mapping[str, Any], *, max_size: int) -> _S:
        """The settings of a server's connections (as :meth:`client`); ``open_timeout`` bounds
        each connection's TLS and HTTP handshake (10 s unless ``transport=`` says)."""
        settings = self._read(where, self._server, keepalive, transport)
        settings.max_size = max_size
        return settings

    def _read(self, where: str, allowed: frozenset[str], base: Mapping[str, Any], given: Mapping[str, Any]) -> _S:
        unknown = sorted(set(given) - allowed)
        if unknown:
            name = unknown[0]
            hint = f" (use tether's {_OWN_OPTIONS[name]} option)" if name in _OWN_OPTIONS else ""
            raise UsageError(
                f"{where}(transport=...) got a setting it does not know: {name!r}{hint}. "
                f"The {self._face}'s transport takes: {', '.join(sorted(allowed))}"
            )
        if given.get("compression") is not None:
            raise UsageError(f"{where}(transport=...): Tether's WebSockets are not compressed")
        merged = {**base, **given}
        known = {f.name for f in fields(self._kind)}
        settings = self._kind(**{k: v for k, v in merged.items() if k in known})
        settings.create_server = {k: merged[k] for k in self._create_server if k in merged}
        if self._check is not None:
            self._check(where, settings)
        return settings


class WebSocketDetails:
    """What a ``websockets`` connection tells, for the faces' own transports (a base of
    ``tether.aio.transport``'s connection classes; ``tether.sync.transport.Connection``, which
    mypyc compiles and so cannot have this interpreted base, tells the same itself): read from
    their websockets ``protocol``."""

    protocol: Protocol
    remote_address: Any

    @property
    def state(self) -> State:
        return self.protocol.state

    @property
    def subprotocol(self) -> Subprotocol | None:
        return self.protocol.subprotocol

    @property
    def close_code(self) -> int | None:
        return self.protocol.close_code

    @property
    def close_reason(self) -> str | None:
        return self.protocol.close_reason

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.remote_address} {self.protocol.state.name}>"
