"""The sans-I/O state machine of one Tether connection: bytes in, events and bytes out.

A :class:`Protocol` knows frames, the codec and the two reference tables, and nothing about
sockets, threads or event loops. A runtime (``tether.sync.session`` for threads,
``tether.aio.session`` for asyncio, ``tether.browser.session`` in a page) feeds it every received frame with :meth:`receive`, acts on
the events it returns, sends what :meth:`data_to_send` hands back, and encodes its own calls
with :meth:`encode_call`.

Thread safety: :meth:`receive` must be called from one reader at a time, in frame order.
Encoding (calls, answers) may happen on any thread, but the runtime must hold its send lock
from encoding a frame until it is handed to the transport, so that class info is defined on
the wire before it is referred to.
"""

from __future__ import annotations

import builtins
import inspect
import logging
import sys
import threading
import traceback
import types
import typing
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import dispatch
from . import exceptions as _exceptions
from .access import is_application_class, register
from .codec import Decoder, Encoder
from .dispatch import AccessPolicy, class_specials, perform
from .exceptions import AccessDenied, DecodeError, EncodeError, FrameTooLarge, ProtocolError, RemoteError
from .exposure import TETHER_KEY, ExportTable, ImportTable
from .frames import (
    Answer,
    ErrorAnswer,
    Exposure,
    FrameBodyError,
    MessageSend,
    answer_bytes,
    error_answer_bytes,
    exposure_bytes,
    message_send_bytes,
    new_id_source,
    parse_frame,
)
from .hooks import NeedClasses
from .limits import Limits
from .proxy import Proxy, _state
from .tether_object import TetherObject
from .transfer import ClassTransfer
from .values import write_class_info
from .words import (
    DEFAULT_MAX_DEPTH,
    MY_OBJECT_BASE,
    TAG_ANSWER,
    TAG_DESCRIBED_REF,
    TAG_ERROR_ANSWER,
    TAG_MESSAGE,
    TAG_SYMBOL,
    TAG_TETHER,
    ClassInfo,
    pack_word,
)

__all__ = [
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_TOO_BIG",
    "DEFAULT_MAX_FRAME_SIZE",
    "VERSION",
    "AnswerReceived",
    "ErrorReceived",
    "Event",
    "Incoming",
    "Observer",
    "Opened",
    "Protocol",
    "Violation",
    "class_info_for",
    "error_parts",
    "make_exception",
    "register_exception",
    "register_runtime_file",
]

VERSION = "0.1.0"
_reading = threading.local()  # .active: this thread is decoding a frame
_PROXY_COST = 768  # a proxy, its state, its weak reference and callback, its import-table entry
log = logging.getLogger("tether")
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024

# ---------------------------------------------------------------------------------------------
# Events returned by Protocol.receive


@dataclass(slots=True)
class Opened:
    """The peer exposed its Tether: the conversation has started."""

    peer_tether_key: int


@dataclass(slots=True)
class Incoming:
    """A message-send to perform; run it in its own task or worker with :meth:`Protocol.perform`."""

    message: MessageSend


@dataclass(slots=True)
class AnswerReceived:
    exchange_id: bytes
    value: object


@dataclass(slots=True)
class ErrorReceived:
    exchange_id: bytes
    error: BaseException


@dataclass(slots=True)
class Violation:
    """The peer broke the protocol beyond repair: close the connection with ``code``."""

    code: int
    reason: str


Event = Opened | Incoming | AnswerReceived | ErrorReceived | Violation

CLOSE_PROTOCOL_ERROR = 1002
CLOSE_TOO_BIG = 1009

# ---------------------------------------------------------------------------------------------
# Class info and errors


_CLASS_INFO: weakref.WeakKeyDictionary[type, ClassInfo] = weakref.WeakKeyDictionary()
_METHOD_TYPES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.ClassMethodDescriptorType,
    staticmethod,
    classmethod,
)


def class_info_for(cls: type) -> ClassInfo:
    """The class info sent with references to instances of ``cls`` (cached per class)."""
    info = _CLASS_INFO.get(cls)
    if info is None:
        methods = set()
        for name in dir(cls):
            if name.startswith("_"):
                continue
            try:
                attr = inspect.getattr_static(cls, name)
            except AttributeError:
                continue
            if isinstance(attr, _METHOD_TYPES):
                methods.add(name)
        info = ClassInfo(
            getattr(cls, "__module__", "") or "", cls.__qualname__, frozenset(methods), class_specials(cls)
        )
        try:
            _CLASS_INFO[cls] = info
        except TypeError:  # a type that refuses weak references: just don't cache
            pass
    return info


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


