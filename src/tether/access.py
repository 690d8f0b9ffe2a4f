"""What a peer may reach: the capability boundary of a connection (``docs/security.md``).

The rule is written positively. An **untrusted** peer (the default for every connection) may:

* send messages to the objects this side exposed to it (its root, and whatever travelled to it
  by reference since), and nothing else: no name it sends ever imports a module or yields a
  module, function or class that this side did not allow (see :meth:`AccessPolicy.resolve`);
* on such an object, use the public names that the object's class defines in *application
  code* (not in the interpreter or the standard library), the public attributes in the
  object's own ``__dict__``, the public methods of the builtin containers (``list.append``...),
  and the data-model operations in :data:`tether.dispatch.OPERATIONS` (``len``, ``p[0]``, ``+``,
  calling a function it was given...);
* read ``__doc__``, ``__name__``, ``__qualname__`` and ``__module__``;
* set or delete attributes only where the class lists them in ``__tether_settable__`` (or sets
  it to ``True``) or the policy was made with ``settable=True``.

Objects of interpreter types (modules, frames, tracebacks, code, cells, class namespaces) and
Tether's own runtime objects (sessions, protocols, servers, peers) never travel by reference to
an untrusted peer: :meth:`AccessPolicy.check_send` refuses them, and their attributes are not
reachable. A **trusted** peer (``trusted=True``) reaches everything, as a Python shell would.
The two debugging objects of ``tether.debug`` (a failure, a lent console) are made only for a
connection where debugging is on; they may travel on it whatever the policy, and their public
methods check that the message came over that connection with debugging on.

Applications allow names with :func:`register` (process-wide) or ``AccessPolicy(allow=[...])``
(one server or connection): a registered class may be named by peers (its instances rebuilt
from their state, its source sent on request), a registered function may be named.
"""

from __future__ import annotations

import builtins
import collections
import datetime
import decimal
import pathlib
import sys
import types
import uuid
import weakref
from collections.abc import Iterable
from typing import Any

from . import exceptions as _exceptions
from .exceptions import AccessDenied, EncodeError

__all__ = ["CONTAINER_TYPES", "SAFE_ATTRIBUTES", "STDLIB", "AccessPolicy", "is_application_class", "is_registered", "reachable_names", "refused_object", "refused_type", "register"]

# Attributes that any peer may read even though they start with an underscore.
SAFE_ATTRIBUTES = frozenset({"__doc__", "__name__", "__qualname__", "__module__"})

STDLIB = frozenset(sys.stdlib_module_names) | {"builtins"}

# Tether modules whose classes are application code (the page's default root, and classes a
# peer sent that this side defined under ``tether.remote``).
_APPLICATION_MODULES = ("tether.browser.page", "tether.remote.")

# Interpreter types that never travel by reference to an untrusted peer.
_REFUSED_TYPES: tuple[type, ...] = (
    types.ModuleType,
    types.FrameType,
    types.TracebackType,
    types.CodeType,
    types.CellType,
    types.MappingProxyType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
    weakref.ReferenceType,
)

# Builtin containers keep their public methods when they travel by reference.
CONTAINER_TYPES: frozenset[type] = frozenset(
    {list, dict, set, frozenset, tuple, bytearray, collections.deque, collections.OrderedDict,
     collections.defaultdict, collections.Counter, collections.UserList, collections.UserDict,
     collections.UserString}
)  # fmt: skip
# The public methods of a few interpreter types that a peer is expected to use.
_INTERPRETER_METHODS: dict[type, frozenset[str]] = {
    types.GeneratorType: frozenset({"send", "throw", "close"}),
    types.AsyncGeneratorType: frozenset({"asend", "athrow", "aclose"}),
}

# Classes any peer may name (built-in value types): they are rebuilt from plain state only.
_BUILTIN_VALUE_CLASSES: frozenset[type] = frozenset(
    {type(None), bool, int, float, complex, str, bytes, bytearray, list, tuple, dict, set, frozenset,
     slice, range, uuid.UUID, datetime.datetime, datetime.date, datetime.time, datetime.timedelta,
     datetime.timezone, decimal.Decimal, pathlib.PurePath, pathlib.PurePosixPath,
     pathlib.PureWindowsPath, pathlib.Path, pathlib.PosixPath, pathlib.WindowsPath}
    | {v for v in vars(builtins).values() if isinstance(v, type) and issubclass(v, Exception)}
    | {v for v in vars(_exceptions).values() if isinstance(v, type) and issubclass(v, Exception)}
)  # fmt: skip

