"""Frames written by hand: a message-send whose body cannot be read gets an error answer and the
connection lives on; a frame that breaks the conversation itself closes only that connection,
with 1002 and a reason, and the server goes on serving; a message-send is performed only on an
object exposed to the peer, never on a value the peer wrote as the receiver."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

import tether

from .conftest import server_still_answers, still_answers
from .wire import (
    KWARGS,
    MESSAGE,
    MY_OBJECT,
    SYMBOL,
    TETHER,
    UUID,
    RawPeer,
    by_value,
    integer,
    message,
    named,
    string,
    tuple_,
    words,
    yours,
)


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (
            lambda raw, i: message(i, yours(4242), "add", [integer(1), integer(2)]),
            r"no object is exposed under key 4242 on this connection",
        ),
        (lambda raw, i: message(i, yours(raw.root), "echo", [words(0x70000000)]), r"word 0x70000000 is a reserved instruction"),
        (
            lambda raw, i: message(i, yours(raw.root), "echo", [integer(1)]) + words(KWARGS, 0) + b"trailing",
            r"8 unexpected bytes after the frame's last field",
        ),
        (
            lambda raw, i: message(i, yours(raw.root), "echo", [words(0x20000102) + b"\x3f\xf8\x00\x00"]),
            r"Float declares 8 bytes but only 4 remain in the frame",
        ),
        (
            lambda raw, i: words(TETHER, UUID, 16) + i + yours(raw.root) + words(MESSAGE, SYMBOL, 3) + b"\xff\xfe\xfd"
            + words(0x20000008, 0),
            r"the selector Symbol is not valid UTF-8",
        ),
        (lambda raw, i: message(i, yours(raw.root), "echo", [words(0x3FFFFFFF)]), r"unknown class tag 0x3fffffff"),
    ],
    ids=["an unknown your-object key", "a reserved instruction word", "bytes after the frame", "a truncated frame",
         "a selector of bad UTF-8", "an unknown class tag"],
)  # fmt: skip
def test_a_message_send_whose_body_cannot_be_read_gets_an_error_answer(
    raw: RawPeer, frame: Any, error: str
) -> None:
    exchange_id = raw.new_id()
    raw.send(frame(raw, exchange_id))
    with pytest.raises(tether.ProtocolError, match=rf"cannot read the message-send: {error}"):
        raw.result(exchange_id)
    still_answers(raw)


@pytest.fixture
def socket(server: tether.Server) -> Iterator[Any]:
    """A WebSocket to the server on which no conversation has started."""
    ws = ws_connect(server.url, compression=None, open_timeout=5, close_timeout=1, legacy=True)
    try:
        yield ws
    finally:
        ws.close()


def _closed_with(ws: Any) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=3)
    rcvd = info.value.rcvd
    assert rcvd is not None, "the server dropped the connection without a close frame"
    return rcvd.code, rcvd.reason


def test_a_message_send_before_the_conversation_starts_closes_with_1002(server: tether.Server, socket: Any) -> None:
    socket.send(message(b"E" * 16, yours(0), "root"))
    code, reason = _closed_with(socket)
    assert code == 1002 and "message-send before the conversation start frame" in reason
    server_still_answers(server)


def test_a_second_exposure_frame_closes_with_1002(server: tether.Server, socket: Any) -> None:
    socket.send(words(MY_OBJECT))
    assert socket.recv(timeout=3) == words(MY_OBJECT)
    socket.send(words(MY_OBJECT + 3))
    code, reason = _closed_with(socket)
    assert code == 1002 and "exposed its Tether twice" in reason
    server_still_answers(server)


def test_a_text_message_closes_with_1002(server: tether.Server, socket: Any) -> None:
    socket.send(words(MY_OBJECT))
    socket.recv(timeout=3)
    socket.send("root")
    code, reason = _closed_with(socket)
    assert code == 1002 and "binary" in reason
    server_still_answers(server)


def test_an_unknown_frame_tag_closes_with_1002_and_names_it(server: tether.Server, socket: Any) -> None:
    socket.send(words(MY_OBJECT))
    socket.recv(timeout=3)
    socket.send(words(0x2000DEAD, 1, 2, 3))
    code, reason = _closed_with(socket)
    assert code == 1002 and "unknown frame tag 0x2000dead" in reason
    server_still_answers(server)


@pytest.mark.parametrize(
    ("receiver", "selector", "args"),
    [
        (string("ab"), "__mul__", [integer(3)]),  # "x" * 2**32: gigabytes from a 60-byte frame
        (integer(10), "__pow__", [integer(50)]),  # 10 ** 10**9: minutes of CPU with the GIL held
        (named("builtins", "bytes"), "__call__", [integer(8)]),  # bytes(2**34)
        (by_value(1, "pathlib", "PurePosixPath", tuple_(string("/etc"))), "__truediv__", [string("passwd")]),
    ],
    ids=["a String", "an Integer", "a value type by name", "a path by value"],
)
def test_the_receiver_of_a_message_send_must_be_an_object_exposed_to_the_peer(
    raw: RawPeer, receiver: bytes, selector: str, args: list[bytes]
) -> None:
    """A peer reaches only the objects exposed to it: a value it wrote itself is not one, and
    performing operations on it would let one small frame make the server allocate or compute
    without bound (the decoding limits bound the frame, not what is done with its values)."""
    with pytest.raises(tether.TetherError, match=r"receiver"):
        raw.call(receiver, selector, *args)
    still_answers(raw)
