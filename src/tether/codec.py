"""The tag-word codec: Python objects to 32-bit big-endian words and back.

Everything on the wire is a sequence of 32-bit big-endian words, optionally followed by raw
bytes (the bytes of a String, Symbol, ByteArray, ...). The first word of an encoded object
says what it is: a reserved instruction, "my object" (a reference to an object the *sender*
exposes), a SmallInteger, a class tag (whose reader reads what follows), or "your object" (a key
into the *receiver's* exposed objects); ``docs/protocol.md`` section 3 is the normative table.

Literals travel by value (``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``,
``bytes``, ``uuid.UUID`` and, recursively, ``list``, ``tuple``, ``dict``, ``set``,
``frozenset``; exact types only, so subclasses travel by reference). Every other object is
handed to a :class:`ReferenceHooks` implementation, which writes a reference. The codec
itself holds no connection state: the hooks (implemented by the protocol) do.

To add a by-value kind, register a writer for its type with :meth:`Encoder.register` and a
reader for its tag with :func:`register_reader`.

On CPython this module, :mod:`tether.values` and the modules the codec calls on every object
(``classes``, ``transfer``, ``references``) are usually compiled by mypyc (``setup.py``;
:func:`implementation` says which runs), so keep them typed for mypy: a compiled class cannot be
subclassed by interpreted code nor given attributes it does not declare, and compiled code
checks the types it declares when values come in from outside (the hooks' answers included);
hooks are registered in module-level tables and slots, never by assigning to a class.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from types import FunctionType as _FunctionType
from types import ModuleType as _ModuleType
from typing import Any, Final, cast

from . import classes as _classes
from .exceptions import DecodeError, EncodeError
from .hooks import NeedClasses, ReferenceHooks  # noqa: F401 - NeedClasses is part of the codec's interface
from .limits import Limits, check_keys

# isort: off
from .words import (  # noqa: F401 - the words are part of the codec's interface
    _DOUBLE, _FALSE_BYTES, _NIL_BYTES, _TRUE_BYTES, _TWO_DOUBLES, _WORD, COMPACT_LIMIT,
    COMPACT_OBJECT, COMPACT_STRING, DEFAULT_MAX_DEPTH, KEY_LIMIT, MY_OBJECT_BASE, MY_OBJECT_END,
    SMALLINT_BASE, SMALLINT_LIMIT, TAG_ANSWER, TAG_ARRAY, TAG_BACKREF, TAG_BYTEARRAY, TAG_CLASS,
    TAG_CLASS_INFO, TAG_CLASS_INFO_REF, TAG_CLASS_REF, TAG_COMPLEX, TAG_DESCRIBED_REF, TAG_DICT,
    TAG_ELLIPSIS, TAG_ERROR_ANSWER, TAG_FALSE, TAG_FLOAT, TAG_FROZENSET, TAG_FUNCTION, TAG_INTEGER,
    TAG_KWARGS, TAG_MESSAGE, TAG_NAMED, TAG_NIL, TAG_OBJECT, TAG_SET, TAG_SLICE, TAG_STRING,
    TAG_SYMBOL, TAG_TETHER, TAG_TRUE, TAG_TUPLE, TAG_UUID, TAG_YOUR_CLASS, ClassInfo, _unpack_word,
    pack_word,
)  # fmt: skip
# isort: on

__all__ = [
    "LITERAL_TYPES",
    "Decoder",
    "Encoder",
    "Reader",
    "decode_value",
    "encode_value",
    "implementation",
    "register_reader",
    "write_bytes",
    "write_int",
    "write_str",
]

_MODULE_TYPE: Final = _ModuleType
# Words written often, packed once (small integers, heads of short compact strings); a Float's
# tag and value in one pack; a double read (Final: compiled, these are C globals).
_SMALL_WORDS: Final = [pack_word(SMALLINT_BASE + n) for n in range(1024)]
_SHORT_STRING_HEADS: Final = [pack_word(COMPACT_STRING + n) for n in range(256)]
_pack_tagged_double: Final = struct.Struct(">Id").pack
_unpack_double: Final = _DOUBLE.unpack_from


# ---------------------------------------------------------------------------------------------
# Encoding


def write_bytes(out: bytearray, tag: int, data: bytes) -> None:
    out += pack_word(tag)
    out += pack_word(len(data))
    out += data


# Compiled, a word is read fastest from four indexed bytes (native operations); interpreted,
# by struct (one call instead of eleven operations).
_NATIVE: Final = not isinstance(write_bytes, _FunctionType)


def write_str(out: bytearray, tag: int, text: str) -> None:
    write_bytes(out, tag, text.encode("utf-8", "surrogatepass"))


def write_int(out: bytearray, value: int) -> None:
    if 0 <= value < SMALLINT_LIMIT:
        out += pack_word(SMALLINT_BASE + value)
        return
    # Minimal two's complement: the fewest bytes that keep the sign bit.
    data = value.to_bytes(((value if value >= 0 else ~value).bit_length() + 8) // 8, "big", signed=True)
    write_bytes(out, TAG_INTEGER, data)


class Encoder:
    """Writes Python objects as tag words. One per connection (it holds the reference hooks).

    ``encode(value)`` returns the bytes; ``write(value, out)`` appends to a ``bytearray``.
    Values nested deeper than ``max_depth`` raise :class:`EncodeError` (a cycle does too, since
    by-value containers are written as trees).
    """

    def __init__(
        self,
        refs: ReferenceHooks | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        passing: dict[type, str] | None = None,
    ):
        self.refs = refs
        self.max_depth = max_depth
        self.passing = passing or {}
        self.compact = False  # use the compact tags (the peer is a Python Tether)
        self.memo: dict[int, int] = {}  # id(obj) -> index, for shared objects within one frame
        # What starts an object of a class that the hooks name the same way every time (a class
        # named on the wire before): they fill it and clear it (References), the encoder reads it.
        self.heads: dict[type, bytes] = {}
        self._writers: dict[type, Callable[[Encoder, Any, bytearray, int], None]] = dict(
            _DEFAULT_WRITERS
        )

    def begin(self) -> None:
        """Start a new frame: objects shared within it are numbered from zero again."""
        if self.memo:
            self.memo = {}

    def memoize(self, value: object, out: bytearray) -> bool:
        """Write a back-reference and return True if ``value`` was written before in this frame;
        otherwise number it and return False."""
        memo = self.memo
        key = id(value)
        index = memo.get(key)
        if index is not None:
            out += pack_word(TAG_BACKREF)
            out += pack_word(index)
            return True
        memo[key] = len(memo)
        return False

    def register(self, cls: type, writer: Callable[[Encoder, Any, bytearray, int], None]) -> None:
        """Make instances of exactly ``cls`` travel by value, written by ``writer``."""
        self._writers[cls] = writer

    def encode(self, value: object) -> bytes:
        out = bytearray()
        self.begin()
        self.write(value, out, 0)
        return bytes(out)

    def write(self, value: object, out: bytearray, depth: int = 0) -> None:
        t = type(value)
        # The most common literals first, inline.
        if t is int:
            n = cast(int, value)
            if 0 <= n < 1024:
                out += _SMALL_WORDS[n]
            elif 0 <= n < SMALLINT_LIMIT:
                out += pack_word(SMALLINT_BASE + n)
            else:
                write_int(out, n)
        elif t is str:
            data = cast(str, value).encode("utf-8", "surrogatepass")
            if self.compact and len(data) < 256:
                out += _SHORT_STRING_HEADS[len(data)]
            elif self.compact and len(data) < COMPACT_LIMIT:
                out += pack_word(COMPACT_STRING + len(data))
            else:
                out += pack_word(TAG_STRING)
                out += pack_word(len(data))
            out += data
        elif value is None:
            out += _NIL_BYTES
        elif value is True:
            out += _TRUE_BYTES
        elif value is False:
            out += _FALSE_BYTES
        else:
            writer = self._writers.get(t)
            if writer is not None:
                if depth >= self.max_depth:
                    raise EncodeError(
                        f"value nests deeper than {self.max_depth} levels "
                        "(a cycle in a list or dict also does this); send it by reference "
                        "or flatten it"
                    )
                # The common containers called directly (compiled: no Python-level call).
                if t is float:
                    out += _pack_tagged_double(TAG_FLOAT, cast(float, value))
                elif t is list:
                    _w_list(self, cast("list[Any]", value), out, depth + 1)
                elif t is dict:
                    _w_dict(self, cast("dict[Any, Any]", value), out, depth + 1)
                elif t is tuple:
                    self.write_items(TAG_TUPLE, value, out, depth + 1)
                else:
                    writer(self, value, out, depth + 1)
            else:
                self.write_other(value, out, depth)

    def write_other(self, value: object, out: bytearray, depth: int, force_value: bool = False) -> None:
        """An object that is not a literal: by value if its class says so (or the connection's
        ``passing`` policy, or ``force_value``), by name if it is an importable class or
        module, else by reference."""
        t = type(value)
        if _classes.is_proxy_class(t):  # a remote object: always a reference, and
            if self.refs is None:  # nothing may be asked of it here (that would be a remote call)
                raise EncodeError("a proxy needs a connection to send its reference on")
            if force_value:
                raise EncodeError(
                    "by_value() of a proxy: the object lives on its peer; tether.fetch() it first"
                )
            self.refs.write_reference(value, out)
            return
        mode = "value" if force_value else self.passing.get(t)
        if mode != "reference":
            kind = _classes.copy_kind(t) if mode == "value" else _classes.value_kind(t)
            if kind is not None:
                # (no class of functions has a kind of its own: only a copy asked for is one)
                if mode == "value" and isinstance(value, _FunctionType):
                    self.write_function(value, out, depth)
                    return
                if depth >= self.max_depth:
                    raise EncodeError(f"value nests deeper than {self.max_depth} levels")
                if self.memoize(value, out):
                    return
                head = self.heads.get(t)
                if head is not None:
                    out += head
                else:
                    self.write_object_head(t, out)
                if kind.positional:
                    for field in kind.names(t):
                        self.write(getattr(value, field), out, depth + 1)
                else:
                    self.write(kind.reduce(value), out, depth + 1)
                return
            if isinstance(value, (type, _ModuleType)):
                name = _classes.importable_name(value)
                if name is not None:
                    self.write_named(value, name, out, fallback=True)
                    return
        if self.refs is None:
            raise EncodeError(
                f"cannot encode {t.__qualname__} by value and this encoder has no "
                "connection to send references on"
            )
        self.refs.write_reference(value, out)

    def write_object_head(self, cls: type, out: bytearray) -> None:
        if self.refs is not None:
            self.refs.write_object_head(cls, out, self.compact)
            return
        out += pack_word(TAG_OBJECT)
        out += pack_word(TAG_CLASS)
        out += pack_word(0)
        write_str(out, TAG_STRING, cls.__module__)
        write_str(out, TAG_STRING, cls.__qualname__)
        self.write(_classes.fingerprint(cls), out)

    def write_named(self, value: object, name: tuple[str, str], out: bytearray, fallback: bool) -> None:
        out += pack_word(TAG_NAMED)
        write_str(out, TAG_STRING, name[0])
        write_str(out, TAG_STRING, name[1])
        self.write(None if isinstance(value, _ModuleType) else _classes.fingerprint(value), out)
        if fallback and self.refs is not None and self.refs.may_send(value):
            self.refs.write_reference(value, out)
        else:
            out += _NIL_BYTES

    def write_function(self, func: Any, out: bytearray, depth: int) -> None:
        """A function by value: its record (source and all), even if the receiver might import
        it by name; code that travels names importable globals instead (``global_value``)."""
        out += pack_word(TAG_FUNCTION)
        self.write(_classes.function_record(func, self.global_value), out, depth + 1)

    def global_value(self, value: object) -> object:
        """How a global used by code that travels is sent (``tether.values`` sets the policy:
        by name when importable, a function by value otherwise)."""
        return _global_policy[0](self, value)

    def write_items(self, tag: int, items: Any, out: bytearray, depth: int) -> None:
        out += pack_word(tag)
        out += pack_word(len(items))
        for item in items:
            self.write(item, out, depth)


def _w_float(enc: Encoder, v: float, out: bytearray, depth: int) -> None:
    out += pack_word(TAG_FLOAT)
    out += _DOUBLE.pack(v)


def _w_complex(enc: Encoder, v: complex, out: bytearray, depth: int) -> None:
    out += pack_word(TAG_COMPLEX)
    out += _TWO_DOUBLES.pack(v.real, v.imag)


def _w_bytes(enc: Encoder, v: bytes, out: bytearray, depth: int) -> None:
    write_bytes(out, TAG_BYTEARRAY, v)


def _w_uuid(enc: Encoder, v: uuid.UUID, out: bytearray, depth: int) -> None:
    write_bytes(out, TAG_UUID, v.bytes)


def _w_list(enc: Encoder, v: list[Any], out: bytearray, depth: int) -> None:
    if enc.refs is not None and enc.refs.is_exported(v):
        enc.refs.write_reference(v, out)  # the peer holds it by reference: keep it shared
        return
    if v and enc.memoize(v, out):
        return
    enc.write_items(TAG_ARRAY, v, out, depth)


def _w_tuple(enc: Encoder, v: tuple[Any, ...], out: bytearray, depth: int) -> None:
    enc.write_items(TAG_TUPLE, v, out, depth)


def _w_set(enc: Encoder, v: set[Any], out: bytearray, depth: int) -> None:
    if enc.refs is not None and enc.refs.is_exported(v):
        enc.refs.write_reference(v, out)
        return
    if v and enc.memoize(v, out):
        return
    enc.write_items(TAG_SET, v, out, depth)


def _w_frozenset(enc: Encoder, v: frozenset[Any], out: bytearray, depth: int) -> None:
    enc.write_items(TAG_FROZENSET, v, out, depth)


def _w_dict(enc: Encoder, v: dict[Any, Any], out: bytearray, depth: int) -> None:
    if enc.refs is not None and enc.refs.is_exported(v):
        enc.refs.write_reference(v, out)
        return
    if v and enc.memoize(v, out):
        return
    out += pack_word(TAG_DICT)
    out += pack_word(len(v))
    for key, item in v.items():
        enc.write(key, out, depth)
        enc.write(item, out, depth)


def _w_slice(enc: Encoder, v: slice, out: bytearray, depth: int) -> None:
    out += pack_word(TAG_SLICE)
    enc.write(v.start, out, depth)
    enc.write(v.stop, out, depth)
    enc.write(v.step, out, depth)


def _w_ellipsis(enc: Encoder, v: Any, out: bytearray, depth: int) -> None:
    out += pack_word(TAG_ELLIPSIS)


def _as_it_is(enc: Encoder, value: object) -> object:
    return value


# How a global used by code that travels is sent (``tether.values`` registers its policy; a
# module-level slot rather than a method assigned to Encoder, which the compiled codec's class
# would not see).
_global_policy: Final[list[Callable[[Encoder, object], object]]] = [_as_it_is]

_DEFAULT_WRITERS: Final[dict[type, Callable[[Encoder, Any, bytearray, int], None]]] = {
    float: _w_float,
    complex: _w_complex,
    bytes: _w_bytes,
    uuid.UUID: _w_uuid,
    list: _w_list,
    tuple: _w_tuple,
    set: _w_set,
    frozenset: _w_frozenset,
    dict: _w_dict,
    slice: _w_slice,
    type(Ellipsis): _w_ellipsis,
}

LITERAL_TYPES: Final[frozenset[type]] = frozenset(
    {type(None), bool, int, str, *_DEFAULT_WRITERS}  # what travels by value by default
)


# ---------------------------------------------------------------------------------------------
# Decoding

Reader = Callable[["Decoder"], object]
_READERS: Final[dict[int, Reader]] = {}


def _no_objects(d: Decoder, cls: type) -> object:
    raise DecodeError("an object by value, but tether.values (live serialization) is not loaded", d.pos)


# How the state of an object by value is read after its class (``tether.values`` registers it).
_compact_reader: Final[list[Callable[[Decoder, type], object]]] = [_no_objects]


def register_reader(tag: int, reader: Reader) -> None:
    """Teach every decoder to read objects whose first word is ``tag``."""
    if not 0x20000000 <= tag < 0x40000000:
        raise ValueError(f"class tags are 0x20000000..0x3FFFFFFF, not {tag:#010x}")
    _READERS[tag] = reader


_DEFAULT_LIMITS: Final = Limits()
_NO_IDS: Final[frozenset[int]] = frozenset()


class Decoder:
    """Reads tag words from one frame. Every length is checked before anything is allocated,
    and what the frame may make this side allocate is bounded (``limits``: objects charged
    against a memory budget, elements per container and per frame, colliding hash keys).

    Errors are :class:`DecodeError` with the byte offset and the path of the failing value.
    """

    __slots__ = (
        "budget", "building", "data", "depth", "items_left", "limits", "max_depth", "memo",
        "my_object_base", "pos", "refs",
    )  # fmt: skip

    def __init__(
        self,
        data: bytes,
        pos: int = 0,
        refs: ReferenceHooks | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        my_object_base: int = MY_OBJECT_BASE,
        limits: Limits | None = None,
    ) -> None:
        self.data = data
        self.pos = pos
        self.refs = refs
        self.depth = 0
        self.max_depth = max_depth
        self.my_object_base = my_object_base
        self.memo: list[Any] = []  # objects that BACKREF can name, in the order they began
        self.limits = limits = limits or _DEFAULT_LIMITS
        self.budget = max(limits.memory_floor, limits.memory_factor * len(data))
        self.items_left = limits.max_items
        self.building: set[int] | frozenset[int] = _NO_IDS  # ids of objects whose state is being read

    def charge(self, cost: int, what: str) -> None:
        """Count ``cost`` bytes of objects made from this frame; raise when over its budget."""
        self.budget -= cost
        if self.budget < 0:
            limits = self.limits
            allowed = max(limits.memory_floor, limits.memory_factor * len(self.data))
            raise DecodeError(
                f"a frame of {len(self.data)} bytes would make more than {allowed} bytes of "
                f"objects (at {what}); the limit is Limits.memory_factor={limits.memory_factor} "
                f"bytes per frame byte, at least Limits.memory_floor={limits.memory_floor}",
                self.pos,
            )

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def word(self, what: str = "a word") -> int:
        pos = self.pos
        if pos + 4 > len(self.data):
            raise DecodeError(
                f"frame ends after {len(self.data)} bytes; expected {what} of 4 bytes",
                pos,
            )
        self.pos = pos + 4
        if _NATIVE:
            data = self.data
            return (data[pos] << 24) | (data[pos + 1] << 16) | (data[pos + 2] << 8) | data[pos + 3]
        return int(_unpack_word(self.data, pos)[0])

    def raw(self, n: int, what: str) -> bytes:
        pos = self.pos
        if n > len(self.data) - pos:
            raise DecodeError(
                f"{what} declares {n} bytes but only {len(self.data) - pos} remain in the frame",
                pos - 4,
            )
        self.pos = pos + n
        return self.data[pos : pos + n]

    def count(self, what: str, min_size: int = 4) -> int:
        n = self.word(f"the element count of {what}")
        if n * min_size > len(self.data) - self.pos:
            raise DecodeError(
                f"{what} declares {n} elements but only {len(self.data) - self.pos} bytes "
                "remain in the frame",
                self.pos - 4,
            )
        self.items_left -= n
        if self.items_left < 0:
            raise DecodeError(
                f"{what} declares {n} elements, which makes more than "
                f"Limits.max_items={self.limits.max_items} in this frame",
                self.pos - 4,
            )
        return n

    def read_object(self) -> object:
        pos = self.pos
        data = self.data
        if pos + 4 > len(data):
            raise DecodeError(f"frame ends after {len(data)} bytes; expected an object of 4 bytes", pos)
        w: int
        if _NATIVE:
            w = (data[pos] << 24) | (data[pos + 1] << 16) | (data[pos + 2] << 8) | data[pos + 3]
        else:
            w = _unpack_word(data, pos)[0]
        self.pos = pos = pos + 4
        if 0x21000000 <= w < 0x23000000:  # the compact forms
            if w >= COMPACT_STRING:
                n = w - COMPACT_STRING
                if n > len(data) - pos:
                    raise DecodeError(
                        f"String declares {n} bytes but only {len(data) - pos} remain in the frame", pos - 4
                    )
                self.pos = pos + n
                try:
                    return data[pos : pos + n].decode("utf-8", "surrogatepass")
                except UnicodeDecodeError as exc:
                    raise DecodeError(f"String is not valid UTF-8: {exc.reason}", self.pos - n) from None
            if self.refs is None:
                raise DecodeError("an object of a named class where only plain values may appear", self.pos - 4)
            if self.depth >= self.max_depth:
                raise DecodeError(f"value nests deeper than {self.max_depth} levels", self.pos - 4)
            self.depth += 1
            try:
                return _compact_reader[0](self, self.refs.peer_class(w - COMPACT_OBJECT, None))
            finally:
                self.depth -= 1
        if w >= SMALLINT_BASE:
            if w < MY_OBJECT_BASE:
                return w - SMALLINT_BASE
            if w < MY_OBJECT_END:
                return self._my_object(w, None)
            raise DecodeError(f"word {w:#010x} is a reserved instruction", self.pos - 4)
        if w >= 0x20000000:
            if w == TAG_STRING:
                n = self.word("the length of a String")
                try:
                    return self.raw(n, "String").decode("utf-8", "surrogatepass")
                except UnicodeDecodeError as exc:
                    raise DecodeError(f"String is not valid UTF-8: {exc.reason}", self.pos - n) from None
            reader = _READERS.get(w)
            if reader is None:
                raise DecodeError(f"unknown class tag {w:#010x}", self.pos - 4)
            if self.depth >= self.max_depth:
                raise DecodeError(f"value nests deeper than {self.max_depth} levels", self.pos - 4)
            self.depth += 1
            try:  # the common tags called directly (compiled: no Python-level call)
                if w == TAG_ARRAY:
                    return _r_array(self)
                if w == TAG_FLOAT:
                    return _r_float(self)
                if w == TAG_DICT:
                    return _r_dict(self)
                return reader(self)
            finally:
                self.depth -= 1
        if self.refs is None:
            raise DecodeError(f"a reference (key {w}) where only values may appear", self.pos - 4)
        return self.refs.your_object(w)

    def _my_object(self, w: int, info: ClassInfo | None) -> object:
        key = w - self.my_object_base
        if key < 0:
            raise DecodeError(
                f"object marker {w:#010x} is below this connection's marker base "
                f"{self.my_object_base:#010x}",
                self.pos - 4,
            )
        if self.refs is None:
            raise DecodeError(f"a reference (marker {w:#010x}) where only values may appear")
        return self.refs.my_object(key, info)

    def read_str(self, tags: tuple[int, ...] = (TAG_STRING, TAG_SYMBOL), what: str = "a String") -> str:
        w = self.word(what)
        if w not in tags:
            raise DecodeError(f"expected {what}, found word {w:#010x}", self.pos - 4)
        n = self.word(f"the length of {what}")
        try:
            return self.raw(n, what).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"{what} is not valid UTF-8: {exc.reason}", self.pos - n) from None

    def read_items(self, what: str) -> list[object]:
        n = self.count(what)
        self.budget -= 64 + 8 * n
        if self.budget < 0:
            self.charge(0, what)
        items = []
        for i in range(n):
            try:
                items.append(self.read_object())
            except DecodeError as exc:
                raise exc.prefixed(f"[{i}]") from None
        return items


def _r_true(d: Decoder) -> object:
    return True


def _r_false(d: Decoder) -> object:
    return False


def _r_nil(d: Decoder) -> object:
    return None


def _r_symbol(d: Decoder) -> object:
    n = d.word("the length of a Symbol")
    try:
        return d.raw(n, "Symbol").decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"Symbol is not valid UTF-8: {exc.reason}", d.pos - n) from None


def _r_bytes(d: Decoder) -> object:
    n = d.word("the length of a ByteArray")
    return d.raw(n, "ByteArray")


def _r_uuid(d: Decoder) -> object:
    n = d.word("the length of a UUID")
    if n != 16:
        raise DecodeError(f"a UUID has 16 bytes, this one declares {n}", d.pos - 4)
    return uuid.UUID(bytes=d.raw(16, "UUID"))


def _r_integer(d: Decoder) -> object:
    n = d.word("the length of an Integer")
    if n == 0:
        raise DecodeError("an Integer needs at least one byte", d.pos - 4)
    return int.from_bytes(d.raw(n, "Integer"), "big", signed=True)


def _r_float(d: Decoder) -> object:
    pos = d.pos
    if len(d.data) - pos < 8:
        return _DOUBLE.unpack(d.raw(8, "Float"))[0]  # (raises)
    d.pos = pos + 8
    return _unpack_double(d.data, pos)[0]


def _r_complex(d: Decoder) -> object:
    real, imag = _TWO_DOUBLES.unpack(d.raw(16, "Complex"))
    return complex(real, imag)


_PENDING: Final = object()  # a memo slot whose object is not built yet


def _r_array(d: Decoder) -> object:
    n = d.count("an Array")
    d.charge(64 + 8 * n, "an Array")
    result: list[Any] = []
    if n:  # only non-empty containers are numbered (as the encoder does)
        d.memo.append(result)
    for i in range(n):
        try:
            result.append(d.read_object())
        except DecodeError as exc:
            raise exc.prefixed(f"[{i}]") from None
    return result


def _r_tuple(d: Decoder) -> object:
    return tuple(d.read_items("a Tuple"))


# A set's table holds 2 to 5 slots of 16 bytes per element, twice over while it grows; its
# elements, if they are new ints, 28 bytes more each (measured: about 170 bytes per element).
_SET_ITEM_COST: Final = 176
def _r_set(d: Decoder) -> object:
    n = d.count("a Set")
    slot = len(d.memo)
    if n:
        d.memo.append(_PENDING)
    d.pos -= 4  # let read_items read the count again
    d.items_left += n
    items = d.read_items("a Set")
    d.charge(216 + _SET_ITEM_COST * n, "a Set")
    check_keys(items, "Set element", d.limits.max_same_hash, d.building, d.pos)
    result = set(items)
    if n:
        d.memo[slot] = result
    return result


def _r_frozenset(d: Decoder) -> object:
    items = d.read_items("a FrozenSet")
    d.charge(216 + _SET_ITEM_COST * len(items), "a FrozenSet")
    check_keys(items, "FrozenSet element", d.limits.max_same_hash, d.building, d.pos)
    return frozenset(items)


def _r_dict(d: Decoder) -> object:
    n = d.count("a Dict", 8)
    d.charge(64 + 72 * n, "a Dict")
    result: dict[Any, Any] = {}
    if n:
        d.memo.append(result)
    keys: list[Any] = []
    values: list[Any] = []
    for i in range(n):
        try:
            keys.append(d.read_object())
            values.append(d.read_object())
        except DecodeError as exc:
            raise exc.prefixed(f"[{i}]") from None
    check_keys(keys, "Dict key", d.limits.max_same_hash, d.building, d.pos)
    result.update(zip(keys, values, strict=True))
    return result


def _r_slice(d: Decoder) -> object:
    return slice(d.read_object(), d.read_object(), d.read_object())


def _r_ellipsis(d: Decoder) -> object:
    return Ellipsis


def _r_backref(d: Decoder) -> object:
    index = d.word("a back-reference index")
    if index >= len(d.memo):
        raise DecodeError(f"back-reference to object {index}, but only {len(d.memo)} came before", d.pos - 4)
    value = d.memo[index]
    if value is _PENDING:
        raise DecodeError("a cycle through a value built after its parts (a set or a rebuilt object)", d.pos - 4)
    return value


for _tag, _reader in {
    TAG_TRUE: _r_true,
    TAG_FALSE: _r_false,
    TAG_NIL: _r_nil,
    TAG_SYMBOL: _r_symbol,
    TAG_BYTEARRAY: _r_bytes,
    TAG_UUID: _r_uuid,
    TAG_ARRAY: _r_array,
    TAG_INTEGER: _r_integer,
    TAG_FLOAT: _r_float,
    TAG_COMPLEX: _r_complex,
    TAG_TUPLE: _r_tuple,
    TAG_DICT: _r_dict,
    TAG_SET: _r_set,
    TAG_FROZENSET: _r_frozenset,
    TAG_SLICE: _r_slice,
    TAG_ELLIPSIS: _r_ellipsis,
    TAG_BACKREF: _r_backref,
}.items():
    register_reader(_tag, _reader)


def implementation() -> str:
    """Which codec runs here: ``"compiled (mypyc)"`` where CPython imported the extension
    modules that ``setup.py`` builds from this file and the others it names, else ``"pure Python"``
    (Pyodide, no C compiler at install time, ``TETHER_PURE=1`` in the tests)."""
    return "pure Python" if isinstance(implementation, _FunctionType) else "compiled (mypyc)"


def decode_value(data: bytes) -> object:
    """Decode one by-value object filling all of ``data`` (references are refused)."""
    d = Decoder(data)
    value = d.read_object()
    if not d.at_end():
        raise DecodeError(f"{d.remaining} bytes left over after the value", d.pos)
    return value


def encode_value(value: object) -> bytes:
    """Encode a by-value object (references are refused with :class:`EncodeError`)."""
    return Encoder().encode(value)
