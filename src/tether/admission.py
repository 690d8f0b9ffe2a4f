"""Who may open a conversation: the token and origin checks a server makes before it exposes
anything, and how a client offers its token. Sans-I/O: the edges pass in the request's
``Origin`` header and offered WebSocket subprotocols, and close with the code returned.

A token travels as a WebSocket subprotocol, ``tether.token.`` followed by the token's UTF-8
bytes in unpadded base64url, offered after the plain ``tether`` subprotocol (which the server
selects). Browsers cannot set other headers on a WebSocket, and a subprotocol stays out of
URLs, access logs and browser history. ``docs/security.md`` says why; ``docs/protocol.md``
section 2 gives the bytes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .exceptions import UsageError

if TYPE_CHECKING:  # ssl is an optional package in Pyodide: the page never needs it
    from ssl import SSLContext

__all__ = ["CLOSE_FORBIDDEN_ORIGIN", "CLOSE_UNAUTHORIZED", "FORBIDDEN_ORIGIN_REASON", "REFUSAL_CODES", "SUBPROTOCOL", "TOKEN_PREFIX", "UNAUTHORIZED_REASON", "Admission", "client_subprotocols", "offered_subprotocols", "own_origins", "select_subprotocol", "tls_server_context"]

SUBPROTOCOL = "tether"
TOKEN_PREFIX = "tether.token."
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
REFUSAL_CODES = (CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN_ORIGIN)
UNAUTHORIZED_REASON = "tether: authentication failed"
FORBIDDEN_ORIGIN_REASON = "tether: origin not allowed"
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def _check_token(token: str | None) -> None:
    if token is not None and (not isinstance(token, str) or not token):
        raise UsageError("token= must be a non-empty str (for example secrets.token_urlsafe(32))")


def client_subprotocols(token: str | None) -> list[str]:
    """The subprotocols a client offers: ``tether``, and its token when it has one."""
    _check_token(token)
    if token is None:
        return [SUBPROTOCOL]
    encoded = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
    return [SUBPROTOCOL, TOKEN_PREFIX + encoded]


def offered_subprotocols(header_values: Iterable[str]) -> list[str]:
    """The subprotocols of ``Sec-WebSocket-Protocol`` header values (comma-separated)."""
    return [p.strip() for value in header_values for p in value.split(",") if p.strip()]


def select_subprotocol(offered: Iterable[str]) -> str | None:
    """What a server answers: ``tether`` when offered, else none (a peer that offers no
    subprotocol, such as a Smalltalk Tether, is served all the same)."""
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


def _offered_token(offered: Iterable[str]) -> bytes | None:
    for protocol in offered:
        if protocol.startswith(TOKEN_PREFIX):
            encoded = protocol[len(TOKEN_PREFIX) :]
            try:
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            except (binascii.Error, ValueError):
                return b""
    return None


def _normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def own_origins(scheme: str, host: str, port: int) -> list[str]:
    """The origins of a page that this server itself serves at ``scheme://host:port``
    (with the other loopback names when ``host`` is a loopback address)."""
    hosts = [f"[{host}]" if ":" in host and not host.startswith("[") else host]
    if host in _LOOPBACK:
        hosts = ["127.0.0.1", "localhost", "[::1]"]
    return [f"{scheme}://{h}:{port}" for h in hosts]


def tls_server_context(context: SSLContext | None) -> SSLContext | None:
    """The server's TLS context, with TLS 1.3 session tickets turned off: websockets' sync
    client (17.x) can deadlock when its reading thread takes the tickets while the connecting
    thread writes its handshake (about one connection in a few hundred). Tickets only speed up
    a client's reconnection; a context with tickets already off is left as it is."""
    if context is not None and context.num_tickets:
        context.num_tickets = 0
    return context


class Admission:
    """A server's checks of each WebSocket request, made before a session exists.

    ``token``: the secret a client must offer (compared in constant time); ``None`` admits
    any client. ``origins``: the browser origins admitted (``"scheme://host:port"``, or
    ``"*"`` for any) besides those of ``own`` (the pages ``serve_web`` serves itself); a
    request without an ``Origin`` header (a native client) is always admitted by this check,
    since only browsers send one. With neither, no browser page is admitted.
    """

    def __init__(self, token: str | None = None, origins: Iterable[str] | None = None, own: Iterable[str] = ()) -> None:
        _check_token(token)
        self._token = None if token is None else token.encode()
        if isinstance(origins, str):
            raise UsageError("origins= takes a list of origins, e.g. ['https://app.example.com']")
        allowed = [*own, *(origins or ())]
        for origin in allowed:
            parts = urlsplit(origin)
            if origin != "*" and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/")):
                raise UsageError(f"origins= entries look like 'https://host:port' (or '*'), not {origin!r}")
        self._any = "*" in allowed
        self._origins = frozenset(_normalize_origin(o) for o in allowed)

    @property
    def needs_token(self) -> bool:
        return self._token is not None

    def check(self, origin: str | None, offered: Iterable[str]) -> tuple[int, str] | None:
        """``None`` to admit the request, else the close code and reason to refuse it with."""
        if origin is not None and not self._any and _normalize_origin(origin) not in self._origins:
            return CLOSE_FORBIDDEN_ORIGIN, FORBIDDEN_ORIGIN_REASON
        if self._token is not None:
            given = _offered_token(offered)
            # compare_digest on equal-length inputs only, so its time says nothing of the token
            if given is None or not hmac.compare_digest(
                hmac.digest(b"tether", given, "sha256"), hmac.digest(b"tether", self._token, "sha256")
            ):
                return CLOSE_UNAUTHORIZED, UNAUTHORIZED_REASON
        return None
