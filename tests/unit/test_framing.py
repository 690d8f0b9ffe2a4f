"""tether.framing: the common case of WebSocket framing beside websockets' protocol.

The property: for any stream of frames (well-formed or not, cut into reads anywhere), a
protocol fed through :class:`FastFrames` says exactly what websockets alone says: the same
messages in the same order (websockets' fragments joined as a transport joins them), the
same other frames, the same state, close code and reason, and the same bytes to send. Frames we build are read back by websockets as what was sent.
"""

from __future__ import annotations

import os
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State

from tether.framing import FastFrames, handshake_ended_cleanly

MAX_SIZE = 1000


def raw_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bytes | None = None,
              long_form: bool = False) -> bytes:  # fmt: skip
    """A frame as bytes, any of it possibly wrong (what a hostile peer can send)."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126 and not long_form:
        head = bytes((first, n | mask_bit))
    elif n < 65536:
        head = struct.pack("!BBH", first, 126 | mask_bit, n)
    else:
        head = struct.pack("!BBQ", first, 127 | mask_bit, n)
    if mask is None:
        return head + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class Reference:
    """What a transport makes of websockets' events on their own: each data message whole
    (fragments joined, text decoded), other frames as (opcode, data, fin)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.text = False

    def messages(self, events: list[object]) -> list[object]:
        out: list[object] = []
        for event in events:
            if not isinstance(event, Frame):
                continue
            data = bytes(event.data)
            if event.opcode is Opcode.CONT:
                self.parts.append(data)
                if event.fin:
                    whole, self.parts = b"".join(self.parts), []
                    out.append(whole.decode("utf-8", "replace") if self.text else whole)
            elif event.opcode in (Opcode.BINARY, Opcode.TEXT):
                if event.fin:
                    out.append(data if event.opcode is Opcode.BINARY else data.decode("utf-8", "replace"))
                else:
                    self.parts, self.text = [data], event.opcode is Opcode.TEXT
            else:
                out.append((event.opcode, data, event.fin))
        return out


def normalized(items: list[object]) -> list[object]:
    """What FastFrames hands on, comparable: messages as they are, other frames as tuples."""
    return [(item.opcode, bytes(item.data), item.fin) if isinstance(item, Frame) else item for item in items]


def feed_both(side: Side, chunks: list[bytes], eof: bool = False) -> tuple[Protocol, Protocol, list[object], list[object]]:
    plain = Protocol(side, state=State.OPEN, max_size=MAX_SIZE)
    reference = Reference()
    fast_protocol = Protocol(side, state=State.OPEN, max_size=MAX_SIZE)
    fast = FastFrames(fast_protocol, MAX_SIZE)
    want: list[object] = []
    got: list[object] = []
    for chunk in chunks:
        plain.receive_data(chunk)
        want += reference.messages(plain.events_received())
        got += normalized(fast.receive(chunk))
    if eof:
        plain.receive_eof()
        want += reference.messages(plain.events_received())
        got += normalized(fast.receive_eof())
    return plain, fast_protocol, want, got


def assert_same(plain: Protocol, fast: Protocol, want: list[object], got: list[object]) -> None:
    assert got == want
    assert fast.state is plain.state
    assert fast.close_code == plain.close_code
    assert fast.close_reason == plain.close_reason
    assert type(fast.parser_exc) is type(plain.parser_exc)
    # What each answers (pongs, close frames): the same bytes (a server's frames are unmasked).
    if plain.side is Side.SERVER:
        assert fast.data_to_send() == plain.data_to_send()


def frames_strategy(side: Side) -> st.SearchStrategy[bytes]:
    """One frame a peer of ``side`` might send: mostly what the fast path takes, and every
    kind of thing it must leave to websockets."""
    right_mask = side is Side.SERVER  # frames to a server are masked
    payload = st.binary(max_size=200)
    mask = st.binary(min_size=4, max_size=4)

    @st.composite
    def one(draw: st.DrawFn) -> bytes:
        kind = draw(st.sampled_from(["binary"] * 6 + ["text", "fragment", "cont", "ping", "pong", "close",
                                     "rsv", "wrong_mask", "bad_opcode", "too_big", "long_form"]))  # fmt: skip
        data = draw(payload)
        m = draw(mask) if right_mask else None
        if kind == "binary":
            return raw_frame(2, data, mask=m)
        if kind == "long_form":  # a 16-bit length for a short payload (websockets accepts it)
            return raw_frame(2, data, mask=m, long_form=True)
        if kind == "text":
            return raw_frame(1, draw(st.text(max_size=50)).encode(), mask=m)
        if kind == "fragment":
            return raw_frame(draw(st.sampled_from([1, 2])), data, fin=False, mask=m)
        if kind == "cont":
            return raw_frame(0, data, fin=draw(st.booleans()), mask=m)
        if kind == "ping":
            return raw_frame(9, data[:125], mask=m)
        if kind == "pong":
            return raw_frame(10, data[:125], mask=m)
        if kind == "close":
            return raw_frame(8, struct.pack("!H", 1000) + b"bye", mask=m)
        if kind == "rsv":
            return raw_frame(2, data, rsv=draw(st.integers(1, 7)), mask=m)
        if kind == "wrong_mask":
            return raw_frame(2, data, mask=None if right_mask else draw(mask))
        if kind == "bad_opcode":
            return raw_frame(draw(st.sampled_from([3, 4, 5, 6, 7, 11, 12, 13, 14, 15])), data, mask=m)
        return raw_frame(2, os.urandom(MAX_SIZE + 1), mask=m)  # too_big

    return one()


