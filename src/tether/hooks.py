"""What the codec asks of a connection: the reference hooks that :class:`tether.protocol.Protocol`
implements, the signal that a frame needs classes from the peer first, and whether this thread
is reading a frame (:data:`reading`)."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from .words import ClassInfo

__all__ = ["NeedClasses", "ReferenceHooks", "reading"]


class ReferenceHooks(Protocol):
    """What the codec asks of a connection. Implemented by :class:`tether.protocol.Protocol`."""

    def write_reference(self, obj: object, out: bytearray) -> None:
        """Write a reference to ``obj`` (not a literal) onto ``out``."""

    def may_send(self, obj: object) -> bool:
        """Whether ``obj`` may go to the peer by reference (else a name goes without fallback)."""

    def is_exported(self, obj: object) -> bool:
        """Whether ``obj`` is exposed to the peer already (then even a list goes by reference)."""

    def my_object(self, key: int, info: ClassInfo | None) -> object:
        """Return the proxy for the sender's object ``key``."""

    def your_object(self, key: int) -> object:
        """Return our own exposed object ``key``; raise :class:`DecodeError` if unknown."""

    def class_info(self, class_id: int) -> ClassInfo:
        """Return the class info the peer defined earlier under ``class_id``."""

    def define_class_info(self, class_id: int, info: ClassInfo) -> None:
        """Remember the class info the peer defines under ``class_id``."""

    def write_object_head(self, cls: type, out: bytearray, compact: bool) -> None:
        """Write what starts an object by value: ``0x21000000 + id`` for a class named before
        (when ``compact``), else the OBJECT tag and the class (CLASS, CLASS_REF, YOUR_CLASS)."""

    def peer_class(self, class_id: int, name: tuple[str, str, bytes | None] | None) -> type:
        """The class the peer names ``class_id`` (with its names the first time); raises
        :class:`NeedClasses` when it must be fetched first."""

    def own_class(self, class_id: int) -> type:
        """A class we sent the peer under ``class_id``, coming home."""

    def resolve_named(self, module: str, qualname: str, fp: bytes | None, fallback: object) -> object:
        """A module, class or function by name, else the fallback reference."""

    def define_function(self, record: dict[str, Any]) -> object:
        """A function that travels by value."""


class NeedClasses(Exception):
    """Raised while decoding: the peer must send these classes before the frame can be read."""

    def __init__(self, class_ids: list[int]) -> None:
        super().__init__(class_ids)
        self.class_ids = class_ids


class _Reading(threading.local):
    active = False  # this thread is decoding a frame


# Whether this thread is reading a frame: tether.protocol sets it around decoding and refuses to
# send a message meanwhile. Here, not in protocol.py, since mypyc (which compiles protocol.py)
# cannot compile a subclass of threading.local.
reading = _Reading()
