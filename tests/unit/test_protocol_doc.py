"""The worked examples of docs/protocol.md section 9, as fixed byte vectors.

Each vector is checked twice: the encoder produces exactly these bytes, and the hex lines
appear verbatim in the document, so the document and the code cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.codec import (
    TAG_DESCRIBED_REF,
    ClassInfo,
    Decoder,
    Encoder,
    decode_value,
    encode_value,
    pack_word,
)
from tether.dispatch import smalltalk_selector
from tether.errors import error_parts
from tether.frames import (
    Answer,
    ErrorAnswer,
    Exposure,
    MessageSend,
    answer_bytes,
    error_answer_bytes,
    exposure_bytes,
    message_send_bytes,
    parse_frame,
)
from tether.values import write_class_info

DOC = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
ID = bytes.fromhex("0123456789ABCDEF0000000000000001")
ID_LINE = "20000011 00000010 01234567 89ABCDEF 00000000 00000001"


def hexlines(*lines: str) -> bytes:
    for line in lines:
        assert line in DOC, f"docs/protocol.md lacks the line {line!r}"
    return bytes.fromhex("".join(lines).replace(" ", ""))


def described(key: int, class_id: int, info: ClassInfo | None) -> bytes:
    out = bytearray(pack_word(TAG_DESCRIBED_REF) + pack_word(0x60000000 + key))
    write_class_info(out, class_id, info)
    return bytes(out)


def test_conversation_start_is_a_single_marker_word() -> None:
    assert exposure_bytes(0) == hexlines("60000000")
    assert parse_frame(Decoder(exposure_bytes(0))) == Exposure(0)


def test_root_message_send() -> None:
    expected = hexlines(
        "20000007", ID_LINE, "00000000", "20000021",
        "20000004 00000004 726F6F74", "20000008 00000000",
    )  # fmt: skip
    assert message_send_bytes(Encoder(), ID, 0, "root", []) == expected


def test_root_answer_is_a_plain_marker() -> None:
    expected = hexlines("2000001D", ID_LINE, "60000001")
    assert answer_bytes(Encoder(), ID, None)[:-4] + pack_word(0x60000001) == expected


def test_add_message_send_and_answer() -> None:
    send = hexlines(
        "20000007", ID_LINE, "00000001", "20000021",
        "20000004 00000003 616464", "20000008 00000002 40000003 40000004",
    )  # fmt: skip
    assert message_send_bytes(Encoder(), ID, 1, "add", [3, 4]) == send
    assert answer_bytes(Encoder(), ID, 7) == hexlines("2000001D", ID_LINE, "40000007")
    frame = parse_frame(Decoder(hexlines("2000001D", ID_LINE, "40000007")))
    assert frame == Answer(ID, 7)


VALUES = [
    ("hello", "20000005 00000005 68656C6C6F"),
    ([4], "20000008 00000001 40000004"),
    (None, "20000003"),
    (True, "20000001"),
    (False, "20000002"),
    (-1, "20000101 00000001 FF"),
    (2**29, "20000101 00000004 20000000"),
    (-(2**31), "20000101 00000004 80000000"),
    (2**64, "20000101 00000009 010000000000000000"),
    (1.5, "20000102 3FF8000000000000"),
    (1 + 2j, "20000103 3FF0000000000000 4000000000000000"),
    ((1, "a"), "20000104 00000002 40000001 20000005 00000001 61"),
    ({"a": 1}, "20000105 00000001 20000005 00000001 61 40000001"),
    ({1}, "20000106 00000001 40000001"),
    (frozenset({2}), "20000107 00000001 40000002"),
    (b"\x00\xff", "2000001B 00000002 00FF"),
    (slice(1, None, 2), "2000010D 40000001 20000003 40000002"),
    (Ellipsis, "2000010E"),
]


@pytest.mark.parametrize(("value", "line"), VALUES, ids=[repr(v) for v, _ in VALUES])
def test_value_vectors(value: object, line: str) -> None:
    data = hexlines(line)
    assert encode_value(value) == data
    decoded = decode_value(data)
    assert decoded == value and type(decoded) is type(value)


def test_keyword_arguments() -> None:
    expected = hexlines(
        "20000007", ID_LINE, "00000001", "20000021",
        "20000004 00000005 7363616C65", "20000008 00000001 40000002",
        "20000108 00000001", "20000004 00000002 6279", "40000003",
    )  # fmt: skip
    assert message_send_bytes(Encoder(), ID, 1, "scale", [2], {"by": 3}) == expected


def test_a_callback_says_which_call_it_is_nested_in() -> None:
    callback_id = bytes.fromhex("FEDCBA98765432100000000000000009")
    expected = hexlines(
        "20000007", "20000011 00000010 FEDCBA98 76543210 00000000 00000009", "00000004", "20000021",
        "20000004 00000008 5F5F63616C6C5F5F", "20000008 00000001 40000005",
        "20000117", ID_LINE,
    )  # fmt: skip
    assert message_send_bytes(Encoder(), callback_id, 4, "__call__", [5], on_behalf=ID) == expected


def test_one_way_release() -> None:
    expected = hexlines(
        "20000007", "20000003", "00000000", "20000021",
        "20000004 00000007 72656C65617365", "20000008 00000001",
        "20000008 00000004 40000001 40000001 40000005 40000002",
    )  # fmt: skip
    assert message_send_bytes(Encoder(), None, 0, "release", [[1, 1, 5, 2]]) == expected


def test_error_answer() -> None:
    expected = hexlines(
        "20000109", ID_LINE,
        "20000005 00000011 6275696C74696E732E4B65794572726F72",
        "20000005 00000006 2744756E6527",
        "20000008 00000001 20000005 00000004 44756E65",
        "20000003",
    )  # fmt: skip
    assert error_answer_bytes(ID, *error_parts(KeyError("Dune"), False)) == expected
    frame = parse_frame(Decoder(expected))
    assert frame == ErrorAnswer(ID, "builtins.KeyError", "'Dune'", ["Dune"], None)


def test_described_references() -> None:
    first = hexlines(
        "2000010A", "60000001", "2000010B 00000001", "20000005 00000004 63616C63",
        "20000005 0000000A 43616C63756C61746F72", "00000001 20000004 00000003 616464",
        "00000000",
    )  # fmt: skip
    assert described(1, 1, ClassInfo("calc", "Calculator", frozenset({"add"}))) == first
    assert described(2, 1, None) == hexlines("2000010A 60000002 2000010C 00000001")


def test_message_send_frame_parses_back() -> None:
    data = message_send_bytes(Encoder(), ID, 1, "scale", [2], {"by": 3})

    class Refs:
        def your_object(self, key: int) -> object:
            return f"object {key}"

    frame = parse_frame(Decoder(data, refs=Refs()))  # type: ignore[arg-type]
    assert frame == MessageSend(ID, "object 1", "scale", [2], {"by": 3})


def test_shared_objects_and_names() -> None:
    shared = [1]
    assert Encoder().encode([shared, shared]) == hexlines(
        "20000008 00000002", "20000008 00000001 40000001", "20000110 00000001"
    )
    out = bytearray()
    Encoder().write_named(int, ("builtins", "int"), out, fallback=False)
    assert bytes(out) == hexlines(
        "20000114", "20000005 00000008 6275696C74696E73", "20000005 00000003 696E74", "20000003", "20000003"
    )


def test_objects_by_value() -> None:
    import dataclasses

    from tether.protocol import Protocol

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    Point.__module__ = "geometry"  # no source to be found under that name: fingerprint nil
    Point.__qualname__ = "Point"
    protocol = Protocol(client=True, proxy_factory=lambda key, info: None)
    assert protocol.encoder.encode(Point(1, 2)) == hexlines(
        "20000111", "20000112 00000001", "20000005 00000008 67656F6D65747279",
        "20000005 00000005 506F696E74", "20000003", "40000001 40000002",
    )  # fmt: skip
    assert protocol.encoder.encode(Point(3, 4)) == hexlines("20000111 20000113 00000001 40000003 40000004")
    protocol.references.peer_is_python = True  # after hello: the compact forms
    assert protocol.encoder.encode(Point(3, 4)) == hexlines("21000001 40000003 40000004")
    assert protocol.encoder.encode("ab") == bytes.fromhex("2200000261 62".replace(" ", ""))


def test_a_smalltalk_conversation_in_the_javascript_marker_base() -> None:
    """9.8: the base taken from the first exposure, plain markers in it, a keyword selector."""
    from tether.protocol import Opened, Protocol

    server = Protocol(client=False, root=object(), proxy_factory=lambda key, info: None)
    assert server.receive(hexlines("60000001")) == [Opened(0)]
    (exposure,) = server.data_to_send()
    assert exposure == hexlines("60000001")
    (incoming,) = server.receive(message_send_bytes(Encoder(), ID, 0, "root", []))
    server.perform(incoming.message)  # type: ignore[union-attr]
    (answer,) = server.data_to_send()
    assert answer == hexlines("2000001D", ID_LINE, "60000002")
    send = hexlines(
        "20000007", ID_LINE, "00000001", "20000021",
        "20000004 00000007 61743A7075743A", "20000008 00000002 40000001 40000005",
    )  # fmt: skip
    assert message_send_bytes(Encoder(), ID, 1, "at:put:", [1, 5]) == send
    assert answer_bytes(Encoder(), ID, 5) == hexlines("2000001D", ID_LINE, "40000005")
    assert smalltalk_selector("at_put", 2) == "at:put:"


def test_the_debugging_part_of_an_error_answer() -> None:
    """Section 10.4: the part a debugging peer's error answer carries after its traceback."""
    from tether.debug import FailurePart, offer_debugging
    from tether.protocol import Protocol

    protocol = Protocol(client=False, proxy_factory=lambda key, info: None)
    protocol.references.peer_is_python = True  # after hello: described references, compact strings
    offer_debugging(protocol)
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError as exc:
        error = exc
    assert error.__traceback__ is not None
    frames = (("/srv/calc.py", 2, "divide", "    return a / b"),)
    frames_bytes = hexlines(
        "20000104 00000001", "20000104 00000004", "2200000C 2F7372762F63616C632E7079", "40000002",
        "22000006 646976696465", "22000010 2020202072657475726E2061202F2062",
    )  # fmt: skip
    first = bytearray()
    FailurePart(protocol, ID, error, error.__traceback__, frames).write(first, ID)
    assert bytes(first) == hexlines(
        "20000120", "2000010A 60000001", "2000010B 00000001", "20000005 0000000C 7465746865722E6465627567",
        "20000005 00000007 4661696C757265", "00000001 20000004 00000005 6465627567", "00000000",
    ) + frames_bytes  # fmt: skip
    second = bytearray()
    FailurePart(protocol, ID, error, error.__traceback__, frames).write(second, ID)
    assert bytes(second) == hexlines("20000120 2000010A 60000002 2000010C 00000001") + frames_bytes
    # Read back after an error answer: the failure (here a stand-in for the proxy) and the frames.
    answer = error_answer_bytes(ID, "builtins.ZeroDivisionError", "division by zero", ["division by zero"], "tb")
    parsed = parse_frame(Decoder(answer + bytes(second), refs=_Importer()))  # type: ignore[arg-type]
    assert parsed.debug == ("object 2", frames)


