"""Transparent proxies: local stand-ins that forward every message to a remote object.

Python looks special methods up on the *type*, never through ``__getattr__``, so forwarding
them is a property of the proxy type: :class:`Proxy` defines every data-model method and sends
each one as a message named after it (``len(p)`` sends ``__len__``). Plain attribute reads go
through ``__getattribute__`` and are forwarded too, except that names the remote class defines
as methods come back as :class:`RemoteMethod` objects without a round trip, so
``p.method(x)`` costs exactly one round trip.

The proxy keeps its own state in a slot that no attribute name reaches, so every remote
attribute name, including ``_Proxy__state``, is forwarded.

Where debugging is on for the connection (``tether.debug``), a remote error that carries the
remote frames is raised with them right below the caller's frame (Tether's own frames left
out), and ``__wrapped__`` leads ``inspect.getsource`` to the remote source.

What a proxy does depends on its session's face: on a sync session every operation blocks
for the answer. On an asyncio session an operation made on the event loop's thread returns an
awaitable (``await p.add(3, 4)``, ``await p[0]``); operations that Python requires to return a
plain value (``len``, ``bool``, ``hash``, ``str``, ``int``...) cannot be awaited and raise
:class:`~tether.exceptions.UsageError` there: use ``await tether.aio.call(p, "__len__")``.
"""

from __future__ import annotations

import inspect
import types
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from .dispatch import OBJECT_SPECIALS, OPERATIONS
from .remote_frames import mark, source_code
from .words import ClassInfo

__all__ = [
    "AsyncRemoteIterator", "AsyncStream", "AwaitableProxy", "CallableAwaitableProxy", "CallableProxy",
    "Proxy", "ProxyState", "RemoteIterator", "RemoteMethod", "describe", "fetch", "help", "is_proxy",
    "make_proxy", "needs_await", "proxy_class",
]

if TYPE_CHECKING:
    from .session import BaseSession


class ProxyState:
    __slots__ = ("info", "key", "session")

    def __init__(self, session: BaseSession, key: int, info: ClassInfo | None) -> None:
        self.session = session
        self.key = key
        self.info = info


