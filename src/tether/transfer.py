"""The protocol's side of live serialization: naming classes on the wire, finding or defining
the peer's classes, resolving names, and answering the peer's ``get_classes``.

:class:`ClassTransfer` is mixed into :class:`tether.protocol.Protocol`; its methods are the
class hooks the codec calls (``write_class``, ``peer_class``, ``own_class``,
``resolve_named``, ``define_function``). ``docs/protocol.md`` section 5.4 is the normative
description.
"""

from __future__ import annotations

import logging
from typing import Any

from . import classes as _classes
from .access import AccessPolicy
from .codec import Encoder, write_str
from .exceptions import AccessDenied, DecodeError, ProtocolError
from .hooks import NeedClasses
from .limits import Limits
from .words import (
    COMPACT_LIMIT,
    COMPACT_OBJECT,
    TAG_CLASS,
    TAG_CLASS_REF,
    TAG_OBJECT,
    TAG_STRING,
    TAG_YOUR_CLASS,
    pack_word,
)

__all__ = ["ClassTransfer"]

log = logging.getLogger("tether")


class _ClassDep:
    """A class that code sent by value uses, itself sent in the same get_classes answer."""

    __slots__ = ("class_id",)

    def __init__(self, class_id: int) -> None:
        self.class_id = class_id


