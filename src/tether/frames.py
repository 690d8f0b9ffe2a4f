"""Frames: one WebSocket binary message each, first word a tag naming the class that reads it.

The built-in kinds (``docs/protocol.md`` section 4):

================================  =========================================================
first word                        frame
================================  =========================================================
``0x60000000 + k``                :class:`Exposure`: the sender exposes its Tether under key k
``0x20000007``                    :class:`MessageSend`: exchange id, receiver, Message
``0x2000001D``                    :class:`Answer`: exchange id, answered object
``0x20000109``                    :class:`ErrorAnswer`: exchange id, exception type, text, traceback
================================  =========================================================

More kinds can be added with :func:`register_frame_kind`; a kind is a class with a ``tag`` and a
``read(decoder)`` class method. :func:`parse_frame` never raises anything but
:class:`~tether.exceptions.ProtocolError` (and its subclass ``DecodeError``) on bad input.

On CPython mypyc compiles this module with the codec (``setup.py``): keep it typed, and keep
its constants ``Final``.
"""

from __future__ import annotations

import builtins
import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Protocol

from .codec import Decoder, Encoder, write_str
from .exceptions import DecodeError, ProtocolError
from .hooks import NeedClasses
from .words import (
    MY_OBJECT_BASE,
    MY_OBJECT_END,
    TAG_ANSWER,
    TAG_ANSWER_OF,
    TAG_ARRAY,
    TAG_ERROR_ANSWER,
    TAG_FAILURE,
    TAG_KEEP_ANSWER,
    TAG_KWARGS,
    TAG_MESSAGE,
    TAG_MY_ERROR,
    TAG_NIL,
    TAG_ON_BEHALF,
    TAG_STRING,
    TAG_SYMBOL,
    TAG_TETHER,
    TAG_UUID,
    TAG_YOUR_ERROR,
    pack_word,
)

__all__ = [
    "ID_SIZE",
    "TAG_FAILURE",
    "Answer",
    "AnswerOf",
    "DebugPart",
    "ErrorAnswer",
    "Exposure",
    "FrameBodyError",
    "FrameKind",
    "MessageSend",
    "answer_bytes",
    "error_answer_bytes",
    "expect_end",
    "exposure_bytes",
    "message_send_bytes",
    "new_id_source",
    "parse_frame",
    "read_exchange_id",
    "register_frame_kind",
]

ID_SIZE: Final = 16


class FrameKind(Protocol):
    tag: ClassVar[int]

    @classmethod
    def read(cls, decoder: Decoder) -> Any: ...


_KINDS: Final[dict[int, type[FrameKind]]] = {}


def register_frame_kind(kind: type[FrameKind]) -> type[FrameKind]:
    """Register a frame kind by its ``tag`` (usable as a class decorator)."""
    tag = kind.tag
    if not 0x20000000 <= tag < 0x40000000:
        raise ValueError(f"frame tags are class tags 0x20000000..0x3FFFFFFF, not {tag:#010x}")
    _KINDS[tag] = kind
    return kind


class FrameBodyError(ProtocolError):
    """A frame whose exchange id was read but whose body was not; answer the error to that id."""

    def __init__(self, exchange_id: bytes, error: DecodeError) -> None:
        self.exchange_id = exchange_id
        self.error = error
        super().__init__(str(error))


class _BuiltInKind:
    """The built-in frame kinds' base: it declares their ``tag``, which each sets below its
    class. (Not in the dataclass's body: mypyc, which compiles this module, would make a
    ClassVar there a field, mypyc/mypyc#1122; and it looks a field's type up among the module's
    globals, hence ``builtins.object``.)"""

    __slots__ = ()
    tag: ClassVar[int]


@dataclass(slots=True)
class Exposure:
    """Conversation start: the sender exposes its own Tether object under ``key``."""

    key: int