class _Importer:
    """Stands for the receiver's reference hooks: a "my object" word becomes a label."""

    def my_object(self, key: int, info: object) -> str:
        return f"object {key}"

    def class_info(self, class_id: int) -> object:
        return None


def test_a_pipelined_chain() -> None:
    """9.9: a call that says keep, a message to its answer, and the drop."""
    from tether.frames import AnswerOf

    second = bytes.fromhex("0123456789ABCDEF0000000000000002")
    keep = hexlines(
        "20000007", ID_LINE, "00000001", "20000021",
        "20000004 0000000C 6D616B655F636F756E746572", "20000008 00000000", "20000118",
    )  # fmt: skip
    assert message_send_bytes(Encoder(), ID, 1, "make_counter", [], keep=True) == keep
    pipelined = hexlines(
        "20000007", "20000011 00000010 01234567 89ABCDEF 00000000 00000002",
        "20000119 20000011 00000010 01234567 89ABCDEF 00000000 00000001", "20000021",
        "20000004 00000009 696E6372656D656E74", "20000008 00000000",
    )  # fmt: skip
    assert message_send_bytes(Encoder(), second, AnswerOf(ID), "increment", []) == pipelined
    frame = parse_frame(Decoder(pipelined))
    assert frame.receiver == AnswerOf(ID) and frame.selector == "increment" and not frame.keep
    drop = hexlines(
        "20000007", "20000003", "00000000", "20000021", "20000004 0000000C 64726F705F616E7377657273",
        "20000008 00000001 20000008 00000001 2000001B 00000010 0123456789ABCDEF0000000000000001",
    )  # fmt: skip
    assert message_send_bytes(Encoder(), None, 0, "drop_answers", [[ID]]) == drop


