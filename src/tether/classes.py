"""Objects that travel by value, and the classes and functions that travel with them.

**Which objects travel by value.** Besides the literals of ``tether.codec``: dataclasses, named
tuples, enums (by member name), ``datetime``/``date``/``time``/``timedelta``, ``Decimal``,
``pathlib`` paths, exceptions, instances of classes marked with :func:`by_value_class` (or with a
true ``__tether_by_value__``), and instances of classes that implement the reduce protocol::

    class Money:
        def __tether_reduce__(self):            # -> a state that can travel by value
            return (self.amount, self.currency)

        @classmethod
        def __tether_rebuild__(cls, state):      # state -> a new instance
            return cls(*state)

A connection's ``passing`` option overrides this per class (``{dict: "reference",
Point: "value"}``), and ``tether.by_value`` / ``tether.by_reference`` per call.

**Classes.** An instance names its class by module, qualified name and a fingerprint of its
source. The receiver uses its own class of that name when it has one with the same
fingerprint. Otherwise it asks the sender for the class (``get_classes``), and defines it from
its source, which works across Python versions, if it accepts code from that peer
(``accept_code=True``); if not, the transfer fails and nothing is defined.

**Functions** travel by value on request (``tether.by_value(func)``): source, defaults, closure
values, and the globals they use, where modules and importable functions and classes go by name.
"""

from __future__ import annotations
import __future__

import ast
import builtins
import dataclasses
import datetime
import decimal
import enum
import hashlib
import inspect
import itertools
import pathlib
import sys
import textwrap
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any, Final

from .exceptions import EncodeError, ProtocolError

__all__ = [
    "STDLIB",
    "Kind",
    "by_value_class",
    "class_record",
    "copy_kind",
    "define_class",
    "define_function",
    "fingerprint",
    "function_record",
    "global_names",
    "importable_name",
    "is_proxy_class",
    "resolve_name",
    "source_of",
    "value_kind",
]

STDLIB = frozenset(sys.stdlib_module_names) | {"builtins"}


def by_value_class(cls: type) -> type:
    """Class decorator: instances of ``cls`` travel by value (their ``__dict__`` or slots),
    and peers may send them here (the class is registered: see :func:`tether.register`)."""
    from .access import register

    cls.__tether_by_value__ = True  # type: ignore[attr-defined]
    register(cls)
    return cls


# ---------------------------------------------------------------------------------------------
# Kinds of by-value objects: how to take one apart and build it again.


class Kind:
    """How instances of some classes travel by value. ``reduce`` gives the state; ``create``
    makes an empty instance before the state is decoded (so cycles through it survive) or
    returns None, in which case ``build`` makes the instance from the state afterwards."""

    name = "object"
    positional = False  # True: the state is the values of names(cls), written one after another

    def reduce(self, obj: Any) -> Any:
        raise NotImplementedError

    def names(self, cls: type) -> tuple[str, ...]:
        raise NotImplementedError

    def fill_values(self, obj: Any, values: list[Any]) -> None:
        raise NotImplementedError

    def create(self, cls: type) -> Any:
        return None

    def fill(self, obj: Any, state: Any) -> None:
        raise NotImplementedError

    def build(self, cls: type, state: Any) -> Any:
        raise NotImplementedError


class _Custom(Kind):
    name = "custom"

    def reduce(self, obj: Any) -> Any:
        return obj.__tether_reduce__()

    def build(self, cls: type, state: Any) -> Any:
        return cls.__tether_rebuild__(state)  # type: ignore[attr-defined]


class _Dataclass(Kind):
    name = "dataclass"
    positional = True

    def __init__(self) -> None:
        self._names: dict[type, tuple[str, ...]] = {}
        self._direct: dict[type, bool] = {}  # may we update __dict__ directly?

    def names(self, cls: type) -> tuple[str, ...]:
        names = self._names.get(cls)
        if names is None:
            names = self._names[cls] = tuple(f.name for f in dataclasses.fields(cls))
            params = getattr(cls, "__dataclass_params__", None)
            frozen = bool(getattr(params, "frozen", False))
            self._direct[cls] = not frozen and "__slots__" not in vars(cls)
        return names

    def reduce(self, obj: Any) -> Any:
        return tuple(getattr(obj, name) for name in self.names(type(obj)))

    def create(self, cls: type) -> Any:
        return cls.__new__(cls)  # type: ignore[call-overload]

    def fill(self, obj: Any, state: Any) -> None:
        names = self.names(type(obj))
        if not isinstance(state, tuple) or len(state) != len(names):
            raise ProtocolError(f"{type(obj).__qualname__} has {len(names)} fields; the state does not fit")
        self.fill_values(obj, list(state))

    def fill_values(self, obj: Any, values: list[Any]) -> None:
        names = self.names(type(obj))
        if len(names) != len(values):
            raise ValueError(f"{len(values)} values for {len(names)} fields")
        if self._direct[type(obj)]:
            attributes: dict[str, Any] = obj.__dict__
            for i in range(len(names)):
                attributes[names[i]] = values[i]
        else:
            for name, value in zip(names, values, strict=True):
                object.__setattr__(obj, name, value)


