"""The sync face's transport settings (the ``transport=`` option, by websockets' names) and a
server's listening socket.

``tether.connect`` and ``tether.serve`` used to hand ``transport=`` to ``websockets.sync``; the
sync transport (``tether.sync.transport``) takes the settings that still mean something for it,
by the same names (:data:`CLIENT_SETTINGS`, :data:`SERVER_SETTINGS`), and refuses any other with
a :class:`~tether.exceptions.UsageError` that lists them.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from websockets.datastructures import HeadersLike
from websockets.http11 import SERVER, USER_AGENT

from ..exceptions import UsageError

__all__ = ["CLIENT_SETTINGS", "SERVER_SETTINGS", "Settings", "client_settings", "listen", "server_settings"]


@dataclass
class Settings:
    """What a connection is opened or served with: keepalive and timeouts from
    :func:`tether.websocket.keepalive_options`, the rest from ``transport=`` (websockets' names).

    ``max_queue`` is accepted for compatibility with ``websockets.sync`` and has no effect: a
    pushing connection hands each message to its session as it arrives (there is no queue)."""

    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float | None = 10.0
    open_timeout: float | None = 10.0
    max_size: int | None = 2**20
    logger: Any = None
    max_queue: Any = None
    # a client's
    origin: str | None = None
    additional_headers: HeadersLike | None = None
    user_agent_header: str | None = USER_AGENT
    server_hostname: str | None = None
    sock: socket.socket | None = None  # a client's connected socket, a server's listening one
    # a server's
    server_header: str | None = SERVER
    create_server: dict[str, Any] = field(default_factory=dict)  # family, backlog, reuse_port, dualstack_ipv6


_COMMON = frozenset({"ping_interval", "ping_timeout", "close_timeout", "logger", "max_queue", "sock", "compression"})
CLIENT_SETTINGS = _COMMON | {"origin", "additional_headers", "user_agent_header", "server_hostname"}
"""The ``transport=`` settings ``tether.connect`` takes (websockets' names for them)."""
SERVER_SETTINGS = _COMMON | {"open_timeout", "server_header", "family", "backlog", "reuse_port", "dualstack_ipv6"}
"""The ``transport=`` settings ``tether.serve`` takes (websockets' names for them)."""
_CREATE_SERVER = ("family", "backlog", "reuse_port", "dualstack_ipv6")
_OWN_OPTIONS = {"open_timeout": "open_timeout=", "max_size": "max_frame_size=", "ssl": "ssl="}


def _settings(where: str, allowed: frozenset[str], base: Mapping[str, Any], given: Mapping[str, Any]) -> Settings:
    unknown = sorted(set(given) - allowed)
    if unknown:
        name = unknown[0]
        hint = f" (use tether's {_OWN_OPTIONS[name]} option)" if name in _OWN_OPTIONS else ""
        raise UsageError(
            f"{where}(transport=...) got a setting it does not know: {name!r}{hint}. "
            f"The sync face's transport takes: {', '.join(sorted(allowed))}"
        )
    if given.get("compression") is not None:
        raise UsageError(f"{where}(transport=...): Tether's WebSockets are not compressed")
    merged = {**base, **given}
    known = {f.name for f in fields(Settings)}
    settings = Settings(**{k: v for k, v in merged.items() if k in known})
    settings.create_server = {k: merged[k] for k in _CREATE_SERVER if k in merged}
    return settings


def client_settings(where: str, keepalive: Mapping[str, Any], transport: Mapping[str, Any], *,
                    open_timeout: float, max_size: int) -> Settings:  # fmt: skip
    """The settings of a client connection: ``keepalive`` (:func:`~tether.websocket.keepalive_options`),
    then ``transport`` (the option; its settings win), with tether's ``open_timeout`` and
    ``max_frame_size``. Raises UsageError for a setting it does not take."""
    settings = _settings(where, CLIENT_SETTINGS, keepalive, transport)
    settings.open_timeout, settings.max_size = open_timeout, max_size
    return settings


def server_settings(where: str, keepalive: Mapping[str, Any], transport: Mapping[str, Any], *, max_size: int) -> Settings:
    """The settings of a server's connections (as :func:`client_settings`); ``open_timeout``
    bounds each connection's TLS and HTTP handshake (10 s unless ``transport=`` says)."""
    settings = _settings(where, SERVER_SETTINGS, keepalive, transport)
    settings.max_size = max_size
    return settings


def listen(host: str, port: int, settings: Settings) -> socket.socket:
    """The server's listening socket (``settings.sock`` if given): non-blocking, for the
    accepting thread's selector."""
    sock = settings.sock
    if sock is None:
        options = dict(settings.create_server)
        if ":" in host:  # an IPv6 address: socket.create_server needs the family said
            options.setdefault("family", socket.AF_INET6)
        sock = socket.create_server((host, port), **options)
    sock.setblocking(False)
    return sock
