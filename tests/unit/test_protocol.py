"""The sans-I/O protocol driven by hand: two Protocol objects passing bytes."""

from __future__ import annotations

from typing import Any

from tether.codec import TAG_DESCRIBED_REF, pack_word
from tether.protocol import AnswerReceived, Incoming, Opened, Protocol


class Thing:
    def method(self) -> int:
        return 1


class FakeProxy:
    def __init__(self, key: int, info: Any) -> None:
        self.key, self.info = key, info


def connected() -> tuple[Protocol, Protocol]:
    client = Protocol(client=True, root=Thing(), proxy_factory=FakeProxy)
    server = Protocol(client=False, root=Thing(), proxy_factory=FakeProxy)
    assert server.receive(client.opening()) == [Opened(0)]
    (exposure,) = server.data_to_send()
    assert client.receive(exposure) == [Opened(0)]
    return client, server


def test_the_hello_answer_takes_effect_before_the_next_frame_is_read() -> None:
    client, server = connected()
    assert client.peer_tether_key is not None
    hello_id, hello = client.encode_call(client.peer_tether_key, "hello", (client.hello_info(),))
    (incoming,) = server.receive(hello)
    assert isinstance(incoming, Incoming)
    answer = server.perform(incoming.message)
    assert answer is not None and server.peer_is_python
    events = client.receive(answer)
    assert events == [AnswerReceived(hello_id, server.hello_info())]  # type: ignore[arg-type]
    # Before the handshake code even sees that answer, the next frame (here: our answer to a
    # request from the server) is written for a Python peer, with class info.
    frame = client.encode_answer(b"\x00" * 16, Thing())
    assert frame[28:32] == pack_word(TAG_DESCRIBED_REF)


def test_without_hello_references_are_plain_caffeine_words() -> None:
    client, _ = connected()
    frame = client.encode_answer(b"\x00" * 16, Thing())
    assert frame[28:32] == pack_word(0x60000001)


def test_root_is_answered_as_a_reference_to_the_root() -> None:
    client, server = connected()
    assert client.peer_tether_key is not None
    _, root_call = client.encode_call(client.peer_tether_key, "root", ())
    (incoming,) = server.receive(root_call)
    assert incoming.message.selector == "root"  # type: ignore[union-attr]
    answer = server.perform(incoming.message)  # type: ignore[union-attr]
    (event,) = client.receive(answer)  # type: ignore[arg-type]
    assert isinstance(event, AnswerReceived) and isinstance(event.value, FakeProxy)
    assert event.value.key == server.exports.key_of(server.root)