def error_parts(exc: BaseException, with_traceback: bool) -> tuple[str, str, list[Any], str | None]:
    """Split an exception into what an error answer carries."""
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
    tb = _format_remote_traceback(exc) if with_traceback else None
    return type_name, message, args, tb


_RUNTIME_FILES: set[str] = {__file__, dispatch.__file__}


def register_runtime_file(path: str) -> None:
    """Leave the frames of the module at ``path`` out of tracebacks sent to peers: a runtime
    module calls this with its ``__file__`` (its frames say nothing about the error)."""
    _RUNTIME_FILES.add(path)


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
    if frame.traceback:
        exc.add_note("Remote traceback (most recent call last is the remote one):\n" + frame.traceback.rstrip())
    return exc


class Observer(typing.Protocol):
    """Watches one connection's traffic (``Protocol.observer``): told of every call, answer and
    error this side encodes and of the events every received frame causes. For tracing and
    debugging tools; it must not send anything itself, and it runs on the thread that encodes
    or receives, so keep it quick."""

    def call_sent(
        self, exchange_id: bytes | None, receiver: int, selector: str, args: Any, kwargs: dict[str, Any]
    ) -> None: ...

    def answer_sent(self, exchange_id: bytes, value: object) -> None: ...

    def error_sent(self, exchange_id: bytes, exc: BaseException) -> None: ...

    def events_received(self, events: list[Event]) -> None: ...


