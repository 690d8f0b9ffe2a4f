"""One connection's reference tables, as the codec sees them: the hooks it calls to write a
reference, to read one, and to name, find or define classes (:class:`tether.hooks.ReferenceHooks`).

A :class:`References` belongs to one :class:`tether.protocol.Protocol` (``protocol.references``);
the protocol's encoder and every decoder it makes call it, and nothing else needs to. It holds
the export table (our objects the peer may name), the import table (proxies for the peer's
objects), the class infos both sides defined, and, through :class:`~tether.transfer.ClassTransfer`,
the class tables of live serialization.

Writing a frame is a transaction: :meth:`References.begin_frame` before, and
:meth:`References.undo_frame` if the frame is not sent after all (too big, a value that cannot
be encoded), which takes back what writing it counted. The protocol does both, under its lock.
"""

from __future__ import annotations

import inspect
import os
import types
import weakref
from collections.abc import Callable
from typing import Any

from .access import AccessPolicy, is_application_class
from .codec import Decoder, Encoder
from .dispatch import class_specials
from .events import State
from .exceptions import DecodeError, ProtocolError
from .exposure import ExportTable, ImportTable
from .gifts import GIFT_ID_SIZE, Handoff, write_handoff
from .limits import Limits
from .proxy import Proxy, _state
from .transfer import ClassTransfer
from .values import write_class_info
from .words import MY_OBJECT_BASE, TAG_DESCRIBED_REF, ClassInfo, pack_word

__all__ = ["PROXY_COST", "References", "class_info_for"]

PROXY_COST = 768  # bytes: a proxy, its state, its weak reference and callback, its import-table entry

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


