"""The live-serialization parts of the codec: per-call markers (by value, by reference),
objects by value with their classes, references by name, functions by value, and the class
info of described references. Importing this module registers their writers and readers
into ``tether.codec`` (``tether.protocol`` imports it; ``tether.codec`` alone reads and
writes plain values only)."""

from __future__ import annotations

from types import FunctionType as _FUNCTION_TYPE
from typing import Any, Final, cast

from . import classes as _classes
from .codec import (
    _DEFAULT_WRITERS,
    _MODULE_TYPE,
    LITERAL_TYPES,
    Decoder,
    Encoder,
    _global_policy,
    register_reader,
    write_str,
)
from .decoding import _PENDING, _compact_reader
from .exceptions import DecodeError, EncodeError
from .hooks import ReferenceHooks
from .words import (
    MY_OBJECT_BASE,
    MY_OBJECT_END,
    TAG_CLASS,
    TAG_CLASS_INFO,
    TAG_CLASS_INFO_REF,
    TAG_CLASS_REF,
    TAG_DESCRIBED_REF,
    TAG_FUNCTION,
    TAG_NAMED,
    TAG_OBJECT,
    TAG_STRING,
    TAG_SYMBOL,
    TAG_YOUR_CLASS,
    ClassInfo,
    pack_word,
)

__all__ = [
    "ByReference", "ByValue", "Named", "PlainReferences", "by_reference", "by_value", "global_value",
    "register", "write_class_info",
]


class ByReference:
    """Wraps an object so that it travels by reference, even a list or dict (a live, shared
    container). Make one with :func:`tether.by_reference`."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj


class ByValue:
    """Wraps an object so that it travels as a copy. Make one with :func:`tether.by_value`."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj


def _w_by_reference(enc: Encoder, v: ByReference, out: bytearray, depth: int) -> None:
    if enc.refs is None:
        raise EncodeError("by_reference() needs a connection to send the reference on")
    enc.refs.write_reference(v.obj, out)


def _w_by_value(enc: Encoder, v: ByValue, out: bytearray, depth: int) -> None:
    obj = v.obj
    if type(obj) in LITERAL_TYPES:
        if type(obj) in (list, dict, set):  # a copy, even of a container the peer shares
            saved, enc.refs = enc.refs, _NoSharing(enc.refs) if enc.refs is not None else None
            try:
                enc.write(obj, out, depth)
            finally:
                enc.refs = saved
            return
        enc.write(obj, out, depth)
    elif not getattr(type(obj), "__tether_proxy__", False) and isinstance(obj, (type, _MODULE_TYPE)):
        raise EncodeError(f"{obj!r} cannot travel by value; classes travel with their instances")
    else:
        enc.write_other(obj, out, depth, force_value=True)


class Named:
    """A module, class or function written by name with no fallback (in code that travels)."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj


def _w_named(enc: Encoder, v: Named, out: bytearray, depth: int) -> None:
    name = _classes.importable_name(v.obj)
    assert name is not None
    enc.write_named(v.obj, name, out, fallback=False)


class PlainReferences:
    """Wraps a value whose references are written as plain "my object" words, without class
    info, so that it can be read out of order (the answers to ``get_classes``)."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj


def _w_plain_references(enc: Encoder, v: PlainReferences, out: bytearray, depth: int) -> None:
    refs: Any = enc.refs
    saved = getattr(refs, "plain_references", False)
    if refs is not None:
        refs.plain_references = True
    try:
        enc.write(v.obj, out, depth)
    finally:
        if refs is not None:
            refs.plain_references = saved


class _NoSharing:
    """Reference hooks that never treat a container as shared (for forced copies)."""

    def __init__(self, refs: Any) -> None:
        self._refs = refs

    def is_exported(self, obj: object) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._refs, name)



def by_reference(obj: object) -> ByReference:
    """Send ``obj`` by reference in this one place, whatever its type.

    ``peer.root.register(tether.by_reference(shared_dict))`` gives the peer a proxy to the live
    dict instead of a copy.
    """
    return ByReference(obj)


def by_value(obj: object) -> ByValue:
    """Send a copy of ``obj`` in this one place (the answer of ``tether.fetch`` uses this)."""
    return ByValue(obj)



def _hooks(d: Decoder, what: str) -> ReferenceHooks:
    if d.refs is None:
        raise DecodeError(f"{what} where only plain values may appear", d.pos)
    return d.refs


def _read_class(d: Decoder) -> type:
    tag = d.word("a class")
    if tag == TAG_CLASS_REF:
        return _hooks(d, "a class").peer_class(d.word("a class id"), None)
    if tag == TAG_YOUR_CLASS:
        return _hooks(d, "a class").own_class(d.word("a class id"))
    if tag != TAG_CLASS:
        raise DecodeError(f"expected a class, found word {tag:#010x}", d.pos - 4)
    class_id = d.word("a class id")
    module = d.read_str((TAG_STRING,), "the module of a class")
    qualname = d.read_str((TAG_STRING,), "the qualified name of a class")
    fp = d.read_object()
    if fp is not None and not isinstance(fp, bytes):
        raise DecodeError("a class fingerprint is a ByteArray or nil", d.pos)
    return _hooks(d, "a class").peer_class(class_id, (module, qualname, fp))


def _r_object(d: Decoder) -> object:
    return _read_object_body(d, _read_class(d))