_REGISTERED: dict[tuple[str, str], object] = {}


def _name_of(obj: Any) -> tuple[str, str]:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise TypeError(f"{obj!r} has no module and qualified name to register it under")
    return module, qualname


def register(*objs: Any) -> Any:
    """Let peers name these classes and functions (process-wide); returns the first, so it
    works as a class decorator: ``@tether.register``.

    A registered class may arrive by value from any peer (its instances are rebuilt from their
    state), may be passed by name, and its source may be sent to a peer that asks for it
    (``get_classes``). A registered function may be passed by name. Register only what you
    would let a stranger construct or call. For one server only, use
    ``AccessPolicy(allow=[...])`` instead.
    """
    if not objs:
        raise TypeError("register() needs at least one class or function")
    for obj in objs:
        if not isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
            raise TypeError(f"register() takes classes and functions, not {type(obj).__qualname__}")
        _REGISTERED[_name_of(obj)] = obj
    return objs[0]


def is_registered(obj: object) -> bool:
    """Whether :func:`register` allowed ``obj`` for every peer."""
    try:
        return _REGISTERED.get(_name_of(obj)) is obj
    except TypeError:
        return False


def _module_of(cls: type) -> str:
    module = getattr(cls, "__module__", None)
    return module if isinstance(module, str) else ""


def is_application_class(cls: type) -> bool:
    """Whether ``cls`` is application code: not the interpreter's, the standard library's or
    Tether's runtime (a class a peer sent, defined under ``tether.remote``, counts)."""
    module = _module_of(cls)
    top = module.partition(".")[0]
    if top == "tether":
        return module.startswith(_APPLICATION_MODULES)
    return bool(module) and top not in STDLIB


def _is_tether_runtime(cls: type) -> bool:
    module = _module_of(cls)
    return (module == "tether" or module.startswith("tether.")) and not module.startswith(_APPLICATION_MODULES)


def _is_debugging_object(cls: type) -> bool:
    """A failure or a lent console of ``tether.debug`` (they check their connection themselves)."""
    return cls.__module__ == "tether.debug" and vars(cls).get("__tether_debug__") is True


def refused_type(cls: type) -> bool:
    """Whether objects of ``cls`` never travel by reference to an untrusted peer."""
    if issubclass(cls, _REFUSED_TYPES):
        return True
    if getattr(cls, "__tether_proxy__", False):
        return False  # a proxy of another connection stands for its remote object
    return (
        _is_tether_runtime(cls)
        and not issubclass(cls, BaseException)
        and cls.__name__ != "TetherObject"
        and not _is_debugging_object(cls)
    )


def refused_object(obj: object) -> bool:
    """Whether ``obj`` never travels by reference to an untrusted peer: an object of a refused
    type (:func:`refused_type`), a class that is not application code, or a function of the
    interpreter or the standard library that is not bound to an object (``os.system``,
    ``eval``, ``shutil.rmtree``; ``some_list.append`` and application functions do travel)."""
    cls = type(obj)
    if refused_type(cls):
        return True
    if isinstance(obj, type):
        return not is_application_class(obj) and not getattr(obj, "__tether_proxy__", False)
    if cls is types.BuiltinFunctionType or cls is types.FunctionType:
        bound = getattr(obj, "__self__", None)
        if bound is None or isinstance(bound, types.ModuleType):
            module = getattr(obj, "__module__", None) or "builtins"
            return module.partition(".")[0] in STDLIB or (module.startswith("tether.") and not module.startswith(
                _APPLICATION_MODULES
            ))
    return False


def _public_names_of(klass: type) -> Iterable[str]:
    return (name for name in vars(klass) if not name.startswith("_"))


