"""The Tether object: what every side exposes under key 0 (``docs/protocol.md`` section 7).

Its selectors start a conversation (``root``, ``hello``), keep the reference counts
(``release``), send classes on demand (``get_classes``), iterate in batches (``iterate``,
``next_batch``) and copy or describe an object (``fetch``, ``help``); each obeys the
connection's access policy (``docs/security.md`` section 5). Two more serve debugging
(``debug_console``, ``debug_source``; ``tether.debug``) and answer only where it is on.
"""

from __future__ import annotations

import inspect
import types
from typing import TYPE_CHECKING, Any

from .access import AccessPolicy
from .classes import value_kind
from .codec import LITERAL_TYPES
from .debug import Console, require_debugging
from .exceptions import AccessDenied, ProtocolError
from .values import ByReference, ByValue, PlainReferences

if TYPE_CHECKING:
    from .protocol import Protocol

__all__ = ["TetherObject", "public_help"]

_SIZED = (str, bytes, bytearray)

class TetherObject:
    """The object each side exposes under key 0. Its selectors: ``root``, ``hello``,
    ``release`` (one-way), ``get_classes``, ``iterate``, ``next_batch``, ``fetch`` and ``help``;
    each obeys the connection's access policy like any other message."""

    INLINE = frozenset(
        {"root", "hello", "release", "get_classes", "cancel", "drop_answers", "deposit_gift", "withdraw_gift"}
    )
    SELECTORS = frozenset(
        {"root", "hello", "release", "get_classes", "cancel", "drop_answers", "iterate", "next_batch", "fetch", "help",
         "debug_console", "debug_source", "deposit_gift", "withdraw_gift"}
    )  # fmt: skip

    def __init__(self, protocol: Protocol) -> None:
        self._protocol = protocol
        self.debug = False  # this side asked for debugging on this connection (tether.debug)
        self.failures: Any = None  # then: weak references to its newest failures (tether.debug)

    def root(self) -> object:
        return self._protocol.root

    def hello(self, info: object) -> list[Any]:
        self._protocol.apply_hello(info)
        return self._protocol.hello_argument()

    def release(self, pairs: object) -> None:
        if not isinstance(pairs, list) or len(pairs) % 2:
            raise ProtocolError("release takes an Array of key, count pairs")
        exports = self._protocol.exports
        for i in range(0, len(pairs), 2):
            key, count = pairs[i], pairs[i + 1]
            if type(key) is not int or type(count) is not int:
                raise ProtocolError(f"release pair {i // 2} is not two integers")
            exports.release(key, count)

    def cancel(self, exchange_ids: object) -> None:
        """The peer no longer waits for the answers to these message-sends of its own (one-way):
        a handler that has not started is dropped, a coroutine is cancelled, and a thread (which
        cannot be stopped) runs on but its answer is not sent."""
        ids = _exchange_ids(exchange_ids, "cancel")
        on_cancel = self._protocol.on_cancel
        if on_cancel is not None:
            on_cancel(ids)

    def drop_answers(self, exchange_ids: object) -> None:
        """The peer will pipeline no more messages on the answers to these calls of its own
        (one-way): forget the answers kept for them."""
        ids = _exchange_ids(exchange_ids, "drop_answers")
        on_drop = self._protocol.on_drop_answers
        if on_drop is not None:
            on_drop(ids)

    # -- three-party handoff (tether.gifts, docs/protocol.md 5.5) ------------------------------

    def deposit_gift(self, gift_id: object, obj: object, binding: object, seconds: object) -> None:
        """The peer introduces a third party to ``obj``, one of the objects this side exposes to
        the peer (one-way): keep it as gift ``gift_id`` for whoever presents the secret whose
        SHA-256 is ``binding``, for at most ``seconds`` (and at most 300)."""
        protocol = self._protocol
        if obj is self or protocol.exports.key_of(obj) is None:
            raise ProtocolError("a gift is one of the objects this side exposes to the depositor")
        protocol.vat.deposit(gift_id, obj, binding, seconds, id(protocol), protocol.limits.max_gifts)  # type: ignore[arg-type]

    def withdraw_gift(self, gift_id: object, secret: object) -> Any:
        """Take the gift ``gift_id`` deposited here for the holder of ``secret``: the object, by
        reference (raises GiftRefused when there is none for that secret)."""
        return ByReference(self._protocol.vat.withdraw(gift_id, secret))  # type: ignore[arg-type]

    def get_classes(self, class_ids: Any) -> Any:
        """The records of classes this side named (by id), with what they need, dependencies
        first. Their references are written plainly so the answer can be read out of order."""
        if not isinstance(class_ids, list) or not all(type(i) is int for i in class_ids):
            raise ProtocolError("get_classes takes an Array of class ids")
        if len(class_ids) > 1024:
            raise ProtocolError(f"get_classes asks for {len(class_ids)} classes; at most 1024 at once")
        return PlainReferences(self._protocol.references.class_records(class_ids))

    def fetch(self, obj: Any) -> Any:
        """A copy of ``obj`` (what :func:`tether.fetch` asks for). An untrusted peer may copy
        only what travels by value anyway (literals, containers, dataclasses, registered
        classes): the state of other objects is private to this side."""
        policy = self._protocol.policy
        if not policy.trusted and not _copyable(obj, policy):
            raise AccessDenied(
                f"a {type(obj).__qualname__} travels by reference and its state is private to "
                "this side: an untrusted peer may fetch only values (literals, containers, "
                "dataclasses, registered classes)",
                name="fetch",
            )
        return ByValue(obj)

    def help(self, obj: Any) -> str:
        """The help page of ``obj``, rendered here as plain text (what :func:`tether.help`
        shows): pydoc's for a trusted peer, the names it may use for an untrusted one."""
        policy = self._protocol.policy
        if not policy.trusted:
            return public_help(obj, policy)
        import pydoc

        return pydoc.render_doc(obj, renderer=pydoc.plaintext)  # type: ignore[attr-defined]

    # -- debugging (tether.debug): only where both sides asked for it -------------------------

    def debugging(self) -> bool:
        """Whether debugging is on for this connection: this side asked for it, and the peer's
        hello says ``"debug": true`` (not a selector: peers cannot send it)."""
        return self.debug is True and self._protocol.peer_info.get("debug") is True

    def debug_console(self) -> Console:
        """Lend this side's terminal to the peer's debugger (``tether.breakpoint()`` in one of
        its handlers, running for a call of this side): a :class:`~tether.debug.Console`."""
        require_debugging(self._protocol, "debug_console")
        return Console(self._protocol)

    def debug_source(self, obj: Any, attribute: str | None = None) -> tuple[str, int, list[str], str, bool]:
        """The source of ``obj`` (or of its ``attribute``), for ``inspect.getsource`` on a
        proxy: (file, first line, lines, name, whether it is a class or module)."""
        require_debugging(self._protocol, "debug_source")
        if attribute is not None:
            if type(attribute) is not str:
                raise TypeError("debug_source takes an attribute name (a str)")
            obj = getattr(obj, attribute)
        target = inspect.unwrap(obj)
        lines, first = inspect.getsourcelines(target)
        filename = inspect.getsourcefile(target) or inspect.getfile(target)
        name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or type(target).__qualname__
        return filename, first, lines, str(name), inspect.isclass(target) or inspect.ismodule(target)

    def iterate(self, iterable: Any, size: int) -> tuple[Any, list[Any], bool]:
        """Start iterating ``iterable``: (the iterator or ``None`` when done, first items, done)."""
        iterator = iter(iterable)
        items, done = self.next_batch(iterator, size)
        return (None if done else iterator), items, done

    def next_batch(self, iterator: Any, size: int) -> tuple[list[Any], bool]:
        """Up to ``size`` items from ``iterator``; ``True`` as second item when exhausted."""
        if type(size) is not int:
            raise TypeError(f"next_batch takes an int size, not {type(size).__qualname__}")
        size = max(1, min(size, 65536))
        # Bounded by bytes too, so that the answer fits the peer's frames: strings and bytes
        # count their length, other items a little; a batch stops at half the peer's limit.
        budget = (self._protocol.peer_max_frame_size or 16 << 20) // 2
        items: list[Any] = []
        for _ in range(size):
            try:
                item = next(iterator)
            except StopIteration:
                return items, True
            items.append(item)
            budget -= len(item) + 8 if type(item) in _SIZED else 16
            if budget <= 0:
                break
        return items, False