class _NamedTuple(Kind):
    name = "namedtuple"

    def reduce(self, obj: Any) -> Any:
        return tuple(obj)

    def build(self, cls: type, state: Any) -> Any:
        return cls(*state)


class _Enum(Kind):
    name = "enum"

    def reduce(self, obj: Any) -> Any:
        return obj.name

    def build(self, cls: type, state: Any) -> Any:
        return cls[state]  # type: ignore[index]


class _Constructed(Kind):
    """Types rebuilt as ``cls(*args)`` from a reduced tuple of literals."""

    def __init__(self, name: str, reduce: Callable[[Any], tuple[Any, ...]]) -> None:
        self.name = name
        self._reduce = reduce

    def reduce(self, obj: Any) -> Any:
        return self._reduce(obj)

    def build(self, cls: type, state: Any) -> Any:
        return cls(*state)


class _FromIso(Kind):
    def __init__(self, name: str) -> None:
        self.name = name

    def reduce(self, obj: Any) -> Any:
        return obj.isoformat()

    def build(self, cls: type, state: Any) -> Any:
        return cls.fromisoformat(state)  # type: ignore[attr-defined]


class _Exception(Kind):
    name = "exception"

    def reduce(self, obj: Any) -> Any:
        return tuple(obj.args)

    def build(self, cls: type, state: Any) -> Any:
        try:
            return cls(*state)
        except Exception:
            exc = cls.__new__(cls)  # type: ignore[call-overload]
            exc.args = tuple(state)
            return exc


class _Plain(Kind):
    """Instances of marked classes: their ``__dict__`` (and slots) as a dict."""

    name = "plain"

    def reduce(self, obj: Any) -> Any:
        state = dict(getattr(obj, "__dict__", {}))
        for klass in type(obj).__mro__:
            for slot in getattr(klass, "__slots__", ()):
                if slot not in ("__dict__", "__weakref__") and hasattr(obj, slot):
                    state[slot] = getattr(obj, slot)
        return state

    def create(self, cls: type) -> Any:
        return cls.__new__(cls)  # type: ignore[call-overload]

    def fill(self, obj: Any, state: Any) -> None:
        if not isinstance(state, dict):
            raise ProtocolError(f"the state of a {type(obj).__qualname__} must be a dict")
        for name in state:
            if type(name) is not str or (name.startswith("__") and name.endswith("__")):
                raise ProtocolError(
                    f"the state of a {type(obj).__qualname__} names {name!r}: attribute names are "
                    "strings and never special names such as __class__ or __dict__"
                )
        for name, value in state.items():
            object.__setattr__(obj, name, value)


CUSTOM, DATACLASS, NAMEDTUPLE, ENUM, EXCEPTION, PLAIN = (
    _Custom(), _Dataclass(), _NamedTuple(), _Enum(), _Exception(), _Plain()
)  # fmt: skip
_EXACT: Final[dict[type, Kind]] = {
    datetime.datetime: _FromIso("datetime"),
    datetime.date: _FromIso("date"),
    datetime.time: _FromIso("time"),
    datetime.timedelta: _Constructed("timedelta", lambda d: (d.days, d.seconds, d.microseconds)),
    decimal.Decimal: _Constructed("decimal", lambda d: (str(d),)),
}
_KIND_CACHE: Final[dict[type, Kind | None]] = {}


def value_kind(cls: type) -> Kind | None:
    """How instances of ``cls`` travel by value, or None if they travel by reference."""
    try:
        return _KIND_CACHE[cls]
    except KeyError:
        pass
    kind: Kind | None
    if "__tether_reduce__" in dir(cls) and hasattr(cls, "__tether_rebuild__"):
        kind = CUSTOM
    elif cls in _EXACT:
        kind = _EXACT[cls]
    elif dataclasses.is_dataclass(cls):
        kind = DATACLASS
    elif issubclass(cls, tuple) and hasattr(cls, "_fields"):
        kind = NAMEDTUPLE
    elif issubclass(cls, enum.Enum):
        kind = ENUM
    elif issubclass(cls, pathlib.PurePath):
        kind = _Constructed("path", lambda p: (str(p),))
    elif issubclass(cls, BaseException):
        kind = EXCEPTION
    elif getattr(cls, "__tether_by_value__", False):
        kind = PLAIN
    else:
        kind = None
    _KIND_CACHE[cls] = kind
    return kind


_PROXY_CLASSES: Final[dict[type, bool]] = {}


