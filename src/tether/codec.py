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

This module writes (:class:`Encoder`); :mod:`tether.decoding` reads (:class:`Decoder`, which
this module re-exports with ``register_reader`` and ``decode_value``: import them from here).
To add a by-value kind, register a writer for its type with :meth:`Encoder.register` and a
reader for its tag with :func:`register_reader`.

On CPython this module, :mod:`tether.decoding`, :mod:`tether.values` and the modules the codec calls on every object
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
from .decoding import Decoder, Reader, decode_value, register_reader
from .exceptions import EncodeError
from .hooks import NeedClasses, ReferenceHooks  # noqa: F401 - NeedClasses is part of the codec's interface

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
# tag and value in one pack (Final: compiled, these are C globals).
_SMALL_WORDS: Final = [pack_word(SMALLINT_BASE + n) for n in range(1024)]
_SHORT_STRING_HEADS: Final = [pack_word(COMPACT_STRING + n) for n in range(256)]
_pack_tagged_double: Final = struct.Struct(">Id").pack


# ---------------------------------------------------------------------------------------------
# Encoding


def write_bytes(out: bytearray, tag: int, data: bytes) -> None:
    out += pack_word(tag)
    out += pack_word(len(data))
    out += data


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



def implementation() -> str:
    """Which codec runs here: ``"compiled (mypyc)"`` where CPython imported the extension
    modules that ``setup.py`` builds from this file and the others it names, else ``"pure Python"``
    (Pyodide, no C compiler at install time, ``TETHER_PURE=1`` in the tests)."""
    return "pure Python" if isinstance(implementation, _FunctionType) else "compiled (mypyc)"


def encode_value(value: object) -> bytes:
    """Encode a by-value object (references are refused with :class:`EncodeError`)."""
    return Encoder().encode(value)