def _read_object_body(d: Decoder, cls: type) -> object:
    """The state of an object by value of class ``cls``, and the object built from it.

    Objects that a cycle may pass through are made empty first (``kind.create``); while their
    state is read they are marked as being built, so that no user method (``__hash__``,
    ``__eq__``) runs on them. A class with a finalizer (``__del__``) is never made before its
    state is complete, so a frame that fails half-way leaves nothing for it to finalize.
    """
    kind = _classes.value_kind(cls) or _classes.PLAIN
    d.budget -= _OBJECT_COST
    if d.budget < 0:
        d.charge(0, f"an object of {cls.__qualname__}")
    slot = len(d.memo)
    obj = None if _has_finalizer(cls) else kind.create(cls)
    d.memo.append(_PENDING if obj is None else obj)
    building: set[int] | None = None
    key = 0
    if obj is not None:
        if type(d.building) is frozenset:
            d.building = set()
        building = cast("set[int]", d.building)  # (a set once anything is being built)
        key = id(obj)
        building.add(key)
    try:
        if kind.positional:
            values = [d.read_object() for _ in kind.names(cls)]
        else:
            state = d.read_object()
    except DecodeError as exc:
        raise exc.prefixed(f"<{cls.__qualname__}>") from None
    finally:
        if building is not None:
            building.discard(key)
    try:
        if kind.positional:
            if obj is None:
                obj = kind.create(cls)
                d.memo[slot] = obj
            kind.fill_values(obj, values)
        elif obj is None:
            obj = kind.build(cls, state)
            d.memo[slot] = obj
        else:
            kind.fill(obj, state)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"cannot rebuild a {cls.__qualname__} from its state: {exc}", d.pos) from None
    return obj


_OBJECT_COST: Final = 256  # an instance, its __dict__ and a few attributes
_FINALIZERS: Final[dict[type, bool]] = {}  # whether a class has __del__, per class


def _has_finalizer(cls: type) -> bool:
    known = _FINALIZERS.get(cls)
    if known is None:  # (getattr with a default raises and catches inside: once per class)
        known = _FINALIZERS[cls] = getattr(cls, "__del__", None) is not None
    return known


def _r_named(d: Decoder) -> object:
    module = d.read_str((TAG_STRING,), "a module name")
    qualname = d.read_str((TAG_STRING,), "a qualified name")
    fp = d.read_object()
    if fp is not None and not isinstance(fp, bytes):
        raise DecodeError("a fingerprint is a ByteArray or nil", d.pos)
    fallback = d.read_object()
    return _hooks(d, "a named reference").resolve_named(module, qualname, fp, fallback)


def _r_function(d: Decoder) -> object:
    record = d.read_object()
    if not isinstance(record, dict):
        raise DecodeError("a function record is a Dict", d.pos)
    return _hooks(d, "a function").define_function(record)


def _r_described_ref(d: Decoder) -> object:
    w = d.word("the object marker of a described reference")
    if not MY_OBJECT_BASE <= w < MY_OBJECT_END:
        raise DecodeError(
            f"a described reference must hold an object marker, found {w:#010x}", d.pos - 4
        )
    info = _read_class_info(d)
    return d._my_object(w, info)


def _read_class_info(d: Decoder) -> ClassInfo | None:
    if d.refs is None:
        raise DecodeError("class info where only values may appear", d.pos)
    tag = d.word("class info")
    class_id = d.word("a class id")
    if tag == TAG_CLASS_INFO_REF:
        # Through Any: the compiled codec checks what a typed call returns, and hooks that
        # stand in for a connection (in tests) may know no class info (None).
        hooks: Any = d.refs
        known: ClassInfo | None = hooks.class_info(class_id)
        return known
    if tag != TAG_CLASS_INFO:
        raise DecodeError(f"expected class info, found word {tag:#010x}", d.pos - 8)
    module = d.read_str(what="the module of a class")
    qualname = d.read_str(what="the qualified name of a class")
    n = d.count("a method list")
    methods = frozenset(d.read_str(what="a method name") for _ in range(n))
    n2 = d.count("a special method list")
    specials = frozenset(d.read_str(what="a special method name") for _ in range(n2))
    d.charge(512 + 128 * (n + n2), "class info")
    info = ClassInfo(module, qualname, methods, specials)
    d.refs.define_class_info(class_id, info)
    return info



def write_class_info(out: bytearray, class_id: int, info: ClassInfo | None) -> None:
    """Write class info: the full definition when ``info`` is given, else a back-reference."""
    if info is None:
        out += pack_word(TAG_CLASS_INFO_REF)
        out += pack_word(class_id)
        return
    out += pack_word(TAG_CLASS_INFO)
    out += pack_word(class_id)
    write_str(out, TAG_STRING, info.module)
    write_str(out, TAG_STRING, info.qualname)
    for names in (info.methods or (), info.specials):
        out += pack_word(len(names))
        for name in sorted(names):
            write_str(out, TAG_SYMBOL, name)



def global_value(self: Encoder, value: object) -> object:
    """How a global used by code that travels is sent: by name when importable."""
    if isinstance(value, (type, _MODULE_TYPE, _FUNCTION_TYPE)) and _classes.importable_name(value):
        return Named(value)
    if isinstance(value, _FUNCTION_TYPE):
        return ByValue(value)
    return value


def register() -> None:
    _global_policy[0] = global_value
    _compact_reader[0] = _read_object_body
    _DEFAULT_WRITERS[ByReference] = _w_by_reference
    _DEFAULT_WRITERS[ByValue] = _w_by_value
    _DEFAULT_WRITERS[Named] = _w_named
    _DEFAULT_WRITERS[PlainReferences] = _w_plain_references
    for tag, reader in {
        TAG_DESCRIBED_REF: _r_described_ref,
        TAG_OBJECT: _r_object,
        TAG_NAMED: _r_named,
        TAG_FUNCTION: _r_function,
    }.items():
        register_reader(tag, reader)


register()
