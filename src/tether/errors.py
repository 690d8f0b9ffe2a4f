"""Errors that cross the wire: what an error answer carries for an exception raised here, and
the local exception made from one received (the same type where that is safe, else
:class:`~tether.exceptions.RemoteError`).

A peer's error type is rebuilt only for built-in exceptions, Tether's own and the classes
registered with :func:`register_exception`; nothing is imported by name. Runtime modules call
:func:`register_runtime_file` so their frames stay out of the tracebacks sent to peers.
"""

from __future__ import annotations

import builtins
import os
import threading
import traceback
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from . import debug, dispatch, proxy, remote_frames
from . import exceptions as _exceptions
from .access import register
from .codec import Encoder
from .debug import FailurePart, attach_failure, failure_part
from .exceptions import EncodeError, RemoteError
from .frames import ErrorAnswer

__all__ = ["ERRORS_KEPT", "ErrorsSent", "error_parts", "make_exception", "register_exception", "register_runtime_file"]


_REGISTERED_EXCEPTIONS: dict[str, type[BaseException]] = {}


def register_exception(cls: type[BaseException]) -> type[BaseException]:
    """Let errors of type ``cls`` from a peer be raised here as ``cls`` (not ``RemoteError``).

    Use it as a class decorator on both sides. ``cls(*args)`` must rebuild the exception from
    its by-value arguments. It also registers the class (:func:`tether.register`), so that its
    instances may arrive by value inside other values.
    """
    _REGISTERED_EXCEPTIONS[f"{cls.__module__}.{cls.__qualname__}"] = cls
    register(cls)
    return cls


def error_parts(
    exc: BaseException, with_traceback: bool
) -> tuple[str, str, list[Any], str | None, FailurePart | None]:
    """Split an exception into what an error answer carries: type, message, arguments, the
    traceback text (when ``with_traceback``, or debugging is on) and the debugging part (when
    ``exc`` answers the call of a peer that debugging is on with; ``tether.debug``)."""
    cls = type(exc)
    type_name = f"{cls.__module__}.{cls.__qualname__}"
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not stop the error from travelling
        message = f"<{cls.__qualname__} whose str() failed>"
    plain = Encoder()
    args: list[Any] = []
    for arg in exc.args:
        try:
            plain.encode(arg)
            args.append(arg)
        except (EncodeError, RecursionError):
            args.append(_safe_repr(arg))
    part = failure_part(exc, _RUNTIME_FILES)
    tb = _format_remote_traceback(exc) if with_traceback or part is not None else None
    return type_name, message, args, tb, part


# Tether's own modules whose frames say nothing about an error (proxies re-raise remote errors).
_RUNTIME_FILES: set[str] = {__file__, dispatch.__file__, proxy.__file__, debug.__file__, remote_frames.__file__}


def register_runtime_file(path: str) -> None:
    """Leave the frames of the module at ``path`` out of tracebacks sent to peers: a runtime
    module calls this with its ``__file__`` (its frames say nothing about the error). A module
    that mypyc compiled (``setup.py``) names its frames after the source it was built from,
    ``src/tether/<name>.py``, not after its ``__file__``: that name is left out too."""
    _RUNTIME_FILES.add(path)
    if not path.endswith(".py"):
        _RUNTIME_FILES.add(f"src/tether/{os.path.basename(path).partition('.')[0]}.py")


def _format_remote_traceback(exc: BaseException) -> str:
    """The traceback text, without the frames of Tether's runtime (they say nothing about the
    error); frames of any other code, Tether's demos included, stay."""
    te = traceback.TracebackException.from_exception(exc)
    frames = [f for f in te.stack if (f.filename or "") not in _RUNTIME_FILES]
    if frames and len(frames) < len(te.stack):
        te.stack = traceback.StackSummary.from_list(frames)
    return "".join(te.format())


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__qualname__}>"


def make_exception(frame: ErrorAnswer) -> BaseException:
    """The local exception for an error answer: the same type where that is safe."""
    type_name = frame.type_name
    cls: Any = None
    module, _, name = type_name.rpartition(".")
    if module == "builtins":
        cls = getattr(builtins, name, None)
    elif module == "tether.exceptions":
        cls = getattr(_exceptions, name, None)
    else:
        cls = _REGISTERED_EXCEPTIONS.get(type_name)
    exc: BaseException | None = None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            exc = cls(*frame.args)
        except Exception:
            exc = None
    if exc is None:
        exc = RemoteError(type_name, frame.message, tuple(frame.args), frame.traceback)
    exc.remote_traceback = frame.traceback  # type: ignore[attr-defined]
    if frame.debug is not None and attach_failure(exc, *frame.debug):
        return exc  # its traceback is the remote frames, shown as frames
    if frame.traceback:
        exc.add_note("Remote traceback (most recent call last is the remote one):\n" + frame.traceback.rstrip())
    return exc


ERRORS_KEPT = 64  # exceptions sent to one peer that it may raise back to us (per connection)


class ErrorsSent:
    """The identity of exceptions across one connection (``docs/protocol.md`` 4.3): the latest
    :data:`ERRORS_KEPT` exceptions of ours sent to the peer, by the id sent with them, so that
    one the peer raises back to us (its handler let our callback's error through) is ours again;
    and, on an exception made from the peer's error answer, the peer's id for it, so that it
    goes home as the peer's own if this side raises it back. ``next_id`` makes the ids.

    An exception made here is marked with this connection's ``_home``, a token of its own (not
    the connection: an exception kept by user code keeps nothing of the connection alive, and a
    compiled :class:`~tether.protocol.Protocol` takes no weak references)."""

    def __init__(self, next_id: Callable[[], bytes]) -> None:
        self._home = object()
        self._next_id = next_id
        self._lock = threading.Lock()
        self._sent: OrderedDict[bytes, BaseException] = OrderedDict()

    def identity(self, exc: BaseException) -> tuple[str, bytes]:
        """What an error answer carrying ``exc`` says of it: ("yours", id) for the peer's own
        exception going home, else ("mine", a new id) (and ``exc`` is kept under it)."""
        home = getattr(exc, "__tether_home__", None)
        if type(home) is tuple and home[0] is self._home:
            return ("yours", home[1])
        error_id = self._next_id()
        with self._lock:
            self._sent[error_id] = exc
            while len(self._sent) > ERRORS_KEPT:
                self._sent.popitem(last=False)
        return ("mine", error_id)

    def exception_of(self, frame: ErrorAnswer) -> BaseException:
        """The exception an error answer raises here: our own exception if it names one that
        is coming home, else a new one that remembers the peer's id for it."""
        identity = frame.identity
        if identity is not None and identity[0] == "yours":
            with self._lock:
                own = self._sent.get(identity[1])
            if own is not None:
                return own
        exc = make_exception(frame)
        if identity is not None and identity[0] == "mine":
            try:
                exc.__tether_home__ = (self._home, identity[1])  # type: ignore[attr-defined]
            except AttributeError:  # an exception class with __slots__: it just will not go home
                pass
        return exc

    def clear(self) -> None:
        with self._lock:
            self._sent.clear()
