"""A readable transcript of one connection's messages, as this side sends and receives them.

::

    from tether.trace import Trace

    trace = Trace(peer.session, "native", "page", print)   # before the session's first frame
    trace.name(peer.root, "library")                          # show that proxy as "library"

:class:`Trace` is the connection's :class:`~tether.protocol.Observer`
(``session.protocol.observer``): the protocol tells it of every call, answer and error this
side encodes and of the events every received frame causes, and it hands ``emit`` one
:class:`Entry` per message. Calls are labelled so that both sides of a connection label them
alike (``N7``: the side called "native" made its 7th call; its answer repeats the label).
Values are shown without sending a single message.

The demo (``tether_demo``) traces both sides: the native side prints its transcript, the page
lists its own. This module runs in a page too, so it imports no I/O framework (no
``asyncio``, ``websockets`` or ``js``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from .exceptions import RemoteError
from .protocol import AnswerReceived, ErrorReceived, Event, Incoming
from .proxy import _state, is_proxy

__all__ = ["UNTRACED", "Entry", "Trace", "exception_text", "without_tether_frames"]

# The garbage collector's batched releases: bookkeeping, not part of the conversation.
UNTRACED = frozenset({"release"})


class Entry(NamedTuple):
    """One traced message: ``sent`` or ``received`` by this side."""

    direction: str  # "sent" | "received"
    exchange: str  # "N7": the native side's 7th call (its answer has the same label); "" one-way
    kind: str  # "call" | "answer" | "error"
    text: str
    depth: int  # how many calls were waiting for answers: nesting
    traceback: str | None = None


class Trace:
    """Readable :class:`Entry` records of every message a session sends and receives.

    Making one sets it as the session's protocol observer (``session.protocol.observer``,
    replacing any other), so make it before the session reads its first frame: in a server's
    root factory, or in the ``__init__`` of a session class. ``me`` and ``peer`` name the two
    sides; a call is labelled with the caller's initial and how many calls it has made (traced
    ones: both sides skip the same ones), so both sides give it the same label, and so does its
    answer. Messages whose selector is in ``quiet`` (and their answers) are left out. Values are
    shown without sending a single message: a proxy by the name given with :meth:`name`, by the
    expression that fetched it, or by its class and key.

    ``emit`` runs on whichever thread encodes or receives the message: keep it quick, and never
    send anything from it.
    """

    def __init__(
        self,
        session: Any,
        me: str,
        peer: str,
        emit: Callable[[Entry], None],
        *,
        quiet: Iterable[str] = UNTRACED,
    ) -> None:
        self.protocol = session.protocol
        self.emit = emit
        self.quiet = frozenset(quiet)
        self._me, self._peer = me[:1].upper(), peer[:1].upper()
        self._calls = {"sent": 0, "received": 0}
        self._labels: dict[bytes, str] = {}  # exchange id -> label, until answered
        self._open: set[bytes] = set()  # calls sent or received, not answered yet
        self._quiet: set[bytes] = set()
        self._fetches: dict[bytes, str] = {}  # calls sent: answer proxies are named after them
        self._remote: dict[int, str] = {}  # the peer's object key -> label
        self._local: dict[int, tuple[object, str]] = {}  # id -> (object, label)
        self._lock = threading.Lock()
        self.protocol.observer = self

    # -- naming -------------------------------------------------------------------------------

    def name(self, obj: Any, label: str) -> Any:
        """Show ``obj`` (a proxy or a local object) as ``label`` from now on; return it."""
        if is_proxy(obj):
            self._remote[_state(obj).key] = label
        else:
            self._local[id(obj)] = (obj, label)
        return obj

    def label(self, obj: Any) -> str:
        if is_proxy(obj):
            state = _state(obj)
            known = self._remote.get(state.key)
            if known is None:
                name = state.info.qualname if state.info else "object"
                known = self._remote[state.key] = f"{name}#{state.key}"
            return known
        if obj is self.protocol.tether:
            return "tether"
        entry = self._local.get(id(obj))
        if entry is not None and entry[0] is obj:
            return entry[1]
        return _local_label(obj)

    def show(self, value: Any, depth: int = 0) -> str:
        """A short, readable form of ``value`` that sends no message."""
        if is_proxy(value):
            return f"<{self.label(value)}>"
        kind = type(value)
        if value is None or kind in (bool, int, float, complex):
            return repr(value)
        if kind is str:
            return repr(value if len(value) <= 60 else value[:57] + "...")
        if kind is bytes:
            return f"<{len(value)} bytes>"
        if kind in (list, tuple, set, frozenset, dict):
            if depth >= 2:
                return "[...]" if kind is list else "(...)" if kind is tuple else "{...}"
            items = list(value.items() if kind is dict else value)
            shown = [
                f"{self.show(k, depth + 1)}: {self.show(v, depth + 1)}" if kind is dict else self.show(k, depth + 1)
                for k, v in (items[:6] if kind is dict else [(i, None) for i in items[:6]])
            ]
            if len(items) > 6:
                shown.append(f"... {len(items) - 6} more")
            inner = ", ".join(shown)
            if kind is list:
                return f"[{inner}]"
            if kind is tuple:
                return f"({inner}{',' if len(items) == 1 else ''})"
            if kind is dict:
                return f"{{{inner}}}"
            return f"{kind.__name__}({{{inner}}})" if items else f"{kind.__name__}()"
        if isinstance(value, BaseException):
            return exception_text(value)
        return f"<{self.label(value)}>"

    def call_text(self, receiver: str, selector: str, args: Any, kwargs: dict[str, Any]) -> str:
        if selector == "__getattribute__" and len(args) == 1 and not kwargs:
            return f"{receiver}.{args[0]}"
        if selector == "__setattr__" and len(args) == 2 and not kwargs:
            return f"{receiver}.{args[0]} = {self.show(args[1])}"
        shown = ", ".join([self.show(a) for a in args] + [f"{k}={self.show(v)}" for k, v in kwargs.items()])
        if selector == "__call__":
            return f"{receiver}({shown})"
        if selector == "__getitem__" and len(args) == 1:
            return f"{receiver}[{shown}]"
        return f"{receiver}.{selector}({shown})"

    # -- the observer (tether.protocol.Observer) ------------------------------------------------

    def call_sent(
        self, exchange_id: bytes | None, receiver: Any, selector: str, args: Any, kwargs: dict[str, Any]
    ) -> None:
        with self._lock:
            if selector in self.quiet:
                if exchange_id is not None:
                    self._quiet.add(exchange_id)
                return
            tether = receiver == self.protocol.peer_tether_key
            if type(receiver) is not int:  # pipelined on the answer to one of our calls
                target = f"(answer to {self._labels.get(receiver.exchange_id, 'a call')})"
            else:
                target = "tether" if tether else self._remote.get(receiver, f"#{receiver}")
            text = self.call_text(target, selector, args, kwargs)
            depth = len(self._open)
            label = self._label_call("sent", exchange_id)
            if exchange_id is not None and not tether:
                self._open.add(exchange_id)
                if "<" not in text and len(text) <= 40:
                    self._fetches[exchange_id] = text
        self.emit(Entry("sent", label, "call", text, depth))

    def answer_sent(self, exchange_id: bytes, value: object) -> None:
        self._answer("sent", exchange_id, "answer", f"= {self.show(value)}")

    def error_sent(self, exchange_id: bytes, exc: BaseException) -> None:
        self._answer("sent", exchange_id, "error", f"raised {exception_text(exc)}")

    def events_received(self, events: list[Event]) -> None:
        for event in events:
            self._received(event)

    # -- events ---------------------------------------------------------------------------------

    def _label_call(self, direction: str, exchange_id: bytes | None) -> str:
        self._calls[direction] += 1
        label = f"{self._me if direction == 'sent' else self._peer}{self._calls[direction]}"
        if exchange_id is not None:
            self._labels[exchange_id] = label
        return label

    def _answer(self, direction: str, exchange_id: bytes, kind: str, text: str, tb: str | None = None) -> None:
        with self._lock:
            if exchange_id in self._quiet:
                self._quiet.discard(exchange_id)
                return
            self._open.discard(exchange_id)
            depth = len(self._open)
            label = self._labels.pop(exchange_id, "?")
        self.emit(Entry(direction, label, kind, text, depth, tb))

    def _received(self, event: Event) -> None:
        if isinstance(event, Incoming):
            message = event.message
            eid = message.exchange_id
            with self._lock:
                if message.selector in self.quiet:
                    if eid is not None:
                        self._quiet.add(eid)
                    return
                text = self.call_text(self.label(message.receiver), message.selector, message.args, message.kwargs)
                depth = len(self._open)
                label = self._label_call("received", eid)
                if eid is not None and message.receiver is not self.protocol.tether:
                    self._open.add(eid)
            self.emit(Entry("received", label, "call", text, depth))
        elif isinstance(event, AnswerReceived):
            value = event.value
            fetched = self._fetches.pop(event.exchange_id, None)
            if fetched is not None and is_proxy(value) and _state(value).key not in self._remote:
                self._remote[_state(value).key] = fetched
            self._answer("received", event.exchange_id, "answer", f"= {self.show(value)}")
        elif isinstance(event, ErrorReceived):
            error = event.error
            self._fetches.pop(event.exchange_id, None)
            tb = getattr(error, "remote_traceback", None)
            tb = without_tether_frames(tb) if tb else None
            self._answer("received", event.exchange_id, "error", f"raised {exception_text(error)}", tb)


# The folders of tether's subpackages (aio, sync, browser, web): a frame in "<...>/tether/NAME.py"
# or "<...>/tether/SUB/NAME.py" is Tether's own.
_SUBPACKAGES = frozenset(p.name for p in Path(__file__).parent.iterdir() if (p / "__init__.py").is_file())


def _is_tether_file(path: str) -> bool:
    """Whether a traceback's file is one of Tether's own modules (on either side: the path is
    the peer's), not merely under a folder named ``tether`` (a checkout, say)."""
    parts = path.replace("\\", "/").split("/")
    if len(parts) >= 2 and parts[-2] == "tether":
        return True
    return len(parts) >= 3 and parts[-3] == "tether" and parts[-2] in _SUBPACKAGES


def without_tether_frames(traceback: str | None) -> str:
    """A remote traceback without the frames of Tether's runtime, and without ``^^^`` lines.

    Tether leaves most of its own frames out of the tracebacks it sends (unless no other frame
    would remain), but not all of them. When the error was raised in Tether's code (a JavaScript
    error thrown by a call it made), the last frame stays: the call that raised.
    """
    if not traceback:
        return "(none)"
    head: list[str] = []
    frames: list[list[str]] = []
    tail: list[str] = []
    for line in traceback.rstrip().splitlines():
        if line.strip() and not line.strip().strip("^~"):
            continue
        if line.startswith('  File "'):
            frames.append([line])
        elif line.startswith("    ") and frames and not tail:
            frames[-1].append(line)
        elif frames:
            tail.append(line)
        else:
            head.append(line)
    kept = [frame for frame in frames if not _is_tether_file(frame[0].split('"')[1])] or frames[-1:]
    return "\n".join(head + [line for frame in kept for line in frame] + tail)


def exception_text(exc: BaseException) -> str:
    """``Type: message`` for an exception (a :class:`~tether.RemoteError` by its remote type)."""
    if isinstance(exc, RemoteError):
        return f"{exc.remote_type}: {exc.message}"
    text = str(exc) if not isinstance(exc, KeyError) else repr(exc.args[0]) if exc.args else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _local_label(obj: Any) -> str:
    """A name for a local object; for a JavaScript object (in a page) its id, tag or kind."""
    kind = type(obj)
    if kind.__module__.startswith("pyodide"):
        try:
            if str(obj.typeof) == "function":
                return str(obj.name)
            if getattr(obj, "id", None):
                return f"#{obj.id}"
            tag = getattr(obj, "tagName", None)
            if tag:
                return str(tag).lower()
            return str(obj.constructor.name)
        except Exception:
            return "JavaScript object"
    return getattr(obj, "__name__", None) or kind.__name__