def cut(stream: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({p % (len(stream) + 1) for p in points})
    pieces, at = [], 0
    for mark in [*marks, len(stream)]:
        pieces.append(stream[at:mark])
        at = mark
    return [piece for piece in pieces if piece]


@settings(max_examples=300, deadline=None)
@given(st.lists(frames_strategy(Side.SERVER), max_size=12), st.lists(st.integers(0, 10_000), max_size=8), st.booleans())
def test_a_server_reads_any_stream_as_websockets_does(frames: list[bytes], points: list[int], eof: bool) -> None:
    assert_same(*feed_both(Side.SERVER, cut(b"".join(frames), points), eof))


@settings(max_examples=300, deadline=None)
@given(st.lists(frames_strategy(Side.CLIENT), max_size=12), st.lists(st.integers(0, 10_000), max_size=8), st.booleans())
def test_a_client_reads_any_stream_as_websockets_does(frames: list[bytes], points: list[int], eof: bool) -> None:
    assert_same(*feed_both(Side.CLIENT, cut(b"".join(frames), points), eof))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(0, 10_000), max_size=8))
def test_any_bytes_at_all_are_read_as_websockets_reads_them(garbage: bytes, points: list[int]) -> None:
    for side in (Side.SERVER, Side.CLIENT):
        assert_same(*feed_both(side, cut(garbage, points)))


def test_the_common_case_is_handed_on_as_bytes_without_websockets() -> None:
    protocol = Protocol(Side.SERVER, state=State.OPEN, max_size=MAX_SIZE)
    fast = FastFrames(protocol, MAX_SIZE)
    two = raw_frame(2, b"one", mask=b"abcd") + raw_frame(2, b"two" * 50, mask=b"\x00\xff\x10\x01")
    assert fast.receive(two) == [b"one", b"two" * 50]
    assert protocol.events_received() == [] and protocol.data_to_send() == []


def test_a_frame_in_many_reads_comes_out_once_whole() -> None:
    protocol = Protocol(Side.CLIENT, state=State.OPEN, max_size=100_000)
    fast = FastFrames(protocol, 100_000)
    stream = raw_frame(2, b"x" * 70_000)  # a 64-bit length
    got: list[object] = []
    for at in range(0, len(stream), 7):
        got += fast.receive(stream[at : at + 7])
    assert got == [b"x" * 70_000]


def test_a_frame_declared_over_max_size_is_refused_at_its_header() -> None:
    """A peer cannot make us buffer a frame over max_size: websockets gets its header at once
    and fails the connection with 1009, before any of the payload arrives."""
    protocol = Protocol(Side.SERVER, state=State.OPEN, max_size=MAX_SIZE)
    fast = FastFrames(protocol, MAX_SIZE)
    header = struct.pack("!BBQ", 0x82, 0x80 | 127, 2**62) + b"mask"
    fast.receive(header)
    assert protocol.close_code == 1009 or protocol.state is not State.OPEN
    assert not fast.enabled and len(fast._buffer) == 0


def test_frames_we_build_are_read_by_websockets_as_sent() -> None:
    for side, reader_side in ((Side.CLIENT, Side.SERVER), (Side.SERVER, Side.CLIENT)):
        fast = FastFrames(Protocol(side, state=State.OPEN), None)
        reader = Protocol(reader_side, state=State.OPEN, max_size=None)
        payloads = [b"", b"a", b"b" * 125, b"c" * 126, b"d" * 65535, b"e" * 65536]
        for payload in payloads:
            reader.receive_data(fast.frame(payload))
        got = [bytes(frame.data) for frame in reader.events_received()]
        assert got == payloads
        assert reader.state is State.OPEN


def test_a_clients_masking_keys_are_random_and_fresh() -> None:
    fast = FastFrames(Protocol(Side.CLIENT, state=State.OPEN), None)
    keys = [fast.frame(b"x")[2:6] for _ in range(600)]  # across a refill of the random bytes
    assert len(set(keys)) > 590


def test_after_a_close_frame_websockets_reads_everything() -> None:
    protocol = Protocol(Side.CLIENT, state=State.OPEN, max_size=MAX_SIZE)
    fast = FastFrames(protocol, MAX_SIZE)
    events = fast.receive(raw_frame(8, struct.pack("!H", 1000)) + raw_frame(2, b"late"))
    assert protocol.state is not State.OPEN and not fast.enabled
    assert b"late" not in events


def test_handshake_ended_cleanly_sees_bytes_after_the_http_message() -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert handshake_ended_cleanly(head)
    assert not handshake_ended_cleanly(head + b"\x82")
    assert not handshake_ended_cleanly(b"GET / HTTP/1.1\r\n")
