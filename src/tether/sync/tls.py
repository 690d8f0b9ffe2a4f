"""TLS for the sync transport (``tether.sync.transport``) without an ``SSLSocket``: an
``ssl.SSLObject`` over two memory buffers, so that reading and writing never run in OpenSSL
at once on one connection (the connection's lock guards every call but the handshake's); and
the deadline of an opening handshake as a socket timeout."""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

__all__ = ["Deadline", "MemoryTLS"]

_BUFFER_SIZE = 65536  # bytes read from the socket, or from the TLS object, at once


class Deadline:
    """The time left of ``timeout`` seconds (``None``: no limit), for a socket's timeout."""

    def __init__(self, timeout: float | None) -> None:
        self.end = None if timeout is None else time.monotonic() + timeout

    def left(self) -> float | None:
        if self.end is None:
            return None
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out during the opening handshake")
        return left


class MemoryTLS:
    """TLS as an ``ssl.SSLObject`` over two memory buffers; every call but :meth:`handshake`
    runs under the connection's lock."""

    __slots__ = ("incoming", "obj", "outgoing")

    def __init__(self, context: ssl.SSLContext, server_side: bool, server_hostname: str | None = None) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_side=server_side,
                                    server_hostname=server_hostname)  # fmt: skip

    def handshake(self, sock: socket.socket, deadline: Deadline) -> None:
        while True:
            try:
                self.obj.do_handshake()
                wants_more = False
            except ssl.SSLWantReadError:
                wants_more = True
            pending = self.outgoing.read()
            if pending:
                sock.settimeout(deadline.left())
                sock.sendall(pending)
            if not wants_more:
                return
            sock.settimeout(deadline.left())
            data = sock.recv(_BUFFER_SIZE)
            if data:
                self.incoming.write(data)
            else:
                self.incoming.write_eof()

    def decrypt(self, data: Any) -> tuple[bytes, bool]:
        """The plaintext that ``data`` (bytes from the socket) completes, and whether the TLS
        stream ended (the peer's close_notify or a cut)."""
        self.incoming.write(data)
        chunks = []
        read = self.obj.read
        ended = False
        while True:
            try:
                chunk = read(_BUFFER_SIZE)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                ended = True
                break
            if not chunk:
                ended = True
                break
            chunks.append(chunk)
        return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), ended

    def encrypt(self, data: bytes) -> None:
        self.obj.write(data)
