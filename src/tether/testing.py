"""In-memory transports, so tests of code that uses Tether need no sockets.

::

    from tether.testing import pair

    with pair(Calculator()) as (client, server):
        assert client.root.add(3, 4) == 7

:func:`pair` wires a sync client and server back to back through :func:`memory_pair`;
:func:`async_pair` does the same for the asyncio runtime. Frames still go through the full
codec and protocol: only the WebSocket is replaced. Use real loopback connections
(``tether.serve``/``tether.connect``) for anything that depends on the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from .exceptions import ConnectionLost
from .session import is_factory
from .sync.session import Peer, Session, open_session

__all__ = [
    "AsyncMemoryTransport", "MemoryTransport", "async_memory_pair", "async_pair", "memory_pair", "pair",
    "run_in_thread",
]

_CLOSED = object()


class MemoryTransport:
    """One end of an in-memory, thread-safe, message-preserving pipe."""

    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.other: MemoryTransport | None = None
        self.closed = False
        self.close_code: int | None = None
        self.close_reason = ""

    def send(self, data: bytes | str) -> None:
        other = self.other
        if self.closed or other is None or other.closed:
            raise ConnectionLost("in-memory connection is closed")
        other._inbox.put(data)

    def recv(self) -> bytes | str:
        item = self._inbox.get()
        if item is _CLOSED:
            self._inbox.put(_CLOSED)  # later recv calls see it too
            raise ConnectionLost(f"in-memory connection closed ({self.close_code}: {self.close_reason})")
        return item  # type: ignore[no-any-return]

    def close(self, code: int = 1000, reason: str = "") -> None:
        for end in (self, self.other):
            if end is not None and not end.closed:
                end.closed = True
                end.close_code = code
                end.close_reason = reason
                end._inbox.put(_CLOSED)


def memory_pair() -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected in-memory transports for the threading runtime."""
    a, b = MemoryTransport(), MemoryTransport()
    a.other, b.other = b, a
    return a, b


@contextlib.contextmanager
def pair(server_root: Any, client_root: object = None, **options: Any) -> Iterator[tuple[Peer, Peer]]:
    """A connected (client, server) pair of sync Peers over memory; closed on exit.

    ``options`` go to both sessions (``trusted``, ``send_tracebacks``, ``max_frame_size``...).
    """
    a, b = memory_pair()
    server_session = Session(b, client=False, url="memory server", **options)
    server_peer = Peer(server_session)
    server_session.protocol.root = server_root(server_peer) if is_factory(server_root) else server_root
    server_session.start()
    client = open_session(a, root=client_root, url="memory client", **options)
    try:
        yield client, server_peer
    finally:
        client.close()
        server_peer.close()
        server_session.wait_closed(5)


class AsyncMemoryTransport:
    """One end of an in-memory pipe for the asyncio runtime (one event loop)."""

    def __init__(self) -> None:
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.other: AsyncMemoryTransport | None = None
        self.closed = False

    async def send(self, data: bytes | str) -> None:
        other = self.other
        if self.closed or other is None or other.closed:
            raise ConnectionLost("in-memory connection is closed")
        other._inbox.put_nowait(data)

    async def recv(self) -> bytes | str:
        item = await self._inbox.get()
        if item is _CLOSED:
            self._inbox.put_nowait(_CLOSED)
            raise ConnectionLost("in-memory connection closed")
        return item  # type: ignore[no-any-return]

    async def close(self, code: int = 1000, reason: str = "") -> None:
        for end in (self, self.other):
            if end is not None and not end.closed:
                end.closed = True
                end._inbox.put_nowait(_CLOSED)


def async_memory_pair() -> tuple[AsyncMemoryTransport, AsyncMemoryTransport]:
    a, b = AsyncMemoryTransport(), AsyncMemoryTransport()
    a.other, b.other = b, a
    return a, b


@contextlib.asynccontextmanager
async def async_pair(server_root: Any, client_root: object = None, **options: Any) -> AsyncIterator[tuple[Any, Any]]:
    """A connected (client, server) pair of AsyncPeers over memory; closed on exit."""
    from .aio.session import AsyncPeer, AsyncSession, open_async_session

    a, b = async_memory_pair()
    server_session = AsyncSession(b, client=False, url="memory server", **options)
    server_peer = AsyncPeer(server_session)
    server_session.protocol.root = server_root(server_peer) if is_factory(server_root) else server_root
    await server_session.start()
    client = await open_async_session(a, root=client_root, url="memory client", **options)
    try:
        yield client, server_peer
    finally:
        await client.close()
        await server_peer.close()


def run_in_thread(fn: Any, *args: Any) -> threading.Thread:
    """Start ``fn(*args)`` in a daemon thread (a small helper for concurrency tests)."""
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread
