"""The sync face's transport settings (the ``transport=`` option, by websockets' names) and a
server's listening socket.

``tether.connect`` and ``tether.serve`` used to hand ``transport=`` to ``websockets.sync``; the
sync transport (``tether.sync.transport``) takes the settings that still mean something for it,
by the same names (:data:`CLIENT_SETTINGS`, :data:`SERVER_SETTINGS`), and refuses any other with
a :class:`~tether.exceptions.UsageError` that lists them.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from ..exceptions import UsageError
from ..websocket import CLIENT_SETTINGS as _CLIENT
from ..websocket import SERVER_SETTINGS as _SERVER
from ..websocket import SettingsReader, TransportSettings

__all__ = ["CLIENT_SETTINGS", "SERVER_SETTINGS", "Settings", "client_settings", "listen", "server_settings"]


@dataclass
class Settings(TransportSettings):
    """What a connection is opened or served with (:class:`~tether.websocket.TransportSettings`).

    ``pause_reading_above`` (Tether's own): while the session holds more than this many bytes
    of frames not yet written to the peer, and waits for none of the peer's answers, the
    connection reads nothing more from it (a thread's write is stuck: the peer does not read),
    so a peer that sends calls but never reads their answers cannot make us hold them without
    bound. ``max_queue`` is accepted for compatibility with ``websockets.sync`` and has no
    effect: a pushing connection hands each message to its session as it arrives (there is no
    queue)."""


def _check(where: str, settings: Settings) -> None:
    bound = settings.pause_reading_above
    if type(bound) is not int or bound < 1:
        raise UsageError(f"{where}(transport=...): pause_reading_above is a number of bytes, at least 1; got {bound!r}")


CLIENT_SETTINGS = _CLIENT
"""The ``transport=`` settings ``tether.connect`` takes (websockets' names for them)."""
SERVER_SETTINGS = _SERVER | {"dualstack_ipv6"}
"""The ``transport=`` settings ``tether.serve`` takes (websockets' names for them)."""
_READER = SettingsReader("sync face", Settings, CLIENT_SETTINGS, SERVER_SETTINGS,
                         ("family", "backlog", "reuse_port", "dualstack_ipv6"), _check)  # fmt: skip
client_settings = _READER.client
server_settings = _READER.server


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