# A plain dict (a weak one would make a weak reference per lookup, on every call), emptied
# when it grows past its bound so that classes made on the fly are not kept for ever.
_REACHABLE: dict[type, tuple[frozenset[str], bool]] = {}
_REACHABLE_BOUND = 4096


def reachable_names(cls: type) -> tuple[frozenset[str], bool]:
    """The public names an untrusted peer may use on instances of ``cls``, and whether the
    class answers any name itself (it defines ``__getattr__`` in application code)."""
    found = _REACHABLE.get(cls)
    if found is not None:
        return found
    names: set[str] = set()
    dynamic = False
    if not refused_type(cls):
        for klass in cls.__mro__:
            if klass in CONTAINER_TYPES:
                names.update(name for name in dir(klass) if not name.startswith("_"))
            elif klass in _INTERPRETER_METHODS:
                names.update(_INTERPRETER_METHODS[klass])
            elif is_application_class(klass):
                names.update(_public_names_of(klass))
                if "__getattr__" in vars(klass):
                    dynamic = True
            elif _is_debugging_object(klass):
                names.update(_public_names_of(klass))
    result = (frozenset(names), dynamic)
    if len(_REACHABLE) >= _REACHABLE_BOUND:
        _REACHABLE.clear()
    _REACHABLE[cls] = result
    return result


