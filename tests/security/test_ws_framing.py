"""Hostile WebSocket framing against a threading server, whose common case of framing is
``tether.framing``'s and the rest websockets': frames written byte by byte on a raw socket.

Each case checks what the peer gets (the close code the RFC asks for) and that the server
serves the next client."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest

import tether

UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
MASK = b"\x0f\xf0\x55\xaa"


class Calculator:
    def add(self, a: int, b: int) -> int:
        return a + b


@pytest.fixture
def server() -> Iterator[tether.Server]:
    with tether.serve(Calculator(), host="127.0.0.1", port=0, max_frame_size=1 << 16) as srv:
        yield srv


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, masked: bool = True) -> bytes:
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    head = bytes((first, n | (0x80 if masked else 0))) if n < 126 else struct.pack("!BBH", first, 126 | (0x80 if masked else 0), n)
    if not masked:
        return head + payload
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def opened(srv: tether.Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    sock.sendall(UPGRADE)
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 101")
    return sock


def close_code(sock: socket.socket) -> int:
    """Read the server's frames until its close frame; return the close code."""
    data = b""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        while len(data) >= 2:
            length = data[1] & 0x7F
            start = 2 if length < 126 else 4
            if length == 126 and len(data) >= 4:
                length = struct.unpack("!H", data[2:4])[0]
            if len(data) < start + length:
                break
            if data[0] & 0x0F == 8:
                return struct.unpack("!H", data[start : start + 2])[0]
            data = data[start + length :]
    raise AssertionError(f"no close frame from the server (got {data!r})")


def serves_on(srv: tether.Server) -> None:
    with tether.connect(srv.url) as peer:
        assert peer.root.add(2, 3) == 5


def test_a_header_declaring_an_exabyte_frame_closes_with_1009_at_once(server: tether.Server) -> None:
    """Nothing of the payload is waited for or buffered: the header is enough to refuse it."""
    with opened(server) as sock:
        sock.sendall(struct.pack("!BBQ", 0x82, 0x80 | 127, 2**62) + MASK)
        assert close_code(sock) == 1009
    serves_on(server)


def test_an_unmasked_frame_from_a_client_closes_with_1002(server: tether.Server) -> None:
    with opened(server) as sock:
        sock.sendall(frame(2, b"not masked", masked=False))
        assert close_code(sock) == 1002
    serves_on(server)


def test_a_binary_frame_with_a_reserved_bit_closes_with_1002(server: tether.Server) -> None:
    with opened(server) as sock:
        sock.sendall(frame(2, b"rsv", rsv=4))
        assert close_code(sock) == 1002
    serves_on(server)


def test_a_whole_message_inside_a_fragmented_one_closes_with_1002(server: tether.Server) -> None:
    """A data frame where a continuation must come is refused, as websockets refuses it, even
    though a whole binary frame is the common case read without websockets."""
    with opened(server) as sock:
        sock.sendall(frame(2, b"first half", fin=False) + frame(2, b"not a continuation"))
        assert close_code(sock) == 1002
    serves_on(server)


def test_a_frame_dribbled_a_byte_at_a_time_is_read_whole(server: tether.Server) -> None:
    """Bytes one by one, a ping between two fragments, then a whole frame: the server reads
    all of it (a non-Tether first frame then closes the conversation with 1002, as a plain
    websockets reader would: what matters is that it got there, in order)."""
    with opened(server) as sock:
        stream = frame(9, b"ping?") + frame(2, b"\x00\x00", fin=False) + frame(0, b"\x00\x01", fin=True)
        for byte in stream:
            sock.sendall(bytes((byte,)))
        assert close_code(sock) == 1002  # the message (0x00000001) is not a Tether exposure frame
    serves_on(server)