@dataclass(slots=True)
class MessageSend(_BuiltInKind):
    """Perform ``selector`` on ``receiver`` with ``args``; answer to ``exchange_id``.

    ``exchange_id`` is ``None`` for a one-way message (no answer is sent). ``on_behalf`` is
    the exchange id of a call the receiver sent and still waits for, when the sender sends this
    message while running that call (a nested call or a callback); ``None`` otherwise. ``keep``:
    the receiver keeps this call's answer for messages pipelined on it (``AnswerOf``) until the
    sender drops it. ``receiver`` is an :class:`AnswerOf` for such a pipelined message.
    """

    exchange_id: bytes | None
    receiver: builtins.object
    selector: str
    args: list[Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    on_behalf: bytes | None = None
    keep: bool = False
    # The bytes of the frame it was read from (the protocol sets it; 0: not read from a frame):
    # what waiting to run costs, counted against Limits.max_queued_bytes.
    size: int = field(default=0, compare=False, repr=False)

    # Written out, not generated, for speed: mypyc compiles this one, not dataclasses' (one per
    # message). ``kwargs`` None: none.
    def __init__(
        self,
        exchange_id: bytes | None,
        receiver: builtins.object,
        selector: str,
        args: list[Any],
        kwargs: dict[str, Any] | None = None,
        on_behalf: bytes | None = None,
        keep: bool = False,
    ) -> None:
        self.exchange_id = exchange_id
        self.receiver = receiver
        self.selector = selector
        self.args = args
        self.kwargs = {} if kwargs is None else kwargs
        self.on_behalf = on_behalf
        self.keep = keep
        self.size = 0

    @classmethod
    def read(cls, d: Decoder) -> MessageSend:
        exchange_id = read_exchange_id(d, allow_nil=True)
        try:
            if d.remaining >= 4 and d.data[d.pos : d.pos + 4] == _ANSWER_OF_WORD:
                d.pos += 4
                target = read_exchange_id(d, allow_nil=False)
                assert target is not None
                receiver: object = AnswerOf(target)
            else:
                receiver = d.read_object()
            w = d.word("the Message tag 0x20000021")
            if w != TAG_MESSAGE:
                raise DecodeError(f"expected the Message tag 0x20000021, found {w:#010x}", d.pos - 4)
            selector = d.read_str((TAG_SYMBOL, TAG_STRING), "the selector Symbol")
            w = d.word("the arguments Array")
            if w != TAG_ARRAY:
                raise DecodeError(f"expected the arguments Array, found word {w:#010x}", d.pos - 4)
            try:
                args = d.read_items("the arguments Array")
            except DecodeError as exc:
                raise exc.prefixed(".args") from None
            kwargs: dict[str, Any] = {}
            on_behalf = None
            keep = False
            # Optional trailers, each at most once and in this order: keyword arguments, the
            # call it is nested in, keep the answer.
            t: int | None = d.word("keyword arguments, the call it is nested in, keep, or the end") if not d.at_end() else None
            first = True  # an unknown word where the first trailer goes is named; later, left over
            if t == TAG_KWARGS:
                first = False
                n = d.count("keyword arguments", 12)
                for _ in range(n):
                    name = d.read_str((TAG_SYMBOL,), "a keyword Symbol")
                    try:
                        kwargs[name] = d.read_object()
                    except DecodeError as exc:
                        raise exc.prefixed(f".kwargs[{name!r}]") from None
                t = d.word() if not d.at_end() else None
            if t == TAG_ON_BEHALF:
                first = False
                on_behalf = read_exchange_id(d, allow_nil=False)
                t = d.word() if not d.at_end() else None
            if t == TAG_KEEP_ANSWER:
                keep = exchange_id is not None  # on a one-way message there is no answer to keep
            elif t is not None and not first:
                d.pos -= 4  # after a trailer: expect_end reports the bytes left over
            elif t is not None:
                raise DecodeError(
                    f"expected keyword arguments (0x20000108), the call it is nested in (0x20000117), "
                    f"keep (0x20000118) or the end of the frame, found word {t:#010x}",
                    d.pos - 4,
                )
            expect_end(d)
        except NeedClasses:
            raise
        except Exception as exc:
            error = _as_decode_error(exc, d)
            if exchange_id is None:
                raise error from None
            raise FrameBodyError(exchange_id, error) from None
        return MessageSend(exchange_id, receiver, selector, args, kwargs, on_behalf, keep)  # (no subclasses)


MessageSend.tag = TAG_TETHER


@dataclass(frozen=True, slots=True)
class AnswerOf:
    """A message-send's receiver: the answer to the sender's own call ``exchange_id``, which
    the receiving side keeps (that call said ``keep``) until the sender drops it."""

    exchange_id: bytes


@dataclass(slots=True)
class Answer(_BuiltInKind):
    """The answer ``value`` to the message-send ``exchange_id``."""

    exchange_id: bytes
    value: builtins.object

    def __init__(self, exchange_id: bytes, value: builtins.object) -> None:  # (see MessageSend)
        self.exchange_id = exchange_id
        self.value = value

    @classmethod
    def read(cls, d: Decoder) -> Answer:
        exchange_id = read_exchange_id(d, allow_nil=False)
        assert exchange_id is not None
        try:
            value = d.read_object()
            expect_end(d)
        except NeedClasses:
            raise
        except Exception as exc:
            raise FrameBodyError(exchange_id, _as_decode_error(exc, d)) from None
        return Answer(exchange_id, value)


Answer.tag = TAG_ANSWER


@dataclass(slots=True)
class ErrorAnswer(_BuiltInKind):
    """The message-send ``exchange_id`` raised an exception.

    ``type_name`` is ``module.qualname`` of the exception class, ``args`` its arguments as far
    as they travel by value, ``traceback`` the remote traceback text or ``None``. ``debug``
    (only from a peer that debugging is on with, ``docs/protocol.md`` section 10) is the
    failure, a reference, and the remote frames: a tuple of ``(file, line, function, source
    line or None)``, outermost first; ``None`` otherwise.
    """

    exchange_id: bytes
    type_name: str
    message: str
    args: list[Any]
    traceback: str | None
    debug: tuple[object, tuple[tuple[str, int, str, str | None], ...]] | None = None
    # The exception's identity (Python peers): ("mine", id) names the sender's exception, which
    # the receiver may send back; ("yours", id) is the receiver's own exception going home.
    identity: tuple[str, bytes] | None = None

    @classmethod
    def read(cls, d: Decoder) -> ErrorAnswer:
        exchange_id = read_exchange_id(d, allow_nil=False)
        assert exchange_id is not None
        try:
            type_name = d.read_str((TAG_STRING,), "the exception type String")
            message = d.read_str((TAG_STRING,), "the exception message String")
            w = d.word("the exception arguments Array")
            if w != TAG_ARRAY:
                raise DecodeError(f"expected an Array, found word {w:#010x}", d.pos - 4)
            args = d.read_items("the exception arguments")
            tb = d.read_object()
            if tb is not None and not isinstance(tb, str):
                raise DecodeError("the traceback must be a String or nil", d.pos)
            debug = None
            identity = None
            t: int | None = d.word() if not d.at_end() else None
            if t == TAG_FAILURE:
                failure = d.read_object()
                debug = (failure, _remote_frames(d.read_object(), d))
                t = d.word() if not d.at_end() else None
            if t == TAG_MY_ERROR or t == TAG_YOUR_ERROR:
                identity = ("mine" if t == TAG_MY_ERROR else "yours", d.raw(ID_SIZE, "the exception's id"))
            elif t is not None:
                raise DecodeError(
                    f"expected the end of the error answer, its debugging part (0x20000120) or the "
                    f"exception's id (0x20000121, 0x20000122), found word {t:#010x}",
                    d.pos - 4,
                )
            expect_end(d)
        except NeedClasses:
            raise
        except Exception as exc:
            raise FrameBodyError(exchange_id, _as_decode_error(exc, d)) from None
        return cls(exchange_id, type_name, message, args, tb, debug, identity)


ErrorAnswer.tag = TAG_ERROR_ANSWER


def _remote_frames(frames: object, d: Decoder) -> tuple[tuple[str, int, str, str | None], ...]:
    """Check the frames of a debugging part: a Tuple of (file, line, function, line or nil)."""
    if type(frames) is not tuple:
        raise DecodeError("the remote frames must be a Tuple", d.pos)
    for frame in frames:
        if not (
            type(frame) is tuple
            and len(frame) == 4
            and type(frame[0]) is str
            and type(frame[1]) is int
            and 0 <= frame[1] < 2**31
            and type(frame[2]) is str
            and (frame[3] is None or type(frame[3]) is str)
        ):
            raise DecodeError(
                "a remote frame is a Tuple: file String, line number (0 to 2**31-1), function String, "
                "source line String or nil",
                d.pos,
            )
    return frames  # type: ignore[return-value]


for _kind in (MessageSend, Answer, ErrorAnswer):
    register_frame_kind(_kind)


def _as_decode_error(exc: Exception, d: Decoder) -> DecodeError:
    """Any failure while reading a frame's body, as the DecodeError its sender is answered with
    (a RecursionError, or an error raised by a class's own code while rebuilding a value)."""
    if isinstance(exc, DecodeError):
        return exc
    if isinstance(exc, RecursionError):
        return DecodeError("the frame nests too deeply to decode", d.pos)
    return DecodeError(f"{type(exc).__name__}: {exc}", d.pos)


def read_exchange_id(d: Decoder, allow_nil: bool) -> bytes | None:
    w = d.word("the exchange id")
    if w == TAG_NIL and allow_nil:
        return None
    if w != TAG_UUID:
        raise DecodeError(f"expected the exchange id UUID (0x20000011), found {w:#010x}", d.pos - 4)
    n = d.word("the length of the exchange id")
    if n != ID_SIZE:
        raise DecodeError(f"an exchange id has 16 bytes, this one declares {n}", d.pos - 4)
    return d.raw(ID_SIZE, "the exchange id")


def expect_end(d: Decoder) -> None:
    if not d.at_end():
        raise DecodeError(f"{d.remaining} unexpected bytes after the frame's last field", d.pos)


def parse_frame(decoder: Decoder) -> Any:
    """Read one whole frame from ``decoder`` (positioned at its first word)."""
    if len(decoder.data) < 4:
        raise DecodeError(f"a frame has at least 4 bytes, this one has {len(decoder.data)}", 0)
    tag = decoder.word("the frame tag")
    if MY_OBJECT_BASE <= tag < MY_OBJECT_END:
        expect_end(decoder)
        if tag < decoder.my_object_base:
            raise DecodeError(
                f"exposure marker {tag:#010x} is below this connection's marker base "
                f"{decoder.my_object_base:#010x}",
                0,
            )
        return Exposure(tag - decoder.my_object_base)
    kind = _KINDS.get(tag)
    if kind is None:
        raise DecodeError(f"unknown frame tag {tag:#010x}", 0)
    return kind.read(decoder)


# ---------------------------------------------------------------------------------------------
# Writing frames. These are on the hot path: one bytearray, no intermediate objects.

_TETHER_UUID_HEAD: Final = pack_word(TAG_TETHER) + pack_word(TAG_UUID) + pack_word(ID_SIZE)
_ANSWER_UUID_HEAD: Final = pack_word(TAG_ANSWER) + pack_word(TAG_UUID) + pack_word(ID_SIZE)
_ON_BEHALF_UUID_HEAD: Final = pack_word(TAG_ON_BEHALF) + pack_word(TAG_UUID) + pack_word(ID_SIZE)
_ERROR_UUID_HEAD: Final = pack_word(TAG_ERROR_ANSWER) + pack_word(TAG_UUID) + pack_word(ID_SIZE)
_ONE_WAY_HEAD: Final = pack_word(TAG_TETHER) + pack_word(TAG_NIL)
_ANSWER_OF_WORD: Final = pack_word(TAG_ANSWER_OF)
_ANSWER_OF_UUID_HEAD: Final = _ANSWER_OF_WORD + pack_word(TAG_UUID) + pack_word(ID_SIZE)
_KEEP: Final = pack_word(TAG_KEEP_ANSWER)
_MESSAGE: Final = pack_word(TAG_MESSAGE)
_ARRAY: Final = pack_word(TAG_ARRAY)


def exposure_bytes(key: int, base: int = MY_OBJECT_BASE) -> bytes:
    """The exposure frame of ``key``: one "my object" word in the connection's marker base."""
    return pack_word(base + key)


# The selector Symbols this side sent, encoded (a program calls a few names many times): up to
# _SELECTORS_KEPT names of up to _SELECTOR_KEPT_LENGTH characters, then it starts again.
_SELECTOR_WORDS: Final[dict[str, bytes]] = {}
_SELECTORS_KEPT: Final = 1024
_SELECTOR_KEPT_LENGTH: Final = 64


def _selector_words(selector: str) -> bytes:
    out = bytearray()
    write_str(out, TAG_SYMBOL, selector)
    symbol = bytes(out)
    if len(selector) <= _SELECTOR_KEPT_LENGTH:
        if len(_SELECTOR_WORDS) >= _SELECTORS_KEPT:
            _SELECTOR_WORDS.clear()
        _SELECTOR_WORDS[selector] = symbol
    return symbol


def message_send_bytes(
    encoder: Encoder,
    exchange_id: bytes | None,
    receiver: object,
    selector: str,
    args: tuple[Any, ...] | list[Any],
    kwargs: dict[str, Any] | None = None,
    on_behalf: bytes | None = None,
    keep: bool = False,
) -> bytes:
    """Encode a message-send. ``receiver`` is an int key (a bare "your object" word), an
    :class:`AnswerOf` (pipelined on our call's answer) or an object; ``on_behalf`` (Python peers
    only) the exchange id of the peer's call this one is nested in; ``keep`` (a call, Python
    peers only): the receiver keeps the answer for messages pipelined on it."""
    encoder.begin()
    out = bytearray(_TETHER_UUID_HEAD if exchange_id is not None else _ONE_WAY_HEAD)
    if exchange_id is not None:
        out += exchange_id
    if type(receiver) is int:
        out += pack_word(receiver)
    elif type(receiver) is AnswerOf:
        out += _ANSWER_OF_UUID_HEAD
        out += receiver.exchange_id
    else:
        encoder.write(receiver, out)
    out += _MESSAGE
    symbol = _SELECTOR_WORDS.get(selector)
    if symbol is None:
        symbol = _selector_words(selector)
    out += symbol
    out += _ARRAY
    out += pack_word(len(args))
    write = encoder.write
    for arg in args:
        write(arg, out, 1)
    if kwargs:
        out += pack_word(TAG_KWARGS)
        out += pack_word(len(kwargs))
        for name, value in kwargs.items():
            write_str(out, TAG_SYMBOL, name)
            write(value, out, 1)
    if on_behalf is not None:
        out += _ON_BEHALF_UUID_HEAD
        out += on_behalf
    if keep:
        out += _KEEP
    return bytes(out)


def answer_bytes(encoder: Encoder, exchange_id: bytes, value: object) -> bytes:
    encoder.begin()
    out = bytearray(_ANSWER_UUID_HEAD)
    out += exchange_id
    encoder.write(value, out)
    return bytes(out)


class DebugPart(Protocol):
    """What writes the debugging part of an error answer (``tether.debug.FailurePart``)."""

    def write(self, out: bytearray, exchange_id: bytes) -> None: ...


def error_answer_bytes(
    exchange_id: bytes,
    type_name: str,
    message: str,
    args: list[Any],
    traceback: str | None,
    debug: DebugPart | None = None,
    identity: tuple[str, bytes] | None = None,
) -> bytes:
    """Encode an error answer. ``args`` must be by-value literals (see ``errors.error_parts``);
    ``debug`` writes the debugging part, if any (``docs/protocol.md`` section 10); ``identity``
    the exception's id, ``("mine" or "yours", 16 bytes)`` (Python peers only, 4.3)."""
    out = bytearray(_ERROR_UUID_HEAD)
    out += exchange_id
    write_str(out, TAG_STRING, type_name)
    write_str(out, TAG_STRING, message)
    Encoder().write_items(TAG_ARRAY, args, out, 1)
    if traceback is None:
        out += pack_word(TAG_NIL)
    else:
        write_str(out, TAG_STRING, traceback)
    if debug is not None:
        debug.write(out, exchange_id)
    if identity is not None:
        out += pack_word(TAG_MY_ERROR if identity[0] == "mine" else TAG_YOUR_ERROR)
        out += identity[1]
    return bytes(out)


def new_id_source() -> Any:
    """Return a function that makes unique exchange ids: 8 random bytes and a 64-bit counter."""
    prefix = uuid.uuid4().bytes[:8]
    counter = itertools.count(1)  # next() on a count is atomic under the GIL

    def next_id() -> bytes:
        return prefix + next(counter).to_bytes(8, "big")

    return next_id
