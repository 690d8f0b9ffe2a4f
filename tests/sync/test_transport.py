"""The sync flavour's socket wrapper: websockets reads each message with ``recv(65536)``; the
wrapper hands back bytes of exactly the size received, read through a buffer of its own, so a
long-running server does not fragment glibc's heap with a 64 KiB block per message."""

from __future__ import annotations

import socket

from tether.sync.transport import _ExactRecv


def test_recv_returns_exactly_what_arrived_and_keeps_no_view_of_its_buffer() -> None:
    a, b = socket.socketpair()
    with a, b:
        wrapped = _ExactRecv(b)
        a.sendall(b"first")
        first = wrapped.recv(65536)
        a.sendall(b"2nd")
        second = wrapped.recv(65536)
        assert (first, second) == (b"first", b"2nd")  # the first is not overwritten by the second
        assert type(first) is bytes
        a.sendall(b"abcdef")
        assert wrapped.recv(4) == b"abcd"  # never more than asked for
        assert wrapped.recv(65536) == b"ef"


def test_a_read_larger_than_its_buffer_goes_to_the_socket_itself() -> None:
    a, b = socket.socketpair()
    with a, b:
        wrapped = _ExactRecv(b, size=8)
        a.sendall(b"0123456789abcdef")
        assert wrapped.recv(64) == b"0123456789abcdef"


def test_everything_else_is_the_sockets_own() -> None:
    a, b = socket.socketpair()
    with a, b:
        wrapped = _ExactRecv(b)
        assert wrapped.fileno() == b.fileno()
        wrapped.settimeout(0.5)
        assert b.gettimeout() == 0.5
        a.close()
        assert wrapped.recv(65536) == b""  # the peer closed: end of stream, as a socket says