class References(ClassTransfer):
    """The codec's hooks for one connection (see the module docstring).

    ``tether`` is the object exposed under key 0; ``proxy_factory(key, info)`` makes a proxy for
    the peer's object ``key``; ``release(key, count)`` is told when proxies die (the protocol
    queues a ``release`` message); ``owner`` is the protocol (a proxy whose session's protocol is
    the owner is one of the peer's own objects, going home).
    """

    def __init__(
        self,
        *,
        owner: object,
        tether: object,
        policy: AccessPolicy,
        limits: Limits,
        accept_code: bool,
        proxy_factory: Callable[[int, ClassInfo | None], Any],
        release: Callable[[int, int], None],
        max_depth: int,
        passing: dict[type, str] | None,
    ) -> None:
        self.owner = owner
        self.marker_base = MY_OBJECT_BASE  # "my object" words written: base + key (the protocol sets it)
        self.policy = policy
        self.limits = limits
        self.accept_code = accept_code
        self.proxy_factory = proxy_factory
        self.exports = ExportTable(tether, limits.max_exports)
        self.imports = ImportTable(release)
        self.encoder = Encoder(self, max_depth, passing)
        self.plain_references = False  # set while writing PlainReferences (get_classes answers)
        self.described: dict[tuple[str, str], object] = {}  # classes this side named to the peer
        self._class_ids: dict[object, int] = {}  # a class, or the ClassInfo of a forwarded proxy
        self._peer_classes: dict[int, ClassInfo] = {}
        self._class_bytes = 0  # bytes of the peer's class names and infos kept
        # While a frame is read: the keys of the proxies it made (undone if it must wait for
        # classes) and its decoder (charged for every new proxy).
        self.decoding_imports: list[int] | None = None
        self.decoder: Decoder | None = None
        # Three-party handoff (tether.gifts). Writing: the peer's binding when it takes handoffs
        # (its hello's handoff_key; None: forward every proxy of another connection), and the
        # deposits the frame being written asks for (sent once it is queued: on_deposits).
        self.handoff_binding: bytes | None = None
        self.deposits: list[tuple[Any, bytes, object, bytes]] = []
        # Reading: the handoffs of the frame being read that are not resolved yet (then it is
        # held), and the resolved ones by gift id (a value, or None: use the fallback).
        self.handoffs_needed: list[Handoff] | None = None
        self.handoffs: dict[bytes, object] = {}
        self.handoffs_used: list[bytes] = []
        self._init_classes()

    @property
    def peer_is_python(self) -> bool:
        """Whether the peer is a Python Tether: references carry class info, values the compact forms."""
        return self.encoder.compact

    @peer_is_python.setter
    def peer_is_python(self, value: bool) -> None:
        self.encoder.compact = value
        self.encoder.heads.clear()  # written in the other forms now

    # -- writing a frame: a transaction ---------------------------------------------------

    def begin_frame(self) -> tuple[list[int] | None, int, int]:
        """Start writing one frame; returns what :meth:`undo_frame` and :meth:`end_frame` need
        (the enclosing frame's journal first: an error answer may be written while an answer is)."""
        exports = self.exports
        outer = exports.journal
        exports.journal = []
        self._named_now = []
        return outer, len(self._class_ids), len(self.deposits)

    def undo_frame(self, undo: tuple[list[int] | None, int, int]) -> None:
        """The frame is not sent: take back the references it exported, the class infos and
        names it marked as sent, and the gifts it would have deposited."""
        self.exports.rollback()
        for key in list(self._class_ids)[undo[1] :]:
            del self._class_ids[key]
        self._named_on_wire.difference_update(self._named_now)
        self.encoder.heads.clear()  # (a class it named is named again by the next frame)
        del self.deposits[undo[2] :]

    def end_frame(self, undo: tuple[list[int] | None, int, int]) -> None:
        self.exports.journal = undo[0]

    # -- the codec's reference hooks ------------------------------------------------------

    def write_reference(self, obj: object, out: bytearray) -> None:
        state = _state(obj) if issubclass(type(obj), Proxy) else None
        if state is not None and state.session.protocol is self.owner:
            out += pack_word(state.key)  # one of the peer's own objects going home: "your object"
            return
        if state is None:
            self.policy.check_send(obj)
            if isinstance(obj, type) and is_application_class(obj):
                self.described[(obj.__module__, obj.__qualname__)] = obj
        elif self.handoff_binding is not None and not self.plain_references and self.exports.key_of(obj) is None:
            # Introduced once per export: while the peer holds the key, it stands for the peer's
            # direct proxy if the handoff succeeded (ImportTable.alias), else for this side's.
            self._introduce(obj, state, out)  # then the fallback: this side's proxy, as below
        key, _ = self.exports.export(obj)
        marker = self.marker_base + key
        if not self.encoder.compact or self.plain_references:
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

    def _introduce(self, proxy: object, state: Any, out: bytearray) -> None:
        """A proxy of another connection goes to a peer that takes handoffs: where its owner
        is a Python Tether that says where it listens (or is the recipient's own process), write
        a handoff descriptor and deposit a gift for the recipient with the owner (docs/protocol.md
        5.5). Otherwise write nothing: the proxy is forwarded."""
        owner = state.session.protocol
        info = owner.peer_info
        vat = info.get("vat")
        if type(vat) is not bytes or owner.state is not State.OPEN or not owner.peer_is_python:
            return
        url = info.get("advertise")
        if type(url) is not str or not url.startswith(("ws://", "wss://")):
            url = None
        if url is None and vat != self.owner.peer_info.get("vat"):  # type: ignore[attr-defined]
            return  # the owner cannot be reached by the recipient (a page, a client)
        gift = os.urandom(GIFT_ID_SIZE)
        self.deposits.append((state.session, gift, proxy, self.handoff_binding))  # type: ignore[arg-type]
        write_handoff(out, vat, url, gift)

    def handoff(self, handoff: Handoff) -> object:
        """A handoff descriptor was read: its resolved value, once resolved; until then the
        frame is noted as needing it (the protocol holds the frame and the runtime withdraws
        the gift), and the fallback stands in."""
        if handoff.gift in self.handoffs:
            resolved = self.handoffs[handoff.gift]
            self.handoffs_used.append(handoff.gift)
            if resolved is None:
                return handoff.fallback
            fallback = handoff.fallback
            state = _state(fallback) if issubclass(type(fallback), Proxy) else None
            if state is not None and state.session.protocol is self.owner:
                # The introducer's key stands for the direct proxy while this side holds it:
                # the introducer sends that key again, not another handoff (docs/protocol.md 5.5).
                self.imports.alias(state.key, resolved)
            return resolved
        if self.handoffs_needed is not None:
            self.handoffs_needed.append(handoff)
        return handoff.fallback

    def may_send(self, obj: object) -> bool:
        return self.policy.may_send(obj)

    def is_exported(self, obj: object) -> bool:
        return self.exports.key_of(obj) is not None

    def my_object(self, key: int, info: ClassInfo | None) -> object:
        if self.decoding_imports is not None:
            self.decoding_imports.append(key)
        imports = self.imports
        created = imports.created
        proxy = imports.get(key, info, self.proxy_factory)
        if imports.created != created and self.decoder is not None:
            self.decoder.charge(PROXY_COST, "a new proxy")
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

    def note_class_failures(self, class_ids: list[int], error: BaseException | None) -> None:
        """The peer's answer to ``get_classes`` for ``class_ids`` did not define some of them:
        remember why, for the error raised where such an object is read."""
        for class_id in class_ids:
            if class_id not in self._peer_class_objects:
                name = ".".join(self._peer_class_names.get(class_id, ("?", "?", None))[:2])
                self._class_failures.setdefault(class_id, f"the peer could not send class {name}: {error}")

    def close(self) -> None:
        """Forget both tables (the connection is gone)."""
        self.handoffs.clear()
        self.deposits.clear()
        self.imports.close()
        self.exports.clear()