def is_proxy_class(cls: type) -> bool:
    """Whether ``cls`` is a proxy's class (a true ``__tether_proxy__``), known once per class
    (``getattr`` with a default raises and catches inside)."""
    known = _PROXY_CLASSES.get(cls)
    if known is None:
        known = _PROXY_CLASSES[cls] = bool(getattr(cls, "__tether_proxy__", False))
    return known


def copy_kind(cls: type) -> Kind:
    """The kind used when a caller forces a copy (``tether.by_value``) of any object."""
    return value_kind(cls) or PLAIN


# ---------------------------------------------------------------------------------------------
# Names and fingerprints


def importable_name(obj: Any) -> tuple[str, str] | None:
    """(module, qualname) if ``obj`` (a module, class or function) can be found by that name
    in its module on this side, and the module is not ``__main__``; else None."""
    if isinstance(obj, types.ModuleType):
        return (obj.__name__, "")
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or module == "__main__":
        return None
    if "<locals>" in qualname:
        return None
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return (module, qualname) if found is obj else None


# inspect.getsource parses the module (ast); CPython 3.11 can fail with "SystemError: AST
# constructor recursion depth mismatch" when two threads do that at once (cpython#106905): every
# ast.parse here holds this lock.
_SOURCE_LOCK = threading.Lock()


def source_of(obj: Any) -> str | None:
    """The source text of a class or function (dedented), or None where there is none."""
    for attempt in (1, 2):
        try:
            with _SOURCE_LOCK:
                source = inspect.getsource(obj)
            break
        except (OSError, TypeError):
            return None
        except SystemError as exc:  # cpython#106905 again (an ast use elsewhere, not ours): once more
            if attempt == 2 or "recursion depth mismatch" not in str(exc):
                raise
    return textwrap.dedent(source)


_FINGERPRINTS: weakref.WeakKeyDictionary[Any, bytes | None] = weakref.WeakKeyDictionary()


def fingerprint(obj: Any) -> bytes | None:
    """8 bytes of the SHA-256 of the source of a class or function; None for the standard
    library and for code without source (taken to be the same on both sides).

    Computed once per object (reading source parses its whole module: a peer naming a class
    again and again must not make this side do that each time)."""
    try:
        return _FINGERPRINTS[obj]
    except (KeyError, TypeError):
        pass
    module = getattr(obj, "__module__", "") or ""
    if module.split(".")[0] in STDLIB:
        result = None
    else:
        source = source_of(obj)
        result = None if source is None else hashlib.sha256(source.encode()).digest()[:8]
    try:
        _FINGERPRINTS[obj] = result
    except TypeError:  # not weakly referenceable: not cached
        pass
    return result


def resolve_name(module: str, qualname: str, may_import: bool) -> Any:
    """Find a module, class or function by name on this side; None when it is not there.

    Modules not imported yet are imported only from the standard library, or any module when
    ``may_import`` (the peer is trusted with code).
    """
    found: Any = sys.modules.get(module)
    if found is None and (may_import or module.split(".")[0] in STDLIB) and module != "__main__":
        try:
            found = __import__(module, fromlist=["_"])
        except Exception:
            return None
    if not qualname:
        return found
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            return None
    return found


# ---------------------------------------------------------------------------------------------
# Code that travels: records of classes and functions


def global_names(source: str, code_objects: list[types.CodeType]) -> set[str]:
    """Names a class or function body may look up as globals."""
    names: set[str] = set()
    try:
        with _SOURCE_LOCK:
            tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                names.add(node.id)
    except SyntaxError:
        pass
    for code in code_objects:
        stack = [code]
        while stack:
            c = stack.pop()
            names.update(c.co_names)
            stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return names


def class_record(cls: type, encode_global: Callable[[Any], Any]) -> dict[str, Any]:
    """What ``get_classes`` answers for one class: its names, source and the globals it uses.

    ``encode_global(value)`` decides how each global travels (by name, by value, by class id).
    """
    source = source_of(cls)
    if source is None:
        raise EncodeError(
            f"class {cls.__module__}.{cls.__qualname__} has no source to send (it was defined "
            "interactively or in C); define it in a module both sides can import"
        )
    module_globals = vars(sys.modules[cls.__module__]) if cls.__module__ in sys.modules else {}
    codes = [v.__code__ for v in vars(cls).values() if isinstance(v, types.FunctionType)]
    return {
        "module": cls.__module__,
        "qualname": cls.__qualname__,
        "name": cls.__name__,
        "source": source,
        "globals": _globals_for(source, codes, module_globals, cls.__name__, encode_global),
    }


