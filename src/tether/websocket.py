"""What the native WebSocket flavours share (``tether.sync``, ``tether.aio``, ``tether.web``):
the default port and keepalive, websockets' options for keepalive, the admission of a
handshake, and what a failed handshake means as a Tether error.

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
from typing import Any

from websockets.exceptions import InvalidHandshake, InvalidMessage, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

from .admission import Admission, offered_subprotocols, select_subprotocol
from .exceptions import ConnectionLost, HandshakeFailed
from .options import DEFAULT_KEEPALIVE

__all__ = ["DEFAULT_KEEPALIVE", "DEFAULT_PORT", "admit", "handshake_error", "keepalive_options", "select_ws_subprotocol"]

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


def select_ws_subprotocol(_ws: Any, offered: Any) -> Subprotocol | None:
    """websockets' ``select_subprotocol`` hook: the Tether subprotocol when offered."""
    chosen = select_subprotocol(offered)
    return None if chosen is None else Subprotocol(chosen)
