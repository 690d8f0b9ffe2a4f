"""The sans-I/O protocol driven by hand: two Protocol objects passing bytes."""

from __future__ import annotations

from typing import Any

from tether.codec import TAG_DESCRIBED_REF, pack_word
from tether.protocol import AnswerReceived, Incoming, Opened, Protocol, State
from tether.words import TAG_ERROR_ANSWER


class Thing:
    def method(self) -> int:
        return 1


class FakeProxy:
    def __init__(self, key: int, info: Any) -> None:
        self.key, self.info = key, info


def connected() -> tuple[Protocol, Protocol]:
    client = Protocol(client=True, root=Thing(), proxy_factory=FakeProxy)
    server = Protocol(client=False, root=Thing(), proxy_factory=FakeProxy)
    assert client.state is State.CONNECTING and server.state is State.CONNECTING
    client.queue_opening()
    (opening,) = client.data_to_send()
    assert server.receive(opening) == [Opened(0)]
    (exposure,) = server.data_to_send()
    assert client.receive(exposure) == [Opened(0)]
    assert client.state is State.OPEN and server.state is State.OPEN
    return client, server


def sent(protocol: Protocol) -> bytes:
    """The one frame ``protocol`` queued."""
    (frame,) = protocol.data_to_send()
    return frame


def test_the_hello_answer_takes_effect_before_the_next_frame_is_read() -> None:
    client, server = connected()
    assert client.peer_tether_key is not None
    hello_id = client.next_id()
    client.queue_call(client.peer_tether_key, "hello", (client.hello_argument(),), exchange_id=hello_id)
    (incoming,) = server.receive(sent(client))
    assert isinstance(incoming, Incoming)
    server.perform(incoming.message)
    assert server.peer_is_python
    events = client.receive(sent(server))
    assert events == [AnswerReceived(hello_id, server.hello_argument())]
    assert client.peer_info == server.hello_info()
    # Before the handshake code even sees that answer, the next frame (here: our answer to a
    # request from the server) is written for a Python peer, with class info.
    client.queue_answer(b"\x00" * 16, Thing())
    assert sent(client)[28:32] == pack_word(TAG_DESCRIBED_REF)


def test_without_hello_references_are_plain_caffeine_words() -> None:
    client, _ = connected()
    client.queue_answer(b"\x00" * 16, Thing())
    assert sent(client)[28:32] == pack_word(0x60000001)


def test_root_is_answered_as_a_reference_to_the_root() -> None:
    client, server = connected()
    assert client.peer_tether_key is not None
    client.queue_call(client.peer_tether_key, "root", (), exchange_id=client.next_id())
    (incoming,) = server.receive(sent(client))
    assert isinstance(incoming, Incoming) and incoming.message.selector == "root"
    server.perform(incoming.message)
    (event,) = client.receive(sent(server))
    assert isinstance(event, AnswerReceived) and isinstance(event.value, FakeProxy)
    assert event.value.key == server.exports.key_of(server.root)


# -- the outbox: one order, whoever queues ---------------------------------------------------


def test_frames_queued_from_many_threads_reach_the_peer_in_an_order_it_can_read() -> None:
    """Each first reference to an instance of a class defines its class info inside the frame;
    later frames only name the id. Eight threads queue answers at once; the peer, reading the
    drained frames in order, must find every class id defined before it is used."""
    import threading

    client, server = connected()
    client.apply_hello({"language": "python"})
    classes = [type(f"C{n}", (), {"method": lambda self: 1}) for n in range(64)]
    start = threading.Barrier(8)

    def queue_answers(seed: int) -> None:
        start.wait()
        for n in range(200):
            client.queue_answer(client.next_id(), classes[(seed * 7 + n) % 64]())

    threads = [threading.Thread(target=queue_answers, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    frames = client.data_to_send()
    assert len(frames) == 1600 and client.frames_sent == 1600 + 1  # and the opening
    names = set()
    for frame in frames:
        (event,) = server.receive(frame)
        assert isinstance(event, AnswerReceived), event
        assert isinstance(event.value, FakeProxy)
        names.add(event.value.info.qualname)
    assert names == {cls.__qualname__ for cls in classes}


def test_a_violation_stops_reading_and_close_stops_queueing() -> None:
    client, server = connected()
    (violation,) = server.receive(b"\x12\x34\x56\x78junk")
    assert violation.code == 1002  # type: ignore[union-attr]
    assert server.state is State.CLOSING
    client.queue_call(0, "root", (), exchange_id=client.next_id())
    assert server.receive(sent(client)) == []  # nothing more is read
    client.close()
    assert client.state is State.CLOSED
    client.queue_answer(b"\x00" * 16, 1)
    client.queue_call(0, "root", (), exchange_id=client.next_id())
    assert client.data_to_send() == []


def test_a_value_whose_encoding_sends_a_message_is_refused_with_the_reason() -> None:
    """Writing a frame holds the connection's outbox; a value whose reduce method would send a
    message on the same connection meanwhile gets an error answer instead of a deadlock."""
    client, _ = connected()

    class Sneaky:
        def __tether_reduce__(self) -> list[int]:
            client.queue_call(0, "root", (), exchange_id=client.next_id())
            return []

        @classmethod
        def __tether_rebuild__(cls, state: list[int]) -> Sneaky:
            return cls()

    client.queue_answer(b"\x01" * 16, Sneaky())
    (frame,) = client.data_to_send()
    assert frame[:4] == pack_word(TAG_ERROR_ANSWER)
    assert b"would send another message on this connection" in frame


def test_the_codec_asks_the_references_object_not_the_protocol() -> None:
    client, _ = connected()
    assert client.encoder.refs is client.references
    hooks = ("write_reference", "my_object", "your_object", "peer_class", "resolve_named", "define_function")
    assert not any(hasattr(client, name) for name in hooks)
    assert all(callable(getattr(client.references, name)) for name in hooks)


def test_an_error_naming_an_exception_never_sent_is_built_from_its_type() -> None:
    """An error answer may name one of the receiver's own exceptions by the id the receiver
    sent with it (it goes home as itself); an id the receiver never sent gives nothing of its
    own: the error is built from its type name as usual."""
    from tether.frames import error_answer_bytes

    client, server = connected()
    client.apply_hello({"language": "python"})
    server.apply_hello({"language": "python"})
    original = KeyError("k")
    client.queue_error(b"\x01" * 16, original)
    (event,) = server.receive(sent(client))
    sent_id = event.error.__tether_home__[1]  # type: ignore[union-attr]
    home = error_answer_bytes(b"\x02" * 16, "builtins.ValueError", "v", ["v"], None, None, ("yours", sent_id))
    (event,) = client.receive(home)
    assert event.error is original  # type: ignore[union-attr]
    stranger = error_answer_bytes(b"\x03" * 16, "builtins.ValueError", "v", ["v"], None, None, ("yours", b"?" * 16))
    (event,) = client.receive(stranger)
    assert type(event.error) is ValueError and event.error.args == ("v",)  # type: ignore[union-attr]
