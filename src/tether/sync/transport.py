"""The sync flavour's transport: a ``websockets.sync`` connection that pushes each message to
its session from websockets' own receiving thread (no reader thread, no queue)."""

from __future__ import annotations

import mmap
import threading
from typing import Any

from websockets.frames import Frame, Opcode
from websockets.sync.client import ClientConnection
from websockets.sync.server import ServerConnection

from ..session import describe_keepalive_timeout, describe_peer_close

__all__ = ["PushingClientConnection", "PushingServerConnection"]

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
        self._socket_closed = False
        self._fragments: list[bytes] = []
        self._fragment_opcode: Opcode | None = None

    def attach(self, on_message: Any, on_closed: Any) -> None:
        with self._push_lock:
            for data in self._early:
                on_message(data)
            self._early = []
            self._on_message = on_message
            closed_already = self._socket_closed
            if not closed_already:
                self._on_closed = on_closed  # close_socket calls it, once
        if closed_already:
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
            self._socket_closed = True
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


class _ExactRecv:
    """A connection's socket whose ``recv`` returns a bytes object of exactly the size received.

    ``websockets.sync`` reads with ``socket.recv(65536)``, which makes CPython allocate 64 KiB
    with glibc's malloc and shrink it to what arrived: done for every message, from every
    connection's thread, that fragments glibc's heaps, and a long-running server's RSS creeps up
    with free memory glibc keeps (+14% over a million calls; ``docs/benchmarks.md``, "Load and
    soak"). Here the data is read into a buffer the connection owns and copied out at its size
    (a small message then comes from Python's own allocator). One reader thread per connection
    calls ``recv``, so one buffer is enough. Everything else is the socket's own."""

    __slots__ = ("_recv_into", "_size", "_sock", "_view")

    def __init__(self, sock: Any, size: int = 65536) -> None:
        self._sock = sock
        self._size = size
        # An anonymous mapping: only the pages that data reaches become resident (a bytearray
        # is zero-filled: 64 KiB resident per connection from the start).
        self._view = memoryview(mmap.mmap(-1, size))
        self._recv_into = getattr(sock, "recv_into", None)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self._recv_into is None or bufsize > self._size:
            return self._sock.recv(bufsize, flags)  # type: ignore[no-any-return]
        view = self._view
        n = self._recv_into(view[:bufsize], bufsize, flags)
        return bytes(view[:n])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class PushingClientConnection(_Pushing, ClientConnection):
    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        self._init_push()
        super().__init__(_ExactRecv(sock), *args, **kwargs)  # type: ignore[arg-type]


class PushingServerConnection(_Pushing, ServerConnection):
    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        self._init_push()
        super().__init__(_ExactRecv(sock), *args, **kwargs)  # type: ignore[arg-type]