class AccessPolicy:
    """What a peer may do with the objects exposed to it (see the module docstring).

    ``AccessPolicy()`` is the untrusted default; ``AccessPolicy(trusted=True)`` allows every
    name, as a shell would. ``allow`` lists classes and functions that peers of this policy
    may name (on top of :func:`register`); ``settable=True`` lets peers set and delete public
    attributes of application objects. Subclass and override :meth:`check` for finer rules: it
    receives the object, the attribute name and the kind of access (``"call"``, ``"get"``,
    ``"set"`` or ``"delete"``) and raises :class:`~tether.exceptions.AccessDenied` to refuse.
    """

    def __init__(self, trusted: bool = False, *, allow: Iterable[Any] = (), settable: bool = False) -> None:
        self.trusted = trusted
        self.settable = settable
        self.allowed: dict[tuple[str, str], object] = {}
        for obj in allow:
            if not isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
                raise TypeError(f"allow= takes classes and functions, not {type(obj).__qualname__}")
            self.allowed[_name_of(obj)] = obj

    # -- names a peer uses on an exposed object ----------------------------------------------

    def check(self, obj: object, name: str, access: str) -> None:
        """Raise :class:`AccessDenied` unless the peer may use ``name`` on ``obj``."""
        if self.trusted:
            return
        if access == "call" and name in reachable_names(type(obj))[0] and name[0] != "_":
            return  # the common case first: a public method of an application class
        if name.startswith("_"):
            if access == "get" and name in SAFE_ATTRIBUTES:
                return
            raise AccessDenied(
                f"{type(obj).__qualname__} attribute {name!r} is private: peers may use public "
                "names and data-model operations only; the serving side can pass trusted=True "
                "to allow private names (for peers you would give a shell)",
                name=name,
            )
        if access in ("set", "delete"):
            self._check_settable(obj, name, access)
            return
        if getattr(type(obj), "__tether_proxy__", False):
            return  # a forwarded proxy: its owner applies its own policy
        names, dynamic = reachable_names(type(obj))
        if name in names or dynamic:
            return
        if isinstance(obj, type) and not refused_type(type(obj)):
            if name in reachable_names(obj)[0]:
                return  # a class exposed by reference: its own class-level names
        instance_dict = _instance_dict(obj)
        if instance_dict is not None and name in instance_dict and not refused_type(type(obj)):
            return
        raise AccessDenied(
            f"{type(obj).__qualname__} has no public name {name!r} that a peer may use: peers "
            "reach the public names that application classes define and the public attributes "
            "of application objects, not those of interpreter or standard-library objects",
            name=name,
        )

    def _check_settable(self, obj: object, name: str, access: str) -> None:
        allowed = getattr(type(obj), "__tether_settable__", None)
        if self.settable or allowed is True or (isinstance(allowed, (set, frozenset, list, tuple)) and name in allowed):
            if not refused_type(type(obj)) and not isinstance(obj, type):
                return
        verb = "set" if access == "set" else "delete"
        raise AccessDenied(
            f"peers may not {verb} attribute {name!r} of {type(obj).__qualname__}: list it in the "
            "class's __tether_settable__ (or set that to True), or serve with "
            "AccessPolicy(settable=True)",
            name=name,
        )

    def visible_names(self, obj: object) -> list[str]:
        """What ``dir(proxy)`` shows a peer: the names it may use."""
        if self.trusted:
            return list(dir(obj))
        names = set(reachable_names(type(obj))[0])
        if isinstance(obj, type):
            names |= reachable_names(obj)[0]
        instance_dict = _instance_dict(obj)
        if instance_dict is not None:
            names.update(n for n in instance_dict if isinstance(n, str) and not n.startswith("_"))
        return sorted(names)

    def describe_methods(self, cls: type, methods: frozenset[str]) -> frozenset[str]:
        """The method names listed in the class info sent to the peer (``methods`` are all the
        public methods of ``cls``); an untrusted peer is told only of those it may call."""
        if self.trusted:
            return methods
        names, dynamic = reachable_names(cls)
        return methods if dynamic else methods & names

    # -- objects leaving by reference --------------------------------------------------------

    def check_send(self, obj: object) -> None:
        """Raise :class:`EncodeError` if ``obj`` may not travel by reference to the peer."""
        if self.may_send(obj):
            return
        cls = obj if isinstance(obj, type) else type(obj)
        what = f"class {cls.__module__}.{cls.__qualname__}" if obj is cls else f"{cls.__module__}.{cls.__qualname__}"
        if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)):
            what = f"function {getattr(obj, '__module__', None) or 'builtins'}.{getattr(obj, '__qualname__', '?')}"
        raise EncodeError(
            f"a {what} cannot be sent to an untrusted peer: interpreter objects (modules, frames, "
            "tracebacks, code, the standard library's classes and functions) and Tether's runtime "
            "objects never leave this process by reference; wrap what the peer may do in a "
            "function or class of your own"
        )

    def may_send(self, obj: object) -> bool:
        """Whether ``obj`` may travel to the peer by reference (see :meth:`check_send`)."""
        return self.trusted or not refused_object(obj)

    # -- names the peer sends ----------------------------------------------------------------

    def resolve(self, module: str, qualname: str, described: dict[tuple[str, str], object]) -> object | None:
        """What a name from an untrusted peer stands for here, or None when it is not allowed.

        Allowed: what this side described to the peer (``described``), the built-in value types,
        and what the application registered (:func:`register`, ``allow=``). Nothing is imported.
        """
        key = (module, qualname)
        found = described.get(key)
        if found is None:
            found = self.allowed.get(key)
        if found is None:
            found = _REGISTERED.get(key)
        if found is None and qualname and "." not in qualname:
            namespace = getattr(sys.modules.get(module), "__dict__", {})  # no module __getattr__
            candidate = namespace.get(qualname)
            if isinstance(candidate, type) and candidate in _BUILTIN_VALUE_CLASSES:
                found = candidate
        return found

    def may_share_source(self, cls: type) -> bool:
        """Whether the source of ``cls`` (and the globals it uses) may go to the peer."""
        if self.trusted:
            return True
        name = (getattr(cls, "__module__", ""), getattr(cls, "__qualname__", ""))
        return self.allowed.get(name) is cls or _REGISTERED.get(name) is cls

    def local_class(self, module: str, qualname: str) -> type | None:
        """The class a proxy claims to be an instance of (``p.__class__``), when that claim may
        be believed: any class for a trusted peer, builtin classes only for an untrusted one."""
        if not self.trusted:
            if module != "builtins" or "." in qualname:
                return None
            found = vars(builtins).get(qualname)
            return found if isinstance(found, type) and found.__module__ == "builtins" else None
        obj: Any = sys.modules.get(module)
        if obj is None:
            return None
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj if isinstance(obj, type) else None


def _instance_dict(obj: object) -> dict[str, Any] | None:
    try:
        d = object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        return None
    return d if type(d) is dict else None