def _invoke(proxy: Proxy, selector: str, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> Any:
    state = _state(proxy)
    try:
        return state.session.call(state.key, selector, args, kwargs)
    except BaseException as exc:
        remote = _remote_frames(exc)
        if remote is None:
            raise
        raise exc.with_traceback(remote)


def _invoke_value(proxy: Proxy, selector: str, args: tuple[Any, ...] = ()) -> Any:
    """For operations whose result Python checks (``len``, ``bool``...): must block."""
    state = _state(proxy)
    try:
        return state.session.call(state.key, selector, args, None, must_block=True)
    except BaseException as exc:
        remote = _remote_frames(exc)
        if remote is None:
            raise
        raise exc.with_traceback(remote)


def _remote_frames(exc: BaseException) -> types.TracebackType | None:
    """The remote frames of an error from a peer that debugging is on with (``tether.debug``):
    a proxy raises it again with them right below the caller's frames, without Tether's own."""
    return getattr(exc, "__tether_frames__", None)


class RemoteMethod:
    """A method of a remote object, bound to it. Calling it costs one round trip.

    To ``inspect`` and ``pydoc`` it looks like a builtin function (``help(root.add)`` shows the
    remote name, signature and docstring, fetched when asked for).
    """

    __slots__ = ("_name", "_proxy", "_remote")

    def __init__(self, proxy: Proxy, name: str) -> None:
        self._proxy = proxy
        self._name = name
        self._remote: Any = None

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return types.BuiltinFunctionType

    @property
    def __name__(self) -> str:
        return self._name

    @property
    def __signature__(self) -> inspect.Signature:
        return self._method().__signature__  # type: ignore[no-any-return]

    def _method(self) -> Any:
        """The remote bound method itself, by reference (fetched once, for its doc and signature)."""
        if self._remote is None:
            state = _state(self._proxy)
            self._remote = state.session.call(state.key, "__getattribute__", (self._name,), None, must_block=True)
        return self._remote

    @property
    def __wrapped__(self) -> _RemoteSource:
        """On a connection where debugging is on: what ``inspect.getsource`` reads (the remote
        method's source); elsewhere there is none (``AttributeError``)."""
        if not _debugging(_state(self._proxy)):
            raise AttributeError("__wrapped__")
        return _RemoteSource(self._proxy, self._name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        state = _state(self._proxy)
        try:
            return state.session.call(state.key, self._name, args, kwargs)
        except BaseException as exc:
            remote = _remote_frames(exc)
            if remote is None:
                raise
            raise exc.with_traceback(remote)

    def __repr__(self) -> str:
        state = _state(self._proxy)
        owner = state.info.name if state.info else "remote object"
        return f"<remote method {self._name!r} of {owner} #{state.key} on {state.session.describe()}>"


# Remote callables look like builtin functions to ``inspect`` and ``pydoc``: that is what lets
# help(p) show their name, signature and docstring (the signature comes from __signature__).
_CALLABLE_CLASSES = {
    "builtins.function": types.BuiltinFunctionType,
    "builtins.method": types.BuiltinFunctionType,
    "builtins.builtin_function_or_method": types.BuiltinFunctionType,
    "builtins.method_descriptor": types.BuiltinFunctionType,
    "builtins.wrapper_descriptor": types.BuiltinFunctionType,
    "builtins.method-wrapper": types.BuiltinFunctionType,
}


def _resolve_local_class(state: ProxyState) -> type | None:
    """The local class a proxy claims (``p.__class__``), where this side's policy believes the
    peer's class info: builtin classes from any peer, any class from a trusted one."""
    info = state.info
    if info is None:
        return None
    callable_class = _CALLABLE_CLASSES.get(info.name)
    if callable_class is not None:
        return callable_class
    return state.session.protocol.policy.local_class(info.module, info.qualname)


# The few messages a proxy understands itself (to take part in copying and serialization).
_LOCAL_NAMES = frozenset({"__copy__", "__deepcopy__", "__reduce_ex__", "__reduce__"})


class Proxy:
    """A reference to an object that lives on a peer. See the module docstring.

    Use :func:`tether.describe` to see which peer and key a proxy stands for.
    """

    __slots__ = ("__state", "__weakref__")
    __tether_proxy__ = True  # read on the type (by the codec and the access policy), never forwarded

    def __getattribute__(self, name: str) -> Any:
        state = _state(self)
        info = state.info
        if name == "__class__":
            return _resolve_local_class(state) or Proxy
        if info is None or info.methods is None or name in info.methods:
            return RemoteMethod(self, name)
        if name[:2] == "__" and name[-2:] == "__":
            if name == "__signature__":
                return _remote_signature(self, info)
            if name in _LOCAL_NAMES:
                return object.__getattribute__(self, name)
            if name == "__wrapped__" and _debugging(state):
                return _RemoteSource(self, None)
            if name in OPERATIONS and (name in info.specials or name in OBJECT_SPECIALS):
                return RemoteMethod(self, name)  # p.__len__() sends __len__, like len(p)
        try:
            return state.session.call(state.key, "__getattribute__", (name,), None)
        except BaseException as exc:
            remote = _remote_frames(exc)
            if remote is None:
                raise
            raise exc.with_traceback(remote)

    def __setattr__(self, name: str, value: Any) -> None:
        _invoke_value(self, "__setattr__", (name, value))

    def __delattr__(self, name: str) -> None:
        _invoke_value(self, "__delattr__", (name,))

    def __dir__(self) -> list[str]:
        return list(_invoke_value(self, "__dir__"))

    def __len__(self) -> int:
        return _invoke_value(self, "__len__")  # type: ignore[no-any-return]

    def __length_hint__(self) -> int:
        return _invoke_value(self, "__length_hint__")  # type: ignore[no-any-return]

    def __bool__(self) -> bool:
        return _invoke_value(self, "__bool__")  # type: ignore[no-any-return]

    def __hash__(self) -> int:
        return _invoke_value(self, "__hash__")  # type: ignore[no-any-return]

    def __str__(self) -> str:
        return _invoke_value(self, "__str__")  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        """The remote repr, and where the object lives (``str(p)`` is the remote str alone)."""
        state = _state(self)
        if state.session.closed:
            return f"<dead proxy #{state.key} of {state.info.name if state.info else 'an object'}>"
        return f"<remote {_invoke_value(self, '__repr__')} #{state.key} on {state.session.describe()}>"

    def __format__(self, spec: str) -> str:
        return _invoke_value(self, "__format__", (spec,))  # type: ignore[no-any-return]

    def __bytes__(self) -> bytes:
        return _invoke_value(self, "__bytes__")  # type: ignore[no-any-return]

    def __contains__(self, item: Any) -> bool:
        return bool(_invoke_value(self, "__contains__", (item,)))

    def __int__(self) -> int:
        return _invoke_value(self, "__int__")  # type: ignore[no-any-return]

    def __float__(self) -> float:
        return _invoke_value(self, "__float__")  # type: ignore[no-any-return]

    def __complex__(self) -> complex:
        return _invoke_value(self, "__complex__")  # type: ignore[no-any-return]

    def __index__(self) -> int:
        return _invoke_value(self, "__index__")  # type: ignore[no-any-return]

    def __fspath__(self) -> Any:
        return _invoke_value(self, "__fspath__")

    def __iter__(self) -> Iterator[Any]:
        state = _state(self)
        return RemoteIterator(state.session, self)

    def __aiter__(self) -> AsyncIterator[Any]:
        state = _state(self)
        if state.info is not None and "__aiter__" in state.info.specials:
            return AsyncStream(self)
        return AsyncRemoteIterator(state.session, self)

    def __copy__(self) -> Any:
        return _invoke_value(self, "__copy__")

    def __deepcopy__(self, memo: Any) -> Any:
        return _invoke_value(self, "__deepcopy__")

    def __instancecheck__(self, obj: Any) -> bool:
        return bool(_invoke_value(self, "__instancecheck__", (obj,)))

    def __subclasscheck__(self, cls: Any) -> bool:
        return bool(_invoke_value(self, "__subclasscheck__", (cls,)))

    def __reversed__(self) -> Any:
        return _invoke(self, "__reversed__", ())

    def __next__(self) -> Any:
        return _invoke(self, "__next__", ())

    def __getitem__(self, key: Any) -> Any:
        return _invoke(self, "__getitem__", (key,))

    def __setitem__(self, key: Any, value: Any) -> None:
        _invoke_value(self, "__setitem__", (key, value))

    def __delitem__(self, key: Any) -> None:
        _invoke_value(self, "__delitem__", (key,))

    def __enter__(self) -> Any:
        return _invoke_value(self, "__enter__")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        return _invoke_value(self, "__exit__", (exc_type, exc, None))

    def __aenter__(self) -> Any:
        return _invoke(self, "__aenter__", ())

    def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        return _invoke(self, "__aexit__", (exc_type, exc, None))

    def __round__(self, *ndigits: Any) -> Any:
        return _invoke_value(self, "__round__", ndigits)

    def __trunc__(self) -> Any:
        return _invoke_value(self, "__trunc__")

    def __floor__(self) -> Any:
        return _invoke_value(self, "__floor__")

    def __ceil__(self) -> Any:
        return _invoke_value(self, "__ceil__")

    def __pow__(self, other: Any, modulo: Any = None) -> Any:
        return _invoke(self, "__pow__", (other,) if modulo is None else (other, modulo))

    def __rpow__(self, other: Any, modulo: Any = None) -> Any:
        return _invoke(self, "__rpow__", (other,) if modulo is None else (other, modulo))

    def __reduce__(self) -> Any:
        return self.__reduce_ex__(2)

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(
            "a proxy is a live reference to a remote object and cannot be pickled; "
            "send it over Tether instead, or fetch a copy of its value first"
        )


class CallableProxy(Proxy):
    """A proxy to a callable object: ``callable(p)`` is true only for these."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _invoke(self, "__call__", args, kwargs)


class AwaitableProxy(Proxy):
    """A proxy to an awaitable object: ``await p`` awaits it where it lives."""

    __slots__ = ()

    def __await__(self) -> Any:
        return _invoke(self, "__await__", ()).__await__()


class CallableAwaitableProxy(CallableProxy, AwaitableProxy):
    __slots__ = ()


class _RemoteDoc:
    """``p.__doc__`` is the remote docstring (even for ``object.__getattribute__(p, ...)``, as
    pydoc reads it); ``Proxy.__doc__`` stays the class's own."""

    def __init__(self, own: str | None) -> None:
        self.own = own

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        if obj is None:
            return self.own
        state = _state(obj)
        return state.session.call(state.key, "__getattribute__", ("__doc__",), None, must_block=True)


class _RemoteMethodDoc:
    """``root.add.__doc__`` is the remote method's docstring."""

    def __init__(self, own: str | None) -> None:
        self.own = own

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        return self.own if obj is None else obj._method().__doc__


RemoteMethod.__doc__ = _RemoteMethodDoc(RemoteMethod.__doc__)  # type: ignore[assignment]

_state = Proxy.__dict__["_Proxy__state"].__get__
_set_state = Proxy.__dict__["_Proxy__state"].__set__


for _cls in (Proxy, CallableProxy, AwaitableProxy, CallableAwaitableProxy):
    _cls.__doc__ = _RemoteDoc(_cls.__doc__)  # type: ignore[assignment]


def _debugging(state: ProxyState) -> bool:
    """Whether debugging is on for the proxy's connection (``tether.debug``)."""
    tether = getattr(state.session.protocol, "tether", None)
    return tether is not None and tether.debugging()


class _RemoteSource:
    """What ``inspect.unwrap`` finds behind a proxy (or a remote method) on a connection where
    debugging is on: its own ``__wrapped__`` is a code object whose source, fetched from the
    peer when first asked for, is the remote object's. So ``inspect.getsource(proxy)`` and
    ``inspect.getsourcelines(proxy)`` work as for a local object (``signature`` stops before)."""

    __slots__ = ("_attribute", "_code", "_proxy")

    def __init__(self, proxy: Proxy, attribute: str | None) -> None:
        self._proxy = proxy
        self._attribute = attribute
        self._code: types.CodeType | None = None

    @property
    def __wrapped__(self) -> types.CodeType:
        if self._code is None:
            state = _state(self._proxy)
            session = state.session
            try:
                filename, first, lines, name, block = session.call_tether(
                    "debug_source", (self._proxy, self._attribute), must_block=True
                )
            except AttributeError as exc:  # not "no __wrapped__": there is no source to find
                raise OSError(f"could not get the remote source: {exc}") from None
            shown = mark(filename, session.describe())[:-1] + f" ({name})>"
            self._code = source_code(shown, first, lines, name, block)
        return self._code


def proxy_class(info: ClassInfo | None) -> type[Proxy]:
    """The proxy type for objects of a class: callable and awaitable only when they are."""
    if info is None or info.methods is None:
        return CallableProxy  # a peer that does not describe its objects: assume callable
    callable_ = "__call__" in info.specials
    awaitable = "__await__" in info.specials
    if callable_:
        return CallableAwaitableProxy if awaitable else CallableProxy
    return AwaitableProxy if awaitable else Proxy


def make_proxy(session: BaseSession, key: int, info: ClassInfo | None) -> Proxy:
    proxy = object.__new__(proxy_class(info))
    _set_state(proxy, ProxyState(session, key, info))
    return proxy


def needs_await(result: object) -> bool:
    """Whether a handler's result is a coroutine the runtime must await (an ``async def``
    method's). Other awaitables (tasks, futures) are answered by reference: the caller can
    await them where they live."""
    return isinstance(result, types.CoroutineType)  # (inspect.iscoroutine, without its call)


def _make_forwarder(selector: str) -> Any:
    def forward(self: Proxy, *args: Any) -> Any:
        return _invoke(self, selector, args)

    forward.__name__ = selector
    return forward


_FORWARDED = [
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
    "__divmod__", "__rdivmod__", "__neg__", "__pos__", "__abs__", "__invert__",
]  # fmt: skip
for _op in ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "lshift", "rshift",
            "and", "or", "xor"):  # fmt: skip
    _FORWARDED += [f"__{_op}__", f"__r{_op}__", f"__i{_op}__"]
_FORWARDED.append("__ipow__")
for _name in _FORWARDED:
    setattr(Proxy, _name, _make_forwarder(_name))


def describe(proxy: Any) -> str:
    """Where a proxy's object lives: ``"builtins.list #3 on ws://127.0.0.1:8765"``."""
    if not isinstance(proxy, Proxy):
        return f"local {type(proxy).__qualname__}"
    state = _state(proxy)
    name = state.info.name if state.info else "object"
    return f"{name} #{state.key} on {state.session.describe()}"


def fetch(proxy: Any) -> Any:
    """A local copy of a remote object's value (a proxy to a remote list gives a list).

    Only literals and containers of literals can be copied so far; other objects raise
    :class:`~tether.exceptions.EncodeError` on the owner's side, which is raised here.
    """
    if not isinstance(proxy, Proxy):
        return proxy
    return _state(proxy).session.call_tether("fetch", (proxy,), must_block=True)


def help(proxy: Any) -> None:
    """Print the pydoc page of a remote object, rendered where it lives."""
    if not isinstance(proxy, Proxy):
        import pydoc

        pydoc.help(proxy)
        return
    print(_state(proxy).session.call_tether("help", (proxy,), must_block=True))


def is_proxy(obj: object) -> bool:
    """True when ``obj`` is a proxy (``isinstance`` cannot tell, since proxies forward it)."""
    return isinstance(obj, Proxy)


# -- iteration in batches -------------------------------------------------------------------

_FIRST_BATCH = 16
_MAX_BATCH = 4096


class RemoteIterator:
    """Iterates a remote iterable, fetching items in growing batches (16, 64, ... 4096)."""

    __slots__ = ("_buffer", "_done", "_iterator", "_session", "_size", "_source")

    def __init__(self, session: BaseSession, source: Proxy) -> None:
        self._session = session
        self._source: Any = source
        self._iterator: Any = None
        self._buffer: deque[Any] = deque()
        self._done = False
        self._size = _FIRST_BATCH

    def __iter__(self) -> RemoteIterator:
        return self

    def __next__(self) -> Any:
        if self._buffer:
            return self._buffer.popleft()
        if self._done:
            raise StopIteration
        self._absorb(self._session.call_tether(*self._request(), must_block=True))
        if self._buffer:
            return self._buffer.popleft()
        raise StopIteration

    def _request(self) -> tuple[str, tuple[Any, ...]]:
        size = self._size
        self._size = min(size * 4, _MAX_BATCH)
        if self._iterator is None:
            return "iterate", (self._source, size)
        return "next_batch", (self._iterator, size)

    def _absorb(self, answer: Any) -> None:
        if self._iterator is None:
            self._iterator, items, self._done = answer
            self._source = None
        else:
            items, self._done = answer
        if self._done:
            self._iterator = None
        self._buffer.extend(items)


class _Shown:
    """Shows as the given text: stands for a remote default value in a rebuilt signature."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _remote_signature(proxy: Proxy, info: ClassInfo) -> inspect.Signature:
    if "__call__" not in info.specials:
        raise AttributeError(f"a remote {info.name} is not callable and has no signature")
    params, returns = _invoke_value(proxy, "__signature__")
    empty = inspect.Parameter.empty
    return inspect.Signature(
        [
            inspect.Parameter(
                name,
                inspect._ParameterKind(kind),
                default=empty if default is None else _Shown(default),
                annotation=empty if annotation is None else _Shown(annotation),
            )
            for name, kind, default, annotation in params
        ],
        return_annotation=empty if returns is None else _Shown(returns),
    )


class AsyncStream:
    """``async for`` over a remote *async* iterable: one round trip per item, since an
    asynchronous source may take its time to produce each one."""

    __slots__ = ("_iterator", "_source")

    def __init__(self, source: Proxy) -> None:
        self._source = source
        self._iterator: Any = None

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        if self._iterator is None:
            self._iterator = await _invoke(self._source, "__aiter__", ())
        return await _invoke(self._iterator, "__anext__", ())


class AsyncRemoteIterator(RemoteIterator):
    """``async for`` over a remote iterable, in batches like :class:`RemoteIterator`."""

    __slots__ = ()

    def __aiter__(self) -> AsyncRemoteIterator:
        return self

    async def __anext__(self) -> Any:
        if self._buffer:
            return self._buffer.popleft()
        if self._done:
            raise StopAsyncIteration
        self._absorb(await self._session.call_tether(*self._request()))
        if self._buffer:
            return self._buffer.popleft()
        raise StopAsyncIteration
