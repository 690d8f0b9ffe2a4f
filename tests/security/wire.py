"""Wire bytes written by hand from ``docs/protocol.md``, and a raw WebSocket peer that speaks them.

The attacks that the public API cannot produce (names the client side never writes, forged
class info, frames built to break a limit) are written here word by word, so that each test
shows exactly what a hostile peer puts on the wire.
"""

from __future__ import annotations

import itertools
import struct
import time
from typing import Any

from websockets.sync.client import connect as ws_connect

from tether.codec import Decoder
from tether.errors import make_exception
from tether.exceptions import DecodeError
from tether.frames import ErrorAnswer, parse_frame

# Words of section 3 and 4.
TRUE, FALSE, NIL = 0x20000001, 0x20000002, 0x20000003
SYMBOL, STRING, TETHER, ARRAY, UUID, BYTEARRAY = 0x20000004, 0x20000005, 0x20000007, 0x20000008, 0x20000011, 0x2000001B
ANSWER, MESSAGE = 0x2000001D, 0x20000021
INTEGER, TUPLE, DICT, SET, FROZENSET, KWARGS = 0x20000101, 0x20000104, 0x20000105, 0x20000106, 0x20000107, 0x20000108
ERROR_ANSWER, DESCRIBED_REF, CLASS_INFO, CLASS_INFO_REF = 0x20000109, 0x2000010A, 0x2000010B, 0x2000010C
SLICE, BACKREF, OBJECT, CLASS, CLASS_REF, NAMED, FUNCTION, YOUR_CLASS = (
    0x2000010D, 0x20000110, 0x20000111, 0x20000112, 0x20000113, 0x20000114, 0x20000115, 0x20000116,
)  # fmt: skip
ON_BEHALF = 0x20000117
COMPACT_OBJECT = 0x21000000
SMALLINT = 0x40000000
MY_OBJECT = 0x60000000


def words(*ws: int) -> bytes:
    return b"".join(struct.pack(">I", w) for w in ws)


def string(text: str, tag: int = STRING) -> bytes:
    data = text.encode("utf-8")
    return words(tag, len(data)) + data


def symbol(text: str) -> bytes:
    return string(text, SYMBOL)


def raw_bytes(data: bytes) -> bytes:
    return words(BYTEARRAY, len(data)) + data