def test_error_answer_with_the_exceptions_id() -> None:
    """9.5, to a Python peer: the part after the traceback that lets the exception go home."""
    error_id = bytes.fromhex("0123456789ABCDEF0000000000000002")
    expected = hexlines(
        "20000109", ID_LINE,
        "20000005 00000011 6275696C74696E732E4B65794572726F72",
        "20000005 00000006 2744756E6527",
        "20000008 00000001 20000005 00000004 44756E65",
        "20000003", "20000121 0123456789ABCDEF0000000000000002",
    )  # fmt: skip
    parts = error_parts(KeyError("Dune"), False)
    assert error_answer_bytes(ID, *parts, ("mine", error_id)) == expected
    assert parse_frame(Decoder(expected)).identity == ("mine", error_id)


class _Refs:
    """Just enough of a connection to read 9.10's frames: B's object 1, and descriptors."""

    def __init__(self) -> None:
        self.infos: dict[int, ClassInfo] = {}

    def your_object(self, key: int) -> object:
        return ("yours", key)

    def my_object(self, key: int, info: ClassInfo | None) -> object:
        return ("mine", key, info.name if info else None)

    def define_class_info(self, class_id: int, info: ClassInfo) -> None:
        self.infos[class_id] = info

    def class_info(self, class_id: int) -> ClassInfo:
        return self.infos[class_id]

    def handoff(self, handoff: object) -> object:
        return handoff