class ClassTransfer:
    """Per-connection class tables. Needs ``self.encoder``, ``self.accept_code``,
    ``self.policy`` and ``self.described`` (the classes this side named to the peer)."""

    encoder: Encoder
    accept_code: bool
    policy: AccessPolicy
    limits: Limits
    described: dict[tuple[str, str], object]

    def _init_classes(self) -> None:
        # Classes of objects that travel by value: ours, as named to the peer ...
        self._sent_classes: dict[type, int] = {}
        self._sent_class_by_id: dict[int, type] = {}
        self._sent_class_names: dict[tuple[str, str], object] = {}
        self._named_on_wire: set[int] = set()
        self._named_now: list[int] = []  # named in the frame being encoded (undone if it fails)
        self._records_sent: set[int] = set()
        # ... and the peer's, as named to us, resolved here or defined from its records.
        self._peer_class_names: dict[int, tuple[str, str, bytes | None]] = {}
        self._peer_class_objects: dict[int, type] = {}
        self._classes_from_peer: dict[type, int] = {}
        self._class_failures: dict[int, str] = {}

    def _class_id(self, cls: type) -> int:
        class_id = self._sent_classes.get(cls)
        if class_id is None:
            class_id = len(self._sent_classes) + 1
            self._sent_classes[cls] = class_id
            self._sent_class_by_id[class_id] = cls
            self._sent_class_names[(cls.__module__, cls.__qualname__)] = cls
        return class_id

    def write_object_head(self, cls: type, out: bytearray, compact: bool) -> None:
        # The forms that name a class already known to both sides are the same every time: the
        # encoder keeps them (Encoder.heads) until a frame is undone or the forms change.
        home = self._classes_from_peer.get(cls)
        if home is not None:  # the peer's own class, going home
            head = pack_word(TAG_OBJECT) + pack_word(TAG_YOUR_CLASS) + pack_word(home)
            out += head
            self.encoder.heads[cls] = head
            return
        class_id = self._class_id(cls)
        if class_id in self._named_on_wire:
            if compact and class_id < COMPACT_LIMIT:
                head = pack_word(COMPACT_OBJECT + class_id)
            else:
                head = pack_word(TAG_OBJECT) + pack_word(TAG_CLASS_REF) + pack_word(class_id)
            out += head
            if compact == self.encoder.compact:
                self.encoder.heads[cls] = head
            return
        self._named_on_wire.add(class_id)
        self._named_now.append(class_id)
        out += pack_word(TAG_OBJECT)
        out += pack_word(TAG_CLASS)
        out += pack_word(class_id)
        write_str(out, TAG_STRING, cls.__module__)
        write_str(out, TAG_STRING, cls.__qualname__)
        self.encoder.write(_classes.fingerprint(cls), out)

    def peer_class(self, class_id: int, name: tuple[str, str, bytes | None] | None) -> type:
        cls = self._peer_class_objects.get(class_id)
        if cls is not None:
            return cls
        failure = self._class_failures.get(class_id)
        if failure is not None:
            raise DecodeError(failure)
        if name is None:
            name = self._peer_class_names.get(class_id)
            if name is None:
                raise DecodeError(f"class id {class_id} was never named by the peer")
        elif class_id not in self._peer_class_names:
            if len(self._peer_class_names) >= self.limits.max_class_infos:
                raise DecodeError(
                    f"the peer named {len(self._peer_class_names)} classes on this connection, "
                    "the limit (Limits.max_class_infos)"
                )
        module, qualname, fp = name
        if self._open_names:
            local = None if module == "__main__" else _classes.resolve_name(module, qualname, self.accept_code)
        else:  # an untrusted peer: only what this side sent it, value types and registered classes
            local = self.policy.resolve(module, qualname, self._sent_class_names)
            if local is None:
                raise DecodeError(
                    f"an instance of {module}.{qualname} cannot be received: this side does not "
                    "let untrusted peers name that class (only classes it sent them, built-in "
                    "value types and registered classes); register it on this side with "
                    f"tether.register({qualname.rpartition('.')[2]}) or AccessPolicy(allow=[...]), "
                    "or pass accept_code=True to define the peer's class from its source (runs "
                    "the peer's code: only for peers you trust)"
                )
        differs = False
        if isinstance(local, type):
            local_fp = None if fp is None else _classes.fingerprint(local)
            if fp is None or local_fp is None or local_fp == fp:
                self._keep_name(class_id, name)
                self._peer_class_objects[class_id] = local
                return local
            differs = True
        if not self.accept_code:
            why = "has a different version of it (its source differs)" if differs else "does not have it"
            raise DecodeError(
                f"an instance of {module}.{qualname} cannot be received: this side {why}, and "
                "defining a class sent by a peer runs that peer's code; pass accept_code=True "
                "to tether.serve() or tether.connect() for peers you trust"
            )
        self._keep_name(class_id, name)
        raise NeedClasses([class_id])

    def _keep_name(self, class_id: int, name: tuple[str, str, bytes | None]) -> None:
        """Remember a class name the peer defined (only names that resolved are kept)."""
        if class_id not in self._peer_class_names:
            self.count_class_bytes(len(name[0]) + len(name[1]))
            self._peer_class_names[class_id] = name

    def count_class_bytes(self, n: int) -> None:
        raise NotImplementedError

    def own_class(self, class_id: int) -> type:
        cls = self._sent_class_by_id.get(class_id)
        if cls is None:
            raise DecodeError(f"the peer refers to our class id {class_id}, which we never sent")
        return cls

    @property
    def _open_names(self) -> bool:
        """Whether names from the peer resolve to anything importable here (a trusted peer, or
        one that may send code anyway), rather than only to what the policy allows."""
        return self.policy.trusted or self.accept_code

    def resolve_named(self, module: str, qualname: str, fp: bytes | None, fallback: object) -> object:
        name = f"{module}.{qualname}" if qualname else module
        if self._open_names:
            local = None if module == "__main__" else _classes.resolve_name(module, qualname, self.accept_code)
        else:
            local = self.policy.resolve(module, qualname, self.described)
            if local is None and fallback is None:
                raise DecodeError(
                    f"{name} cannot be named by an untrusted peer: names resolve only to what "
                    "this side sent that peer, built-in value types and registered classes and "
                    "functions (tether.register); nothing is imported"
                )
        if local is not None:
            local_fp = _classes.fingerprint(local) if qualname else None
            if fp is None or local_fp is None or local_fp == fp:
                return local
            if fallback is None:
                raise DecodeError(
                    f"{name} differs between the two sides (its source does not match): "
                    "install the same version on both"
                )
            log.warning("%s differs between the two sides; using the peer's, by reference", name)
            return fallback
        if fallback is not None:
            return fallback
        raise DecodeError(f"{name} is needed but cannot be imported on this side")

    def define_function(self, record: dict[str, Any]) -> object:
        qualname = record.get("qualname", "?")
        if not self.accept_code:
            raise DecodeError(
                f"function {qualname} was sent by value, and defining it runs the peer's code; "
                "pass accept_code=True to tether.serve() or tether.connect() for peers you trust"
            )
        try:
            return _classes.define_function(record, dict(record.get("globals") or {}))
        except Exception as exc:
            raise DecodeError(f"function {qualname} sent by the peer could not be defined: {exc}") from None

    def class_records(self, class_ids: list[int]) -> list[dict[str, Any]]:
        """Records of our classes ``class_ids`` and of the unimportable classes they use,
        dependencies first (what ``get_classes`` answers)."""
        records: list[dict[str, Any]] = []
        done: set[int] = set()

        def add(class_id: int) -> None:
            if class_id in done:
                return
            done.add(class_id)
            cls = self._sent_class_by_id.get(class_id)
            if cls is None:
                raise ProtocolError(f"no class was named under id {class_id} on this connection")
            if not self.policy.may_share_source(cls):
                raise AccessDenied(
                    f"the source of {cls.__module__}.{cls.__qualname__} is not sent to untrusted "
                    "peers; the sending side can register the class (tether.register) to share "
                    "it, or trust the peer",
                    name=cls.__qualname__,
                )

            def encode_global(value: Any) -> Any:
                if isinstance(value, type) and value is not cls and _classes.importable_name(value) is None:
                    dep = self._class_id(value)
                    add(dep)
                    return _ClassDep(dep)
                return self.encoder.global_value(value)

            record = _classes.class_record(cls, encode_global)
            found = record["globals"]
            record["class_globals"] = {k: v.class_id for k, v in found.items() if isinstance(v, _ClassDep)}
            record["globals"] = {k: v for k, v in found.items() if not isinstance(v, _ClassDep)}
            record["id"] = class_id
            records.append(record)

        for class_id in class_ids:
            add(class_id)
        # The frame that needed these may name more classes no import can find on the other
        # side (it stopped reading at the first): send those too, saving a round trip each.
        for class_id in sorted(self._named_on_wire - self._records_sent):
            cls = self._sent_class_by_id[class_id]
            if (
                _classes.importable_name(cls) is None
                and self.policy.may_share_source(cls)
                and _classes.source_of(cls) is not None
            ):
                add(class_id)
        self._records_sent.update(done)
        return records

    def define_classes(self, records: list[Any]) -> None:
        """Define the classes of a ``get_classes`` answer (the caller checked accept_code)."""
        namespaces = [self._define_class(record) for record in records]
        for record, ns in zip(records, namespaces, strict=True):
            if ns is not None:  # classes that use each other: fill in the later ones
                for name, dep in record["class_globals"].items():
                    if dep in self._peer_class_objects:
                        ns[name] = self._peer_class_objects[dep]

    def _define_class(self, record: Any) -> dict[str, Any] | None:
        try:
            class_id = record["id"]
            namespace = dict(record["globals"])
            for name, dep in record["class_globals"].items():
                if dep in self._peer_class_objects:
                    namespace[name] = self._peer_class_objects[dep]
            cls, namespace = _classes.define_class(record, namespace)
        except Exception as exc:
            log.warning("a class sent by the peer could not be defined", exc_info=True)
            failed = record.get("id") if isinstance(record, dict) else None
            if isinstance(failed, int):
                self._class_failures[failed] = (
                    f"class {record.get('module')}.{record.get('qualname')} sent by the peer "
                    f"could not be defined: {exc}"
                )
            return None
        self._peer_class_objects[class_id] = cls
        self._classes_from_peer[cls] = class_id
        return namespace
