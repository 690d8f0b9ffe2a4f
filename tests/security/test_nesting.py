"""The "on behalf of" word (``0x20000117``, docs/protocol.md 4.1): a peer may say that its
message is nested in a call this side sent it, and the thread waiting for that call then runs
the message. What a hostile peer can and cannot do with it: it can only name calls this side sent
to *that* peer and still waits for; a waiting thread runs one such message at a time (the others
go to workers, so one blocking message cannot hold the rest); a forged or stale id just runs the
message in a worker; a malformed word is a decode error answered to the sender."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator

import pytest

import tether

from .conftest import still_answers
from .wire import NIL, ON_BEHALF, TETHER, UUID, RawPeer, answer, integer, message, mine, words, yours


def server_call(raw: RawPeer, timeout: float = 3.0) -> bytes:
    """Read frames until the server sends us a message-send other than a release; its exchange id."""
    deadline = time.monotonic() + timeout
    while True:
        frame = raw.ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        assert isinstance(frame, bytes)
        if frame[:8] == words(TETHER, UUID):
            return frame[12:28]


@pytest.fixture
def raw2(server: tether.Server) -> Iterator[RawPeer]:
    with RawPeer(server.url) as r:
        yield r


def test_messages_on_behalf_of_a_waiting_call_run_on_its_thread_one_at_a_time(raw: RawPeer) -> None:
    call = raw.new_id()
    raw.send(message(call, yours(raw.root), "apply_here", [mine(1)]))  # the server calls our object 1
    waited = server_call(raw)  # ... and waits for our answer on the handler's thread

    nested = raw.new_id()
    raw.send(message(nested, yours(raw.root), "thread_id", [], on_behalf=waited))
    on_waiting_thread = raw.result(nested)

    forged = raw.new_id()
    raw.send(message(forged, yours(raw.root), "thread_id", [], on_behalf=b"never-sent-id-16"))
    on_worker = raw.result(forged)

    # The waiting thread is busy with a slow message: the next one on behalf of the same call
    # runs in a worker at once instead of queueing behind it.
    slow, quick = raw.new_id(), raw.new_id()
    raw.send(message(slow, yours(raw.root), "pause", [integer(2)], on_behalf=waited))
    raw.send(message(quick, yours(raw.root), "thread_id", [], on_behalf=waited))
    quick_thread = raw.result(quick)  # answered while the slow one still sleeps
    slow_thread = raw.result(slow, timeout=6)

    raw.send(answer(waited, integer(7)))
    handler_thread, value = raw.result(call)
    assert value == 7
    assert on_waiting_thread == handler_thread == slow_thread
    assert on_worker != handler_thread
    assert quick_thread != handler_thread
    still_answers(raw)


def test_a_peer_cannot_name_a_call_sent_to_another_peer(raw: RawPeer, raw2: RawPeer) -> None:
    call = raw.new_id()
    raw.send(message(call, yours(raw.root), "apply_here", [mine(1)]))
    waited = server_call(raw)  # a call the server sent to raw, not to raw2

    stolen = raw2.new_id()
    raw2.send(message(stolen, yours(raw2.root), "thread_id", [], on_behalf=waited))
    other_thread = raw2.result(stolen)

    raw.send(answer(waited, integer(1)))
    handler_thread, _ = raw.result(call)
    assert other_thread != handler_thread


def test_an_answered_call_takes_no_more_messages_on_its_behalf(raw: RawPeer) -> None:
    call = raw.new_id()
    raw.send(message(call, yours(raw.root), "apply_here", [mine(1)]))
    waited = server_call(raw)
    raw.send(answer(waited, integer(1)))
    assert raw.result(call)[1] == 1

    late = raw.new_id()
    raw.send(message(late, yours(raw.root), "pause", [integer(0)], on_behalf=waited))
    assert isinstance(raw.result(late), int)  # answered, by whichever worker was free
    still_answers(raw)


@pytest.mark.parametrize(
    ("tail", "error"),
    [
        (words(ON_BEHALF, NIL), r"expected the exchange id UUID \(0x20000011\), found 0x20000003"),
        (words(ON_BEHALF, UUID, 4) + b"abcd", r"an exchange id has 16 bytes, this one declares 4"),
        (words(ON_BEHALF, UUID, 16) + b"short", r"the exchange id"),
        (words(ON_BEHALF, UUID, 16) + bytes(16) + b"more", r"4 unexpected bytes after the frame's last field"),
        (words(0x2000011F), r"expected keyword arguments \(0x20000108\), the call it is nested in \(0x20000117\)"),
    ],
    ids=["a nil id", "a short id", "a truncated id", "bytes after it", "an unknown word in its place"],
)
def test_a_malformed_on_behalf_word_is_answered_with_a_decode_error(raw: RawPeer, tail: bytes, error: str) -> None:
    exchange_id = raw.new_id()
    raw.send(message(exchange_id, yours(raw.root), "echo", [integer(1)]) + tail)
    with pytest.raises(tether.ProtocolError, match=error):
        raw.result(exchange_id)
    still_answers(raw)


def test_the_word_is_never_written_to_a_peer_that_did_not_say_it_reads_it(raw: RawPeer) -> None:
    """A raw peer (a Smalltalk peer, an older Python peer) gets Caffeine message-sends only."""
    call = raw.new_id()
    raw.send(message(call, yours(raw.root), "apply_here", [mine(1)]))
    deadline = time.monotonic() + 3
    while True:
        frame = raw.ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        assert isinstance(frame, bytes)
        if frame[:8] == words(TETHER, UUID):
            break
    assert struct.pack(">I", ON_BEHALF) not in frame
    raw.send(answer(frame[12:28], integer(1)))
    assert raw.result(call)[1] == 1
