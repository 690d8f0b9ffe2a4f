"""Applying one incoming message to a local object, under an access policy.

A selector is either a Python data-model method name, performed through the builtin operation
that the interpreter itself would use (``__len__`` runs ``len(obj)``, ``__radd__`` runs
``other + obj``, ``__getattribute__`` with argument ``name`` reads an attribute), or a plain
name, which calls the method of that name: ``add`` with arguments ``(3, 4)`` is
``obj.add(3, 4)``. Smalltalk keyword selectors map to Python names by dropping the last colon
and turning the others into underscores (``at:put:`` is ``at_put``); binary selectors map to
operators (``+`` is ``__add__``). ``docs/protocol.md`` section 6 is the normative list.
"""

from __future__ import annotations

import copy
import inspect
import math
import operator
import os
from collections.abc import Callable
from typing import Any

from .access import SAFE_ATTRIBUTES, AccessPolicy

__all__ = ["ATTRIBUTE_OPERATIONS", "BINARY_SELECTORS", "OBJECT_SPECIALS", "OPERATIONS", "SAFE_ATTRIBUTES", "AccessPolicy", "class_specials", "perform", "python_name", "smalltalk_selector"]

_BINARY = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "matmul": operator.matmul,
    "truediv": operator.truediv,
    "floordiv": operator.floordiv,
    "mod": operator.mod,
    "lshift": operator.lshift,
    "rshift": operator.rshift,
    "and": operator.and_,
    "or": operator.or_,
    "xor": operator.xor,
}
_INPLACE = {
    "add": operator.iadd,
    "sub": operator.isub,
    "mul": operator.imul,
    "matmul": operator.imatmul,
    "truediv": operator.itruediv,
    "floordiv": operator.ifloordiv,
    "mod": operator.imod,
    "pow": operator.ipow,
    "lshift": operator.ilshift,
    "rshift": operator.irshift,
    "and": operator.iand,
    "or": operator.ior,
    "xor": operator.ixor,
}


def _reflected(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def reflected(obj: Any, other: Any) -> Any:
        return op(other, obj)

    return reflected


def _pow(obj: Any, other: Any, modulo: Any = None) -> Any:
    return pow(obj, other) if modulo is None else pow(obj, other, modulo)


def _rpow(obj: Any, other: Any, modulo: Any = None) -> Any:
    return pow(other, obj) if modulo is None else pow(other, obj, modulo)


def _enter(obj: Any) -> Any:
    return type(obj).__enter__(obj)


def _exit(obj: Any, *exc_info: Any) -> Any:
    return type(obj).__exit__(obj, *exc_info)


def _aenter(obj: Any) -> Any:
    return type(obj).__aenter__(obj)


def _aexit(obj: Any, *exc_info: Any) -> Any:
    return type(obj).__aexit__(obj, *exc_info)


def _call(obj: Any, *args: Any, **kwargs: Any) -> Any:
    return obj(*args, **kwargs)


def _contains(obj: Any, item: Any) -> bool:
    return item in obj


def _dir(obj: Any) -> list[str]:
    return list(dir(obj))


def _round(obj: Any, *ndigits: Any) -> Any:
    return round(obj, *ndigits)


def _copy(obj: Any) -> Any:
    return copy.copy(obj)


def _deepcopy(obj: Any, memo: Any = None) -> Any:
    return copy.deepcopy(obj)


def _instancecheck(cls: Any, obj: Any) -> bool:
    return isinstance(obj, cls)


def _subclasscheck(cls: Any, subclass: Any) -> bool:
    return issubclass(subclass, cls)


async def _await(obj: Any) -> Any:
    return await obj


def _aiter(obj: Any) -> Any:
    return aiter(obj)


async def _anext(obj: Any) -> Any:
    return await anext(obj)  # StopAsyncIteration travels to the caller as itself


def _signature(obj: Any) -> tuple[list[tuple[str, int, str | None, str | None]], str | None]:
    """A callable's signature as plain data: (name, kind, default repr, annotation repr) per
    parameter, and the return annotation's repr. ``tether.proxy`` rebuilds an inspect.Signature."""
    sig = inspect.signature(obj)
    params = [
        (
            p.name,
            int(p.kind),
            None if p.default is p.empty else _plain_repr(p.default),
            None if p.annotation is p.empty else _annotation_text(p.annotation),
        )
        for p in sig.parameters.values()
    ]
    returns = None if sig.return_annotation is sig.empty else _annotation_text(sig.return_annotation)
    return params, returns


def _plain_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__qualname__}>"


def _annotation_text(annotation: Any) -> str:
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type):
        return annotation.__qualname__
    return _plain_repr(annotation)


