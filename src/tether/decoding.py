"""The tag-word codec's reading half: :class:`Decoder` and the readers of by-value tags.

:mod:`tether.codec` is the codec's interface and re-exports what is public here (``Decoder``,
``Reader``, ``register_reader``, ``decode_value``): import them from there. The writing half,
:class:`~tether.codec.Encoder`, is :mod:`tether.codec`'s own. ``docs/protocol.md`` section 3 is
the normative table of words.

What a peer sends is read here, so everything is bounded before it is allocated: a length is
checked against what is left of the frame, objects are charged against the frame's memory
budget, elements against ``Limits.max_items``, colliding hash keys by ``check_keys``
(``tether.limits``); errors are :class:`~tether.exceptions.DecodeError` with the byte offset.
mypyc compiles it with the codec (``setup.py``): keep it typed for mypy.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from types import FunctionType as _FunctionType
from typing import Any, Final

from .exceptions import DecodeError
from .hooks import ReferenceHooks
from .limits import Limits, check_keys

# isort: off
from .words import (
    _DOUBLE, _TWO_DOUBLES, COMPACT_OBJECT, COMPACT_STRING, DEFAULT_MAX_DEPTH, MY_OBJECT_BASE,
    MY_OBJECT_END, SMALLINT_BASE, TAG_ARRAY, TAG_BACKREF, TAG_BYTEARRAY, TAG_COMPLEX, TAG_DICT,
    TAG_ELLIPSIS, TAG_FALSE, TAG_FLOAT, TAG_FROZENSET, TAG_INTEGER, TAG_NIL, TAG_SET, TAG_SLICE,
    TAG_STRING, TAG_SYMBOL, TAG_TRUE, TAG_TUPLE, TAG_UUID, ClassInfo, _unpack_word,
)  # fmt: skip
# isort: on

__all__ = ["Decoder", "Reader", "decode_value", "register_reader"]

_unpack_double: Final = _DOUBLE.unpack_from


def _native() -> bool:
    """Whether this module runs compiled (its functions are then not Python functions)."""
    return not isinstance(_native, _FunctionType)


# Compiled, a word is read fastest from four indexed bytes (native operations); interpreted,
# by struct (one call instead of eleven operations).
_NATIVE: Final = _native()


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


def decode_value(data: bytes) -> object:
    """Decode one by-value object filling all of ``data`` (references are refused)."""
    d = Decoder(data)
    value = d.read_object()
    if not d.at_end():
        raise DecodeError(f"{d.remaining} bytes left over after the value", d.pos)
    return value
