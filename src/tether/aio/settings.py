"""The async face's transport settings: the ``transport=`` option of ``tether.aio.connect`` and
``tether.aio.serve``, by websockets' names where websockets has one.

The async face runs on its own transport (``tether.aio.transport``: websockets' sans-I/O
protocol in an ``asyncio.Protocol``), which takes the settings that mean something for it
(:data:`CLIENT_SETTINGS`, :data:`SERVER_SETTINGS`) and refuses any other with a
:class:`~tether.exceptions.UsageError` that lists them. ``pause_reading_above`` is Tether's own
(websockets has no such bound): see :class:`Settings`.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from websockets.datastructures import HeadersLike
from websockets.http11 import SERVER, USER_AGENT

from ..exceptions import UsageError

__all__ = ["CLIENT_SETTINGS", "DEFAULT_PAUSE_READING_ABOVE", "DEFAULT_WRITE_LIMIT", "SERVER_SETTINGS", "Settings",
           "client_settings", "server_settings"]  # fmt: skip

DEFAULT_WRITE_LIMIT = 65536
"""Bytes of unsent data above which ``send`` (and a caller's ``await``) waits for the peer to
read: the write buffer's high-water mark (its low-water mark is a quarter of it)."""

DEFAULT_PAUSE_READING_ABOVE = 4 * 2**20
"""Bytes of unsent data above which the connection stops reading from the peer until the
buffer drains to the low-water mark: what a peer that never reads can make us hold."""


@dataclass
class Settings:
    """What a connection is opened or served with: keepalive and timeouts from
    :func:`tether.websocket.keepalive_options`, the rest from ``transport=``.

    ``write_limit``: the write buffer's high-water mark in bytes, or ``(high, low)``; above it
    senders that await wait for the peer to read. ``pause_reading_above``: above this many
    unsent bytes (at least ``write_limit``'s high mark) the connection stops reading from the
    peer until its buffer is back at the low-water mark, so a peer that sends but never reads
    cannot make us buffer answers without bound. ``max_queue`` is accepted for compatibility
    with ``websockets.asyncio`` and has no effect: messages are pushed to the session as they
    arrive (there is no queue)."""

    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float | None = 10.0
    open_timeout: float | None = 10.0
    max_size: int | None = 2**20
    logger: Any = None
    max_queue: Any = None
    write_limit: int | tuple[int, int | None] = DEFAULT_WRITE_LIMIT
    pause_reading_above: int = DEFAULT_PAUSE_READING_ABOVE
    # a client's
    origin: str | None = None
    additional_headers: HeadersLike | None = None
    user_agent_header: str | None = USER_AGENT
    server_hostname: str | None = None
    sock: socket.socket | None = None  # a client's connected socket, a server's listening one
    # a server's
    server_header: str | None = SERVER
    create_server: dict[str, Any] = field(default_factory=dict)  # family, backlog, reuse_port, reuse_address

    def write_limits(self) -> tuple[int, int]:
        """The write buffer's (high, low) water marks."""
        limit = self.write_limit
        if isinstance(limit, tuple):
            high, low = limit
            return high, (high // 4 if low is None else low)
        return limit, limit // 4


_COMMON = frozenset({"ping_interval", "ping_timeout", "close_timeout", "logger", "max_queue", "sock", "compression",
                     "write_limit", "pause_reading_above"})  # fmt: skip
CLIENT_SETTINGS = _COMMON | {"origin", "additional_headers", "user_agent_header", "server_hostname"}
"""The ``transport=`` settings ``tether.aio.connect`` takes."""
SERVER_SETTINGS = _COMMON | {"open_timeout", "server_header", "family", "backlog", "reuse_port", "reuse_address"}
"""The ``transport=`` settings ``tether.aio.serve`` takes."""
_CREATE_SERVER = ("family", "backlog", "reuse_port", "reuse_address")
_OWN_OPTIONS = {"open_timeout": "open_timeout=", "max_size": "max_frame_size=", "ssl": "ssl="}


def _settings(where: str, allowed: frozenset[str], base: Mapping[str, Any], given: Mapping[str, Any]) -> Settings:
    unknown = sorted(set(given) - allowed)
    if unknown:
        name = unknown[0]
        hint = f" (use tether's {_OWN_OPTIONS[name]} option)" if name in _OWN_OPTIONS else ""
        raise UsageError(
            f"{where}(transport=...) got a setting it does not know: {name!r}{hint}. "
            f"The async face's transport takes: {', '.join(sorted(allowed))}"
        )
    if given.get("compression") is not None:
        raise UsageError(f"{where}(transport=...): Tether's WebSockets are not compressed")
    merged = {**base, **given}
    known = {f.name for f in fields(Settings)}
    settings = Settings(**{k: v for k, v in merged.items() if k in known})
    settings.create_server = {k: merged[k] for k in _CREATE_SERVER if k in merged}
    high, low = settings.write_limits()
    if not (isinstance(high, int) and isinstance(low, int) and 0 <= low <= high):
        raise UsageError(f"{where}(transport=...): write_limit is bytes, or (high, low) with low <= high; got {settings.write_limit!r}")
    bound = settings.pause_reading_above
    if not isinstance(bound, int) or bound < high:
        raise UsageError(
            f"{where}(transport=...): pause_reading_above is bytes, at least write_limit's high mark ({high}); got {bound!r}"
        )
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