def integer(n: int) -> bytes:
    if 0 <= n < 0x20000000:
        return words(SMALLINT + n)
    data = n.to_bytes(((n if n >= 0 else ~n).bit_length() + 8) // 8, "big", signed=True)
    return words(INTEGER, len(data)) + data


def nil() -> bytes:
    return words(NIL)


def array(*items: bytes) -> bytes:
    return words(ARRAY, len(items)) + b"".join(items)


def tuple_(*items: bytes) -> bytes:
    return words(TUPLE, len(items)) + b"".join(items)


def set_(*items: bytes) -> bytes:
    return words(SET, len(items)) + b"".join(items)


def frozenset_(*items: bytes) -> bytes:
    return words(FROZENSET, len(items)) + b"".join(items)


def dict_(*pairs: tuple[bytes, bytes]) -> bytes:
    return words(DICT, len(pairs)) + b"".join(k + v for k, v in pairs)


def named(module: str, qualname: str, fallback: bytes | None = None) -> bytes:
    """A reference by name (0x20000114): module, qualname, no fingerprint, a fallback or nil."""
    return words(NAMED) + string(module) + string(qualname) + nil() + (fallback or nil())


def by_value(class_id: int, module: str, qualname: str, *state: bytes) -> bytes:
    """An object by value whose class this peer names for the first time (0x20000111 0x20000112)."""
    return words(OBJECT, CLASS, class_id) + string(module) + string(qualname) + nil() + b"".join(state)


def by_value_again(class_id: int, *state: bytes) -> bytes:
    """An object by value of a class this peer named before (0x20000111 0x20000113 id)."""
    return words(OBJECT, CLASS_REF, class_id) + b"".join(state)


def compact(class_id: int, *state: bytes) -> bytes:
    """The compact object form, 0x21000000 + id, of a class this peer named before."""
    return words(COMPACT_OBJECT + class_id) + b"".join(state)


def backref(index: int) -> bytes:
    return words(BACKREF, index)


def mine(key: int) -> bytes:
    """A "my object" marker: the receiver makes a proxy for this peer's object ``key``."""
    return words(MY_OBJECT + key)


def yours(key: int) -> bytes:
    """A "your object" word: the receiver's own exposed object ``key``."""
    return words(key)


def described(
    key: int, class_id: int, module: str, qualname: str, methods: tuple[str, ...] = (), specials: tuple[str, ...] = ()
) -> bytes:
    """A described reference with a class info definition: what a Python peer claims its object is."""
    out = words(DESCRIBED_REF, MY_OBJECT + key, CLASS_INFO, class_id) + string(module) + string(qualname)
    out += words(len(methods)) + b"".join(symbol(m) for m in methods)
    out += words(len(specials)) + b"".join(symbol(s) for s in specials)
    return out


def message(
    exchange_id: bytes | None,
    receiver: bytes,
    selector: str,
    args: list[bytes] | tuple[bytes, ...] = (),
    kwargs: dict[str, bytes] | None = None,
    on_behalf: bytes | None = None,
) -> bytes:
    """A message-send frame (section 4.1); ``exchange_id`` None makes it one-way; ``on_behalf``
    the exchange id of the receiver's call it claims to be nested in."""
    out = words(TETHER) + (words(UUID, 16) + exchange_id if exchange_id is not None else nil())
    out += receiver + words(MESSAGE) + symbol(selector) + words(ARRAY, len(args)) + b"".join(args)
    if kwargs:
        out += words(KWARGS, len(kwargs)) + b"".join(symbol(k) + v for k, v in kwargs.items())
    if on_behalf is not None:
        out += words(ON_BEHALF, UUID, 16) + on_behalf
    return out


def answer(exchange_id: bytes, value: bytes) -> bytes:
    """An answer frame (section 4.2)."""
    return words(ANSWER, UUID, 16) + exchange_id + value


class Marker:
    """An answer that is a plain "my object" word: the server exposed its object ``key`` to us."""

    def __init__(self, key: int) -> None:
        self.key = key

    def __repr__(self) -> str:
        return f"Marker({self.key})"


def key_of(answer: Any) -> int:
    """The key of the server's object in an answer: a plain marker, or a described reference."""
    if isinstance(answer, Marker):
        return answer.key
    assert isinstance(answer, bytes) and answer[:4] == words(DESCRIBED_REF), f"not a reference: {answer!r}"
    return int(struct.unpack(">I", answer[4:8])[0]) - MY_OBJECT


class ServerAsked(AssertionError):
    """The server sent this raw peer a message-send (other than a release) while it should
    have been answering ours: it asked one of our objects something."""


class RawPeer:
    """A WebSocket client speaking the protocol byte by byte (no hello: plain markers only,
    unless :meth:`hello` is called). ``root`` is the key of the server's root object here."""

    def __init__(self, url: str) -> None:
        self.ws = ws_connect(url, compression=None, open_timeout=5, close_timeout=0.5, max_size=None, legacy=True)
        self.ws.send(words(MY_OBJECT))  # expose our Tether under key 0
        reply = self.ws.recv(timeout=5)
        assert reply == words(MY_OBJECT), f"the server's exposure frame is {reply!r}"
        self._ids = itertools.count(1)
        self.asked: list[str] = []
        root = self.call(yours(0), "root")
        assert isinstance(root, Marker), f"root answered {root!r}"
        self.root = root.key

    def new_id(self) -> bytes:
        return b"HOSTILE-" + next(self._ids).to_bytes(8, "big")

    def send(self, frame: bytes) -> None:
        self.ws.send(frame)

    def hello(self) -> None:
        """Say we are a Python peer: the server then writes described references and compact forms."""
        hello = dict_((string("language"), string("python")))
        self.call(yours(0), "hello", hello)

    def call(self, receiver: bytes, selector: str, *args: bytes, kwargs: dict[str, bytes] | None = None) -> Any:
        """Send a message-send and return its answer; raise the error of an error answer."""
        exchange_id = self.new_id()
        self.send(message(exchange_id, receiver, selector, list(args), kwargs))
        return self.result(exchange_id)

    def call_root(self, selector: str, *args: bytes, kwargs: dict[str, bytes] | None = None) -> Any:
        return self.call(yours(self.root), selector, *args, kwargs=kwargs)

    def result(self, exchange_id: bytes, timeout: float = 3.0) -> Any:
        """Read frames until the answer to ``exchange_id``: its value (a :class:`Marker`, a
        plain value, or the raw answer bytes when it holds more than plain values), or raise
        the exception of its error answer (as the public API would)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            assert isinstance(frame, bytes), "the server sent a text message"
            head = struct.unpack(">I", frame[:4])[0]
            if head == TETHER:
                selector = _selector_of(frame)
                if selector == "release":
                    continue
                self.asked.append(selector)
                if frame[4:8] == words(UUID):  # answer it with an error, so the server's reader goes on
                    self.send(
                        words(ERROR_ANSWER, UUID, 16) + frame[12:28] + string("builtins.RuntimeError")
                        + string("a hostile peer answers nothing") + array() + nil()
                    )  # fmt: skip
                raise ServerAsked(
                    f"while reading our message the server sent us a message-send {selector!r}: it "
                    "asked one of our objects something (a remote call from its decoding)"
                )
            if frame[12:28] != exchange_id:
                continue
            if head == ERROR_ANSWER:
                error = parse_frame(Decoder(frame))
                assert isinstance(error, ErrorAnswer)
                raise make_exception(error)
            assert head == ANSWER, f"unexpected frame {frame[:4].hex()}"
            body = frame[28:]
            if len(body) == 4 and MY_OBJECT <= struct.unpack(">I", body)[0] < 0x70000000:
                return Marker(struct.unpack(">I", body)[0] - MY_OBJECT)
            try:
                d = Decoder(body)
                value = d.read_object()
                return value if d.at_end() else body
            except DecodeError:
                return body

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _selector_of(frame: bytes) -> str:
    """The selector of a message-send frame sent to one of our objects by a bare key."""
    pos = 4 + (4 if frame[4:8] == words(NIL) else 24)
    pos += 4  # the receiver: a bare "your object" word
    if frame[pos : pos + 4] != words(MESSAGE):
        return "?"
    n = struct.unpack(">I", frame[pos + 8 : pos + 12])[0]
    return frame[pos + 12 : pos + 12 + n].decode("utf-8", "replace")
