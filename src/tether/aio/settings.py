"""The async face's transport settings: the ``transport=`` option of ``tether.aio.connect`` and
``tether.aio.serve``, by websockets' names where websockets has one.

The async face runs on its own transport (``tether.aio.transport``: websockets' sans-I/O
protocol in an ``asyncio.Protocol``), which takes the settings that mean something for it
(:data:`CLIENT_SETTINGS`, :data:`SERVER_SETTINGS`) and refuses any other with a
:class:`~tether.exceptions.UsageError` that lists them. ``pause_reading_above`` is Tether's own
(websockets has no such bound): see :class:`Settings`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..exceptions import UsageError
from ..limits import DEFAULT_PAUSE_READING_ABOVE
from ..websocket import CLIENT_SETTINGS as _CLIENT
from ..websocket import SERVER_SETTINGS as _SERVER
from ..websocket import SettingsReader, TransportSettings

__all__ = ["CLIENT_SETTINGS", "DEFAULT_PAUSE_READING_ABOVE", "DEFAULT_WRITE_LIMIT", "SERVER_SETTINGS", "Settings",
           "client_settings", "server_settings"]  # fmt: skip

DEFAULT_WRITE_LIMIT = 65536
"""Bytes of unsent data above which ``send`` (and a caller's ``await``) waits for the peer to
read: the write buffer's high-water mark (its low-water mark is a quarter of it)."""


@dataclass
class Settings(TransportSettings):
    """What a connection is opened or served with (:class:`~tether.websocket.TransportSettings`),
    and a setting of the async face's own.

    ``write_limit``: the write buffer's high-water mark in bytes, or ``(high, low)``; above it
    senders that await wait for the peer to read. ``pause_reading_above`` (both faces have it):
    above this many unsent bytes (here at least ``write_limit``'s high mark) the connection
    stops reading from the peer until its buffer is back at the low-water mark, so a peer that
    sends but never reads cannot make us buffer answers without bound. ``max_queue`` is
    accepted for compatibility with ``websockets.asyncio`` and has no effect: messages are
    pushed to the session as they arrive (there is no queue)."""

    write_limit: int | tuple[int, int | None] = DEFAULT_WRITE_LIMIT

    def write_limits(self) -> tuple[int, int]:
        """The write buffer's (high, low) water marks."""
        limit = self.write_limit
        if isinstance(limit, tuple):
            high, low = limit
            return high, (high // 4 if low is None else low)
        return limit, limit // 4


def _check(where: str, settings: Settings) -> None:
    high, low = settings.write_limits()
    if not (isinstance(high, int) and isinstance(low, int) and 0 <= low <= high):
        raise UsageError(f"{where}(transport=...): write_limit is bytes, or (high, low) with low <= high; got {settings.write_limit!r}")
    bound = settings.pause_reading_above
    if not isinstance(bound, int) or bound < high:
        raise UsageError(
            f"{where}(transport=...): pause_reading_above is bytes, at least write_limit's high mark ({high}); got {bound!r}"
        )


_OWN = frozenset({"write_limit"})
CLIENT_SETTINGS = _CLIENT | _OWN
"""The ``transport=`` settings ``tether.aio.connect`` takes."""
SERVER_SETTINGS = _SERVER | _OWN | {"reuse_address"}
"""The ``transport=`` settings ``tether.aio.serve`` takes."""
_READER = SettingsReader("async face", Settings, CLIENT_SETTINGS, SERVER_SETTINGS,
                         ("family", "backlog", "reuse_port", "reuse_address"), _check)  # fmt: skip
client_settings = _READER.client
server_settings = _READER.server