def _copyable(obj: Any, policy: AccessPolicy) -> bool:
    cls = type(obj)
    if cls in LITERAL_TYPES:
        return True
    if getattr(cls, "__tether_proxy__", False):
        return False
    return value_kind(cls) is not None or policy.may_share_source(cls)


def public_help(obj: Any, policy: AccessPolicy) -> str:
    """A help page that shows an untrusted peer only what it may use: the docstring, and the
    signature and docstring of each public method it may call."""
    if isinstance(obj, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
        lines = [f"{_qualname(obj)}{_signature_text(obj)}"]
        lines += _indented(inspect.getdoc(obj), 4)
        return "\n".join(lines) + "\n"
    cls = obj if isinstance(obj, type) else type(obj)
    lines = [f"Help on class {cls.__qualname__}:" if obj is cls else f"Help on {cls.__qualname__} object:", ""]
    lines += _indented(inspect.getdoc(cls), 4)
    for name in policy.visible_names(obj):
        try:
            attr = inspect.getattr_static(obj, name)
        except AttributeError:
            continue
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        elif isinstance(attr, types.FunctionType) and not isinstance(obj, type):
            attr = attr.__get__(obj)  # shown as the peer calls it: without self
        if not callable(attr):
            continue
        lines += ["", f"  {name}{_signature_text(attr)}"]
        lines += _indented(inspect.getdoc(attr), 6)
    return "\n".join(lines) + "\n"


def _indented(doc: str | None, n: int) -> list[str]:
    return [" " * n + line for line in doc.splitlines()] if doc else []


def _qualname(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None)
    return name if isinstance(name, str) else type(obj).__qualname__


def _signature_text(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def _exchange_ids(value: object, selector: str) -> list[bytes]:
    """The argument of ``cancel`` and ``drop_answers``: at most 1,024 exchange ids."""
    if (
        not isinstance(value, list)
        or len(value) > 1024
        or not all(type(i) is bytes and len(i) == 16 for i in value)
    ):
        raise ProtocolError(f"{selector} takes an Array of at most 1024 exchange ids (16-byte ByteArrays)")
    return value