def test_a_three_party_handoff() -> None:
    """9.10: the deposit, the descriptor and the withdrawal, as written and as read."""
    import hashlib

    from tether.gifts import Handoff, write_handoff

    gift, vat, secret = bytes(range(0xA0, 0xB0)), bytes(range(0xB0, 0xC0)), bytes(range(0x20))
    gift_line = "2000001B 00000010 A0A1A2A3A4A5A6A7A8A9AAABACADAEAF"
    deposit = hexlines(
        "20000007", "20000003", "00000000", "20000021", "20000004 0000000C 6465706F7369745F67696674",
        "20000008 00000004", gift_line, "00000001",
        "2000001B 00000020 630DCD2966C4336691125448BBB25B4FF412A49C732DB2C8ABC1B8581BD710DD",
        "20000102 404E000000000000",
    )  # fmt: skip
    assert hashlib.sha256(secret).digest() == deposit[-44:-12]
    frame = parse_frame(Decoder(deposit, 0, _Refs()))
    assert isinstance(frame, MessageSend) and frame.exchange_id is None and frame.selector == "deposit_gift"
    assert frame.args == [gift, ("yours", 1), hashlib.sha256(secret).digest(), 60.0]
    descriptor = hexlines(
        "20000123", "2000001B 00000010 B0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF", gift_line,
        "20000005 00000012 77733A2F2F31302E302E302E323A38373635", "2000010A 60000002",
        "2000010B 00000001 20000005 00000003 617070 20000005 00000007 436F756E746572",
        "00000001 20000004 00000009 696E6372656D656E74 00000000",
    )  # fmt: skip
    written = bytearray()
    write_handoff(written, vat, "ws://10.0.0.2:8765", gift)
    assert bytes(written) + described(2, 1, ClassInfo("app", "Counter", frozenset({"increment"}))) == descriptor
    read = Decoder(descriptor, 0, _Refs()).read_object()
    assert read == Handoff(vat, "ws://10.0.0.2:8765", gift, ("mine", 2, "app.Counter"))
    withdraw = hexlines(
        "20000007", ID_LINE, "00000000", "20000021", "20000004 0000000D 77697468647261775F67696674",
        "20000008 00000002", gift_line,
        "2000001B 00000020 000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
    )  # fmt: skip
    assert message_send_bytes(Encoder(), ID, 0, "withdraw_gift", [gift, secret]) == withdraw