class Protocol(ClassTransfer):
    """One connection's protocol state. See the module docstring for how a runtime drives it.

    ``root`` is the object answered to the peer's ``root`` message. ``proxy_factory(key, info)``
    makes a proxy for the peer's object ``key``. ``policy`` decides what the peer may reach.
    """

    def __init__(
        self,
        *,
        root: object = None,
        client: bool,
        proxy_factory: Callable[[int, ClassInfo | None], Any],
        policy: AccessPolicy | None = None,
        send_tracebacks: bool = True,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        marker_base: int = MY_OBJECT_BASE,
        max_depth: int = DEFAULT_MAX_DEPTH,
        accept_code: bool = False,
        passing: dict[type, str] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.root = root
        self.limits = limits or Limits()
        self.accept_code = accept_code
        self.client = client
        self.policy = policy or AccessPolicy()
        self.send_tracebacks = send_tracebacks
        self.max_frame_size = max_frame_size
        self.marker_base = marker_base
        self.max_depth = max_depth
        self.proxy_factory = proxy_factory
        self.tether = TetherObject(self)
        self.exports = ExportTable(self.tether, self.limits.max_exports)
        self.releases: deque[tuple[int, int]] = deque()
        self.imports = ImportTable(self._queue_release)
        self.encoder = Encoder(self, max_depth, passing)
        self.plain_references = False
        self._init_classes()
        self._class_requests: dict[bytes, list[int]] = {}
        self._held: deque[bytes] | None = None
        self._decoding_imports: list[int] | None = None
        self._decoder: Decoder | None = None
        self.next_id = new_id_source()
        self._id_prefix = self.next_id()[:8]  # every id this side makes starts so
        self.peer_tether_key: int | None = None
        self._peer_is_python = False
        self._hello_id: bytes | None = None
        self.peer_info: dict[str, Any] = {}
        # The largest frame the peer accepts, as its hello announced (None: not announced);
        # read once from the hello, checked against every frame sent.
        self.peer_max_frame_size: int | None = None
        # Whether the peer reads a message's "on behalf of" word (its hello says nesting: true).
        self.peer_reads_nesting = False
        self._class_ids: dict[object, int] = {}  # a class, or the ClassInfo of a forwarded proxy
        self.described: dict[tuple[str, str], object] = {}  # classes this side named to the peer
        self._peer_classes: dict[int, ClassInfo] = {}
        self._class_bytes = 0  # bytes of the peer's class names and infos kept
        self._outbox: list[bytes] = []
        self.on_release_queued: Callable[[], None] | None = None
        self.on_cancel: Callable[[list[bytes]], None] | None = None  # the runtime cancels handlers
        self.observer: Observer | None = None  # a tracer, told of what is sent and received
        self.frames_sent = 0
        self.frames_received = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    @property
    def peer_is_python(self) -> bool:
        """Whether the peer said (in hello) that it is a Python Tether: then references carry
        class info and the encoder uses the compact forms."""
        return self._peer_is_python

    @peer_is_python.setter
    def peer_is_python(self, value: bool) -> None:
        self._peer_is_python = value
        self.encoder.compact = value

    # -- outgoing --------------------------------------------------------------------------

    def opening(self) -> bytes:
        """The conversation-start frame (the connecting side sends it first)."""
        return exposure_bytes(TETHER_KEY)

    def hello_info(self) -> dict[str, Any]:
        return {
            "language": "python",
            "tether": VERSION,
            "python": ".".join(map(str, sys.version_info[:3])),
            "platform": sys.platform,
            "max_frame_size": self.max_frame_size,
            "nesting": True,
        }

    def encode_call(
        self,
        receiver: int,
        selector: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any] | None = None,
        one_way: bool = False,
        on_behalf: bytes | None = None,
    ) -> tuple[bytes | None, bytes]:
        """Encode a message-send to the peer's object ``receiver`` (a key); return (id, frame).

        ``on_behalf`` is the exchange id of the peer's call that the current handler runs, when
        this message is sent from that handler: a peer whose hello says it reads it runs this
        message on the thread that waits for that call's answer (no new thread per nested hop).

        Raises :class:`DecodeError` on a thread that is reading a frame: nothing may ask a
        peer anything while a frame is decoded (hashing a key, rebuilding a value), since the
        answer could only be read by that very thread."""
        if getattr(_reading, "active", False):
            raise DecodeError(
                f"reading a frame would send {selector!r} to a remote object (a proxy used as a "
                "key, or in the state of a value rebuilt here); remote objects cannot take part "
                "in decoding"
            )
        if not self.peer_reads_nesting:
            on_behalf = None
        exchange_id, frame = self._encode_call(receiver, selector, args, kwargs, one_way, on_behalf)
        if self.observer is not None:
            self.observer.call_sent(exchange_id, receiver, selector, args, kwargs or {})
        return exchange_id, frame

    def _encode_call(
        self,
        receiver: int,
        selector: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any] | None = None,
        one_way: bool = False,
        on_behalf: bytes | None = None,
    ) -> tuple[bytes | None, bytes]:
        exchange_id = None if one_way else self.next_id()
        undo = self._begin_frame()
        try:
            frame = message_send_bytes(self.encoder, exchange_id, receiver, selector, args, kwargs, on_behalf)
            self._check_size(frame, f"the call {selector}(...)")
        except BaseException:
            self._undo_frame(undo)
            raise
        finally:
            self.exports.journal = undo[0]
        if selector == "hello" and receiver == self.peer_tether_key:
            self._hello_id = exchange_id  # its answer is applied as soon as it is read
        return exchange_id, frame

    def apply_hello(self, info: object) -> None:
        """Take what the peer says about itself (its hello, or its answer to ours)."""
        if isinstance(info, dict):
            self.peer_info = info
            language = info.get("language")
            self.peer_is_python = type(language) is str and language == "python"  # no proxy's __eq__
            size = info.get("max_frame_size")
            self.peer_max_frame_size = size if type(size) is int and size > 0 else None
            self.peer_reads_nesting = self.peer_is_python and info.get("nesting") is True

    def encode_answer(self, exchange_id: bytes, value: object) -> bytes:
        """The answer frame; if ``value`` cannot be encoded, the error answer saying why."""
        undo = self._begin_frame()
        try:
            frame = answer_bytes(self.encoder, exchange_id, value)
            self._check_size(frame, "the answer")
            if self.observer is not None:
                self.observer.answer_sent(exchange_id, value)
            return frame
        except Exception as exc:  # whatever went wrong, the caller must hear of it
            self._undo_frame(undo)
            if not isinstance(exc, (EncodeError, RecursionError)):
                log.warning("cannot encode the answer to %s: %r", self.describe_peer(), exc)
            return self.encode_error(exchange_id, exc)
        finally:
            self.exports.journal = undo[0]

    def _check_size(self, frame: bytes, what: str) -> None:
        limit = self.peer_max_frame_size
        if limit is not None and len(frame) > limit:
            raise FrameTooLarge(
                f"{what} would be a frame of {len(frame)} bytes, over the {limit} bytes "
                f"{self.describe_peer()} accepts (its max_frame_size): nothing was sent; send "
                "less at once, by reference, or in parts",
                len(frame),
                limit,
            )

    def _begin_frame(self) -> tuple[list[int] | None, int]:
        """Start encoding one frame; if it fails, :meth:`_undo_frame` takes back what writing
        it counted (references exported, class infos and names marked as sent), since the
        frame never leaves. Returns what the undo needs (the enclosing frame's journal first)."""
        exports = self.exports
        outer = exports.journal
        exports.journal = []
        self._named_now = []
        return outer, len(self._class_ids)

    def _undo_frame(self, undo: tuple[list[int] | None, int]) -> None:
        self.exports.rollback()
        for key in list(self._class_ids)[undo[1] :]:
            del self._class_ids[key]
        self._named_on_wire.difference_update(self._named_now)

    def describe_peer(self) -> str:
        return "the client" if not self.client else "the server"

    def encode_error(self, exchange_id: bytes, exc: BaseException) -> bytes:
        if self.observer is not None:
            self.observer.error_sent(exchange_id, exc)
        return error_answer_bytes(exchange_id, *error_parts(exc, self.send_tracebacks))

    def take_releases(self) -> bytes | None:
        """One one-way ``release`` message for every release queued so far, or ``None``."""
        if self.peer_tether_key is None:
            return None
        pairs: list[int] = []
        pop = self.releases.popleft
        while True:
            try:
                key, count = pop()
            except IndexError:
                break
            pairs += (key, count)
        if not pairs:
            return None
        return self.encode_call(self.peer_tether_key, "release", (pairs,), one_way=True)[1]

    def _queue_release(self, key: int, count: int) -> None:
        self.releases.append((key, count))
        callback = self.on_release_queued
        if callback is not None:
            callback()

    def data_to_send(self) -> list[bytes]:
        """Frames produced while receiving (answers to inline Tether messages, our exposure)."""
        out, self._outbox = self._outbox, []
        return out

    def count_sent(self, frame: bytes) -> None:
        self.frames_sent += 1
        self.bytes_sent += len(frame)

    # -- reference hooks for the codec ------------------------------------------------------

    def write_reference(self, obj: object, out: bytearray) -> None:
        state = _state(obj) if issubclass(type(obj), Proxy) else None
        if state is not None and state.session.protocol is self:
            out += pack_word(state.key)  # one of the peer's own objects going home: "your object"
            return
        if state is None:
            self.policy.check_send(obj)
            if isinstance(obj, type) and is_application_class(obj):
                self.described[(obj.__module__, obj.__qualname__)] = obj
        key, _ = self.exports.export(obj)
        marker = MY_OBJECT_BASE + key
        if not self.peer_is_python or self.plain_references:
            out += pack_word(marker)
            return
        out += pack_word(TAG_DESCRIBED_REF)
        out += pack_word(marker)
        # A proxy of another connection passed along stands for its remote object: describe
        # that object's class (as its own peer described it), not tether.proxy.Proxy.
        forwarded = state.info if state is not None else None
        cache_key: object = forwarded if forwarded is not None else type(obj)
        class_id = self._class_ids.get(cache_key)
        if class_id is None:
            class_id = len(self._class_ids) + 1
            self._class_ids[cache_key] = class_id
            if forwarded is None:
                cls = type(obj)
                info = class_info_for(cls)
                methods = self.policy.describe_methods(cls, info.methods or frozenset())
                if methods != info.methods:
                    info = ClassInfo(info.module, info.qualname, methods, info.specials)
                if is_application_class(cls):
                    self.described[(cls.__module__, cls.__qualname__)] = cls
            write_class_info(out, class_id, forwarded or info)
        else:
            write_class_info(out, class_id, None)

    def may_send(self, obj: object) -> bool:
        return self.policy.may_send(obj)

    def is_exported(self, obj: object) -> bool:
        return self.exports.key_of(obj) is not None

    def my_object(self, key: int, info: ClassInfo | None) -> object:
        if self._decoding_imports is not None:
            self._decoding_imports.append(key)
        imports = self.imports
        created = imports.created
        proxy = imports.get(key, info, self.proxy_factory)
        if imports.created != created and self._decoder is not None:
            self._decoder.charge(_PROXY_COST, "a new proxy")
        return proxy

    def your_object(self, key: int) -> object:
        try:
            return self.exports.get(key)
        except ProtocolError as exc:
            raise DecodeError(str(exc)) from None

    def class_info(self, class_id: int) -> ClassInfo:
        try:
            return self._peer_classes[class_id]
        except KeyError:
            raise DecodeError(f"class id {class_id} was never defined by the peer") from None

    def define_class_info(self, class_id: int, info: ClassInfo) -> None:
        classes = self._peer_classes
        if class_id not in classes and len(classes) >= self.limits.max_class_infos:
            raise DecodeError(
                f"the peer defined {len(classes)} class infos on this connection, the limit "
                "(Limits.max_class_infos); a peer describes each of its classes once"
            )
        self.count_class_bytes(
            len(info.module) + len(info.qualname) + sum(map(len, info.methods or ())) + sum(map(len, info.specials))
        )
        classes[class_id] = info

    def count_class_bytes(self, n: int) -> None:
        """Count ``n`` bytes of class names kept for the peer; refuse past the limit."""
        self._class_bytes += n
        if self._class_bytes > self.limits.max_class_bytes:
            self._class_bytes -= n
            raise DecodeError(
                f"the peer's class names and infos on this connection would hold more than "
                f"{self.limits.max_class_bytes} bytes (Limits.max_class_bytes)"
            )

    # -- incoming ---------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        """Take one received frame; return the events it causes (never raises on bad input).

        A frame that holds an object of a class this side must first get from the peer is
        held, with every frame after it, until the peer's ``get_classes`` answer arrives; then
        they are read in order.
        """
        self.frames_received += 1
        self.bytes_received += len(data)
        if self._held is not None and not self._passes_hold(data):
            self._held.append(data)
            return []
        events = self._receive(data)
        if self.observer is not None and events:
            self.observer.events_received(events)
        return events

    def _passes_hold(self, data: bytes) -> bool:
        """While frames are held: answers to our class requests and the peer's own class
        requests go through (each side may be waiting for the other's classes)."""
        head = data[:4]
        if head in (_ANSWER_TAG_BYTES, _ERROR_TAG_BYTES):
            return data[12:28] in self._class_requests
        return head == _TETHER_TAG_BYTES and data[28:55] == _GET_CLASSES_SELECTOR

    def _receive(self, data: bytes) -> list[Event]:
        if len(data) > self.max_frame_size:
            return [
                Violation(
                    CLOSE_TOO_BIG,
                    f"frame of {len(data)} bytes is over this peer's limit of "
                    f"{self.max_frame_size} bytes",
                )
            ]
        decoder = Decoder(data, 0, self, self.max_depth, self.marker_base, self.limits)
        self._decoding_imports = []
        self._decoder = decoder
        reading = getattr(_reading, "active", False)
        _reading.active = True
        try:
            frame = parse_frame(decoder)
        except NeedClasses as need:
            self.imports.rollback(self._decoding_imports)
            self._decoding_imports = None
            self._held = deque([data])
            self._request_classes(need.class_ids)
            return []
        except FrameBodyError as exc:
            self._decoding_imports = None
            if data[:4] == _TETHER_TAG_BYTES:
                error = ProtocolError(f"cannot read the message-send: {exc.error}")
                self._outbox.append(self.encode_error(exc.exchange_id, error))
                return []
            return [ErrorReceived(exc.exchange_id, ProtocolError(f"cannot read the answer: {exc.error}"))]
        except ProtocolError as exc:
            self._decoding_imports = None
            return [Violation(CLOSE_PROTOCOL_ERROR, str(exc))]
        except RecursionError:
            return [Violation(CLOSE_PROTOCOL_ERROR, "frame nests too deeply to decode")]
        except Exception as exc:  # a frame kind's own code failed: the frame cannot be read
            return [Violation(CLOSE_PROTOCOL_ERROR, f"cannot read the frame: {type(exc).__name__}: {exc}")]
        finally:
            _reading.active = reading
            self._decoding_imports = None
            self._decoder = None
        kind = type(frame)
        if kind is Answer:
            if frame.exchange_id in self._class_requests:
                return self._classes_arrived(frame.exchange_id, frame.value, None)
            if frame.exchange_id == self._hello_id:  # before any later frame is read
                self.apply_hello(frame.value)
            return [AnswerReceived(frame.exchange_id, frame.value)]
        if kind is MessageSend:
            if self.peer_tether_key is None:
                return [Violation(CLOSE_PROTOCOL_ERROR, "message-send before the conversation start frame")]
            if frame.exchange_id is not None and frame.exchange_id[:8] == self._id_prefix:
                return [Violation(CLOSE_PROTOCOL_ERROR, "the peer sent our own message back: not a Tether peer (an echo server?)")]
            receiver = frame.receiver
            if receiver is not self.tether and self.exports.key_of(receiver) is None:
                if frame.exchange_id is not None:
                    error = ProtocolError(
                        f"the receiver of a message-send must be an object exposed to the peer "
                        f"(a 'your object' word), not a {type(receiver).__qualname__} it wrote"
                    )
                    self._outbox.append(self.encode_error(frame.exchange_id, error))
                return []
            return [Incoming(frame)]
        if kind is ErrorAnswer:
            if frame.exchange_id in self._class_requests:
                return self._classes_arrived(frame.exchange_id, None, make_exception(frame))
            return [ErrorReceived(frame.exchange_id, make_exception(frame))]
        if kind is Exposure:
            if self.peer_tether_key is not None:
                return [Violation(CLOSE_PROTOCOL_ERROR, "the peer exposed its Tether twice")]
            self.peer_tether_key = frame.key
            if not self.client:
                self._outbox.append(exposure_bytes(TETHER_KEY))
            return [Opened(frame.key)]
        handle = getattr(frame, "handle", None)  # a user-registered frame kind
        if handle is None:
            return [Violation(CLOSE_PROTOCOL_ERROR, f"no handler for frame {kind.__name__}")]
        return list(handle(self) or ())

    # -- classes on demand -----------------------------------------------------------------

    def _request_classes(self, class_ids: list[int]) -> None:
        assert self.peer_tether_key is not None
        exchange_id, frame = self._encode_call(self.peer_tether_key, "get_classes", (class_ids,))
        assert exchange_id is not None
        self._class_requests[exchange_id] = class_ids
        self._outbox.append(frame)

    def _classes_arrived(self, exchange_id: bytes, records: Any, error: BaseException | None) -> list[Event]:
        """Define the classes the peer sent, then read the held frames in order."""
        requested = self._class_requests.pop(exchange_id)
        if error is None and not isinstance(records, list):
            error = ProtocolError("get_classes must answer a list of class records")
        if error is None:
            if not self.accept_code:
                error = ProtocolError("this side does not accept code (accept_code=False)")
            else:
                self.define_classes(records)
        for class_id in requested:
            if class_id not in self._peer_class_objects:
                name = ".".join(self._peer_class_names.get(class_id, ("?", "?", None))[:2])
                self._class_failures.setdefault(class_id, f"the peer could not send class {name}: {error}")
        held, self._held = self._held, None
        events: list[Event] = []
        while held:
            events += self._receive(held.popleft())
            if self._held is not None:  # blocked again, on other classes
                self._held.extend(held)
                break
        return events

    def perform(self, message: MessageSend) -> bytes | None:
        """Run ``message`` to completion here and return its answer frame (``None`` if one-way).

        The result must not be a coroutine; runtimes that support ``async def`` handlers call
        :meth:`start` and :meth:`finish` instead.
        """
        try:
            result = self.start(message)
        except BaseException as exc:  # the error travels; KeyboardInterrupt is re-raised below
            return self.fail(message, exc)
        return self.finish(message, result)

    def start(self, message: MessageSend) -> Any:
        """Begin performing ``message``; return its result (perhaps an awaitable)."""
        receiver = message.receiver
        if receiver is self.tether:
            if message.selector not in TetherObject.SELECTORS:
                raise AccessDenied(
                    "the Tether object understands "
                    + ", ".join(sorted(TetherObject.SELECTORS))
                    + f", not {message.selector!r}",
                    name=message.selector,
                )
            return getattr(self.tether, message.selector)(*message.args, **message.kwargs)
        return perform(receiver, message.selector, message.args, message.kwargs, self.policy)

    def finish(self, message: MessageSend, result: Any) -> bytes | None:
        if message.exchange_id is None:
            return None
        return self.encode_answer(message.exchange_id, result)

    def fail(self, message: MessageSend, exc: BaseException) -> bytes | None:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise exc
        if message.exchange_id is None:
            return None
        return self.encode_error(message.exchange_id, exc)

    def close(self) -> None:
        """Forget both tables (the connection is gone)."""
        self.imports.close()
        self.exports.clear()
        self.releases.clear()


_TETHER_TAG_BYTES = pack_word(TAG_TETHER)
_ANSWER_TAG_BYTES = pack_word(TAG_ANSWER)
_ERROR_TAG_BYTES = pack_word(TAG_ERROR_ANSWER)
_GET_CLASSES_SELECTOR = (
    pack_word(TETHER_KEY) + pack_word(TAG_MESSAGE) + pack_word(TAG_SYMBOL) + pack_word(11) + b"get_classes"
)