def function_record(func: types.FunctionType, encode_global: Callable[[Any], Any]) -> dict[str, Any]:
    """A function by value: source, defaults, closure values and the globals it uses."""
    source = source_of(func)
    name = func.__name__
    if source is None:
        raise EncodeError(
            f"function {func.__qualname__} has no source to send (defined interactively?); "
            "define it in a module, or send it by reference"
        )
    if name == "<lambda>":
        source = _lambda_source(func, source)
    closure = {}
    if func.__closure__:
        for var, cell in zip(func.__code__.co_freevars, func.__closure__, strict=True):
            try:
                closure[var] = cell.cell_contents
            except ValueError:
                raise EncodeError(f"closure variable {var!r} of {func.__qualname__} is not set yet") from None
    return {
        "module": func.__module__,
        "qualname": func.__qualname__,
        "name": name,
        "source": source,
        "defaults": func.__defaults__,
        "kwdefaults": func.__kwdefaults__,
        "closure": closure,
        "globals": _globals_for(source, [func.__code__], func.__globals__, name, encode_global),
    }


def _globals_for(
    source: str, codes: list[types.CodeType], module_globals: dict[str, Any], own: str, encode: Callable[[Any], Any]
) -> dict[str, Any]:
    result = {}
    for name in sorted(global_names(source, codes)):
        if name == own or name not in module_globals or (hasattr(builtins, name) and name not in module_globals):
            continue
        value = module_globals[name]
        if value is builtins:
            continue
        result[name] = encode(value)
    return result


def _lambda_source(func: types.FunctionType, source: str) -> str:
    """Cut the lambda out of the statement that defines it: the candidate whose compiled
    bytecode is the function's own."""
    try:
        with _SOURCE_LOCK:
            tree = ast.parse(source)
    except SyntaxError:
        tree = None
    candidates = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda)] if tree else []
    matches = []
    for node in candidates:
        segment = ast.get_source_segment(source, node)
        if segment is None:
            continue
        try:
            outer = compile(segment, "<lambda>", "eval")
        except SyntaxError:
            continue
        inner = next((c for c in outer.co_consts if isinstance(c, types.CodeType)), None)
        code = func.__code__
        if (
            inner is not None
            and inner.co_varnames == code.co_varnames
            and inner.co_argcount == code.co_argcount
            and set(inner.co_names) == set(code.co_names) | set(code.co_freevars)
        ):  # free variables compile to globals here: compare names, not bytecode
            matches.append(segment)
    if not matches:
        raise EncodeError(
            f"cannot isolate the source of the lambda at line {func.__code__.co_firstlineno}; use a def"
        )
    return f"lambda_ = {matches[0]}\n"


_definitions = itertools.count(1)


def _fresh_module(record: dict[str, Any], namespace: dict[str, Any]) -> dict[str, Any]:
    """A module of its own for code a peer sent: ``tether.remote.N.<module>``, registered in
    ``sys.modules`` (dataclasses and typing look a class's module up there) under a name no
    real module has, so nothing of this side is shadowed."""
    module = types.ModuleType(f"tether.remote.{next(_definitions)}.{record['module']}")
    module.__dict__.update(namespace)
    module.__dict__["__builtins__"] = builtins
    sys.modules[module.__name__] = module
    return module.__dict__


def _compile(record: dict[str, Any]) -> types.CodeType:
    # Annotations stay strings (PEP 563) whatever the two Python versions: the source of a
    # class sent from 3.14 (lazy annotations) or from a module with the __future__ import may
    # name things that only exist later.
    code: types.CodeType = compile(
        record["source"],
        f"<tether: {record['module']}.{record['qualname']}>",
        "exec",
        flags=__future__.annotations.compiler_flag,
        dont_inherit=True,
    )
    return code


def define_class(record: dict[str, Any], namespace: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    """Execute a class record's source in a module of its own; return the class and that
    module's namespace (its methods' globals, which the caller may complete later)."""
    code = _compile(record)
    ns = _fresh_module(record, namespace)
    exec(code, ns)
    cls = ns.get(record["name"])
    if not isinstance(cls, type):
        raise ProtocolError(f"the source sent for class {record['qualname']} does not define it")
    cls.__qualname__ = record["qualname"]  # as the sender knows it (it may be nested)
    return cls, ns


def define_function(record: dict[str, Any], namespace: dict[str, Any]) -> types.FunctionType:
    """Execute a function record's source; set its defaults and closure values as globals."""
    code = _compile(record)
    ns = _fresh_module(record, {**namespace, **record["closure"]})
    exec(code, ns)
    name = "lambda_" if record["name"] == "<lambda>" else record["name"]
    func = ns.get(name)
    if not isinstance(func, types.FunctionType):
        raise ProtocolError(f"the source sent for function {record['qualname']} does not define it")
    func.__defaults__ = tuple(record["defaults"]) if record["defaults"] is not None else None
    func.__kwdefaults__ = record["kwdefaults"]
    return func
