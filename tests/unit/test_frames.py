"""Frames: parsing every kind, and fuzzing the parser (any input is accepted or rejected with
ProtocolError, never anything else)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.codec import Decoder, Encoder, pack_word
from tether.exceptions import DecodeError, ProtocolError
from tether.frames import (
    Answer,
    ErrorAnswer,
    Exposure,
    FrameBodyError,
    MessageSend,
    answer_bytes,
    error_answer_bytes,
    message_send_bytes,
    new_id_source,
    parse_frame,
    register_frame_kind,
)

ID = bytes(range(16))


class Refs:
    """Reference hooks that resolve keys below 10 and make tuples for markers."""

    def write_reference(self, obj: object, out: bytearray) -> None:
        raise AssertionError("no references in these tests")

    def my_object(self, key: int, info: Any) -> object:
        return ("proxy", key)

    def your_object(self, key: int) -> object:
        if key >= 10:
            raise DecodeError(f"no object is exposed under key {key}")
        return ("local", key)

    def class_info(self, class_id: int) -> Any:
        raise DecodeError(f"class id {class_id} was never defined")

    def define_class_info(self, class_id: int, info: Any) -> None:
        pass


def parse(data: bytes) -> Any:
    return parse_frame(Decoder(data, refs=Refs()))  # type: ignore[arg-type]


def test_every_builtin_kind_parses() -> None:
    enc = Encoder()
    assert parse(pack_word(0x60000003)) == Exposure(3)
    assert parse(message_send_bytes(enc, ID, 2, "f", [1], {"k": "v"})) == MessageSend(
        ID, ("local", 2), "f", [1], {"k": "v"}
    )
    assert parse(message_send_bytes(enc, None, 0, "release", [[]])).exchange_id is None
    assert parse(answer_bytes(enc, ID, [1, 2])) == Answer(ID, [1, 2])
    assert parse(error_answer_bytes(ID, "builtins.ValueError", "bad", ["bad"], "tb")) == ErrorAnswer(
        ID, "builtins.ValueError", "bad", ["bad"], "tb"
    )


def test_marker_base_is_configurable_for_javascript_peers() -> None:
    frame = parse_frame(Decoder(pack_word(0x60000001), my_object_base=0x60000001))
    assert frame == Exposure(0)


def test_marker_below_the_base_is_rejected() -> None:
    with pytest.raises(DecodeError, match="below this connection's marker base"):
        parse_frame(Decoder(pack_word(0x60000000), my_object_base=0x60000001))


def test_unknown_frame_tag_is_a_protocol_error() -> None:
    with pytest.raises(DecodeError, match="unknown frame tag 0x20000099"):
        parse(pack_word(0x20000099))


def test_short_frames_are_rejected() -> None:
    with pytest.raises(DecodeError, match="at least 4 bytes"):
        parse(b"\x20\x00")


def test_malformed_body_after_the_id_names_the_exchange() -> None:
    data = message_send_bytes(Encoder(), ID, 2, "f", [1, "abc"])[:-1]
    with pytest.raises(FrameBodyError) as info:
        parse(data)
    assert info.value.exchange_id == ID
    assert "$.args[1]" in str(info.value)


def test_unknown_receiver_key_is_answered_not_fatal() -> None:
    with pytest.raises(FrameBodyError, match="no object is exposed under key 12"):
        parse(message_send_bytes(Encoder(), ID, 12, "f", []))


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(FrameBodyError, match="unexpected bytes"):
        parse(answer_bytes(Encoder(), ID, 1) + b"\x00\x00\x00\x00\x00")


def test_exposure_frame_must_be_one_word() -> None:
    with pytest.raises(DecodeError, match="unexpected bytes"):
        parse(pack_word(0x60000000) + pack_word(1))


def test_ids_are_unique() -> None:
    next_id = new_id_source()
    ids = {next_id() for _ in range(10_000)}
    assert len(ids) == 10_000 and all(len(i) == 16 for i in ids)


def test_users_can_register_frame_kinds() -> None:
    class Ping:
        tag: ClassVar[int] = 0x20000180

        def __init__(self, n: int) -> None:
            self.n = n

        @classmethod
        def read(cls, d: Decoder) -> Any:
            return cls(d.word("a count"))

    register_frame_kind(Ping)
    assert parse(pack_word(0x20000180) + pack_word(7)).n == 7
    with pytest.raises(ValueError, match="class tags"):
        Ping.tag = 0x40000000
        register_frame_kind(Ping)


prefixes = st.sampled_from(
    [b"", pack_word(0x20000007), pack_word(0x2000001D), pack_word(0x20000109),
     pack_word(0x20000007) + pack_word(0x20000011) + pack_word(16) + ID]
)  # fmt: skip
words = st.lists(
    st.sampled_from([0, 1, 5, 16, 0x20000003, 0x20000004, 0x20000005, 0x20000008, 0x20000021,
                     0x20000101, 0x20000104, 0x20000105, 0x2000010A, 0x2000010B, 0x40000001,
                     0x60000001, 0x70000000, 0xFFFFFFFF])
    | st.integers(0, 2**32 - 1),
    max_size=24,
).map(lambda ws: b"".join(pack_word(w) for w in ws))  # fmt: skip


@settings(max_examples=2000)
@given(prefixes, words, st.binary(max_size=16))
def test_fuzz_any_input_is_parsed_or_rejected_with_protocol_error(prefix: bytes, body: bytes, tail: bytes) -> None:
    try:
        parse(prefix + body + tail)
    except ProtocolError:
        pass


@settings(max_examples=1000)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data: bytes) -> None:
    try:
        parse(data)
    except ProtocolError:
        pass
