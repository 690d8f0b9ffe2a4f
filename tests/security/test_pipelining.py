"""Hostile cases of promise pipelining (``docs/protocol.md`` 4.1 "keep" and "answer of",
section 7 ``drop_answers``): a peer may reach only answers it asked to be kept, may not make
this side keep without bound, and cannot break the connection with malformed forms."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import tether
from tether.codec import Decoder
from tether.errors import make_exception
from tether.frames import parse_frame

from .conftest import still_answers
from .wire import UUID, RawPeer, array, integer, message, raw_bytes, words, yours

KEEP = 0x20000118
ANSWER_OF = 0x20000119


def answer_of(exchange_id: bytes) -> bytes:
    return words(ANSWER_OF, UUID, 16) + exchange_id


@pytest.fixture
def python_raw(raw: RawPeer) -> Iterator[RawPeer]:
    raw.hello()  # pipelining is for Python peers
    yield raw


def test_a_message_pipelined_on_an_answer_never_kept_is_refused(python_raw: RawPeer) -> None:
    raw = python_raw
    plain = raw.new_id()
    raw.send(message(plain, yours(raw.root), "echo", [integer(5)]))  # answered, but not kept
    assert raw.result(plain) == 5
    for target in (plain, b"\x00" * 16, b"never-sent-id-16"):
        exchange_id = raw.new_id()
        raw.send(message(exchange_id, answer_of(target), "__add__", [integer(1)]))
        with pytest.raises(tether.ProtocolError, match="does not keep"):
            raw.result(exchange_id)
    still_answers(raw)


def test_a_kept_answer_reaches_only_what_the_policy_allows(python_raw: RawPeer) -> None:
    raw = python_raw
    kept = raw.new_id()
    raw.send(message(kept, yours(raw.root), "echo", [integer(5)]) + words(KEEP))
    raw.result(kept)
    exchange_id = raw.new_id()
    raw.send(message(exchange_id, answer_of(kept), "__class__", []))
    with pytest.raises(tether.AccessDenied):
        raw.result(exchange_id)
    exchange_id = raw.new_id()
    raw.send(message(exchange_id, answer_of(kept), "__add__", [integer(1)]))
    assert raw.result(exchange_id) == 6
    raw.send(message(None, yours(0), "drop_answers", [array(raw_bytes(kept))]))
    exchange_id = raw.new_id()
    raw.send(message(exchange_id, answer_of(kept), "__add__", [integer(1)]))
    with pytest.raises(tether.ProtocolError, match="does not keep"):
        raw.result(exchange_id)  # dropped: gone


def test_keep_requests_beyond_the_limit_are_answered_busy() -> None:
    def root(peer: object) -> object:
        from .services import Root

        return Root(peer)

    with tether.serve(root, host="127.0.0.1", port=0, limits=tether.Limits(max_kept_answers=8)) as server:
        with RawPeer(server.url) as raw:
            raw.hello()
            ids = [raw.new_id() for _ in range(12)]
            for exchange_id in ids:
                raw.send(message(exchange_id, yours(raw.root), "echo", [integer(1)]) + words(KEEP))
            answers: dict[bytes, bytes] = {}
            while len(answers) < len(ids):
                frame = raw.ws.recv(timeout=5)
                answers[frame[12:28]] = frame
            results = [
                1 if answers[i][:4] == words(0x2000001D) else make_exception(parse_frame(Decoder(answers[i])))
                for i in ids
            ]
            assert results[:8] == [1] * 8
            assert all(isinstance(r, tether.Busy) and "Limits.max_kept_answers" in str(r) for r in results[8:])
            still_answers(raw)


@pytest.mark.parametrize(
    "frame",
    [
        message(None, yours(0), "drop_answers", [integer(3)]),
        message(None, yours(0), "drop_answers", [array(*[raw_bytes(b"x" * 16)] * 1025)]),
        message(None, yours(0), "drop_answers", [array(raw_bytes(b"short"))]),
        message(None, answer_of(b"\x01" * 16), "echo", [integer(1)]),  # one-way, pipelined on nothing
        message(None, yours(1), "echo", [integer(1)]) + words(KEEP),  # keep on a one-way message
        message(b"K" * 16, words(ANSWER_OF, UUID, 15) + b"\x01" * 15, "echo", []),  # a short id
    ],
    ids=["not an array", "too many ids", "a short id", "one-way on nothing", "keep without an id", "short target"],
)
def test_malformed_pipelining_frames_leave_the_connection_working(python_raw: RawPeer, frame: bytes) -> None:
    python_raw.send(frame)
    time.sleep(0.05)
    still_answers(python_raw)