# selector -> function(obj, *args, **kwargs); the data-model operations a peer may use.
OPERATIONS: dict[str, Callable[..., Any]] = {
    "__call__": _call,
    "__len__": len,
    "__length_hint__": operator.length_hint,
    "__iter__": iter,
    "__next__": next,
    "__reversed__": reversed,
    "__contains__": _contains,
    "__getitem__": operator.getitem,
    "__setitem__": operator.setitem,
    "__delitem__": operator.delitem,
    "__str__": str,
    "__repr__": repr,
    "__format__": format,
    "__bytes__": bytes,
    "__bool__": bool,
    "__hash__": hash,
    "__dir__": _dir,
    "__eq__": operator.eq,
    "__ne__": operator.ne,
    "__lt__": operator.lt,
    "__le__": operator.le,
    "__gt__": operator.gt,
    "__ge__": operator.ge,
    "__pow__": _pow,
    "__rpow__": _rpow,
    "__divmod__": divmod,
    "__rdivmod__": _reflected(divmod),
    "__neg__": operator.neg,
    "__pos__": operator.pos,
    "__abs__": abs,
    "__invert__": operator.invert,
    "__int__": int,
    "__float__": float,
    "__complex__": complex,
    "__index__": operator.index,
    "__round__": _round,
    "__trunc__": math.trunc,
    "__floor__": math.floor,
    "__ceil__": math.ceil,
    "__enter__": _enter,
    "__exit__": _exit,
    "__aenter__": _aenter,
    "__aexit__": _aexit,
    "__fspath__": os.fspath,
    "__copy__": _copy,
    "__deepcopy__": _deepcopy,
    "__instancecheck__": _instancecheck,
    "__subclasscheck__": _subclasscheck,
    "__await__": _await,
    "__aiter__": _aiter,
    "__anext__": _anext,
    "__signature__": _signature,
}
for _name, _op in _BINARY.items():
    OPERATIONS[f"__{_name}__"] = _op
    OPERATIONS[f"__r{_name}__"] = _reflected(_op)
for _name, _op in _INPLACE.items():
    OPERATIONS[f"__i{_name}__"] = _op

ATTRIBUTE_OPERATIONS = ("__getattribute__", "__setattr__", "__delattr__")

# The operations every object supports; class info lists only a class's others.
OBJECT_SPECIALS = frozenset(
    {"__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__str__", "__repr__",
     "__format__", "__dir__"}
)  # fmt: skip
# Operations that are not methods a class defines under that name.
_PSEUDO_OPERATIONS = frozenset({"__signature__", "__copy__", "__deepcopy__"})


def class_specials(cls: type) -> frozenset[str]:
    """The data-model operations instances of ``cls`` support beyond :data:`OBJECT_SPECIALS`
    (looked up in the class's own MRO, as the interpreter does, not on its metaclass)."""
    found = set()
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if name in OPERATIONS and name not in _PSEUDO_OPERATIONS:
                if value is None:
                    found.discard(name)
                else:
                    found.add(name)
    return frozenset(found - OBJECT_SPECIALS)

# Smalltalk binary selectors and their Python operations.
BINARY_SELECTORS = {
    "+": "__add__",
    "-": "__sub__",
    "*": "__mul__",
    "/": "__truediv__",
    "//": "__floordiv__",
    "\\\\": "__mod__",
    "=": "__eq__",
    "~=": "__ne__",
    "<": "__lt__",
    "<=": "__le__",
    ">": "__gt__",
    ">=": "__ge__",
    "&": "__and__",
    "|": "__or__",
}


_SMALLTALK_BINARY = {name: selector for selector, name in BINARY_SELECTORS.items()}


def smalltalk_selector(name: str, arity: int) -> str:
    """The selector a Smalltalk peer understands for the Python call ``name(*arity args)``: the
    inverse of :func:`python_name`. An operation's name gives its binary selector (``__add__``
    -> ``+``); a name of ``arity`` parts joined by underscores gives a keyword selector
    (``at_put`` with 2 arguments -> ``at:put:``), as does a one-part name with one argument
    (``add`` with 1 -> ``add:``); a name without arguments stays unary (``size``); any other
    name is sent as it is (a Smalltalk peer answers ``doesNotUnderstand``, naming it)."""
    binary = _SMALLTALK_BINARY.get(name)
    if binary is not None and arity == 1:
        return binary
    if arity == 0 or name.startswith("_") or name.endswith("_"):
        return name
    parts = name.split("_")
    if len(parts) == arity and all(parts):
        return ":".join(parts) + ":"
    if arity == 1 and len(parts) == 1:
        return name + ":"
    return name


def python_name(selector: str) -> str:
    """Map a selector to the Python name it performs (``at:put:`` -> ``at_put``)."""
    mapped = BINARY_SELECTORS.get(selector)
    if mapped is not None:
        return mapped
    if ":" in selector:
        return selector.rstrip(":").replace(":", "_")
    return selector


def perform(obj: Any, selector: str, args: list[Any], kwargs: dict[str, Any], policy: AccessPolicy) -> Any:
    """Perform ``selector`` on ``obj`` as ``policy`` allows; return what it returns (possibly a
    coroutine). Raises :class:`~tether.exceptions.AccessDenied` for what the policy refuses."""
    op = OPERATIONS.get(selector)
    if op is not None:
        if selector == "__dir__":
            return policy.visible_names(obj)
        return op(obj, *args, **kwargs)
    if selector == "__getattribute__":
        (name,) = _attribute_args(selector, args, 1)
        policy.check(obj, name, "get")
        return getattr(obj, name)
    if selector == "__setattr__":
        name, value = _attribute_args(selector, args, 2)
        policy.check(obj, name, "set")
        setattr(obj, name, value)
        return None
    if selector == "__delattr__":
        (name,) = _attribute_args(selector, args, 1)
        policy.check(obj, name, "delete")
        delattr(obj, name)
        return None
    name = selector
    if ":" in selector or selector in BINARY_SELECTORS:  # a Smalltalk selector (python_name maps it)
        name = python_name(selector)
        if name in OPERATIONS:
            return OPERATIONS[name](obj, *args, **kwargs)
    policy.check(obj, name, "call")
    return getattr(obj, name)(*args, **kwargs)


def _attribute_args(selector: str, args: list[Any], n: int) -> list[Any]:
    if len(args) != n or not isinstance(args[0], str):
        raise TypeError(f"{selector} takes {n} argument(s), the first an attribute name String")
    return args
