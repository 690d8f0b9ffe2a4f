"""The two per-connection tables: objects we expose, and proxies we hold for the peer's objects.

Reference counting follows CapTP's wire deltas. The exporter counts every time it writes a
reference to key ``k``; the importer counts every time it reads one. When the importer's proxy
dies it releases exactly the number it has read and starts again from zero, and the exporter
subtracts that number: an entry is dropped only when every reference it sent has been released.
A reference still on the wire when the importer releases an earlier copy keeps the entry alive,
because it was counted on sending and is not yet in the release.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from .exceptions import EncodeError, ProtocolError
from .words import KEY_LIMIT, ClassInfo

__all__ = ["TETHER_KEY", "ExportTable", "ImportTable"]

TETHER_KEY = 0


class ExportTable:
    """Objects this side exposes to one peer: key -> object, with a count of references sent."""

    def __init__(self, tether: object, max_exports: int = 65536) -> None:
        self._lock = threading.Lock()
        self._max = max_exports
        # Keys counted by the frame being encoded (the protocol sets it; see rollback).
        self.journal: list[int] | None = None
        self._objects: dict[int, Any] = {TETHER_KEY: tether}
        self._counts: dict[int, int] = {}
        self._keys: dict[int, int] = {id(tether): TETHER_KEY}  # id(obj) -> key
        self._next = 1

    def __len__(self) -> int:
        """The number of exposed objects, not counting the Tether itself."""
        return len(self._objects) - 1

    def rollback(self) -> None:
        """The frame failed to encode and will not be sent: take back its references."""
        journal, self.journal = self.journal, []
        with self._lock:
            for key in journal or ():
                left = self._counts.get(key, 0) - 1
                if left > 0:
                    self._counts[key] = left
                elif key in self._counts:
                    del self._counts[key]
                    del self._keys[id(self._objects.pop(key))]

    def export(self, obj: object) -> tuple[int, bool]:
        """Count one more reference to ``obj`` sent; return its key and whether it is new."""
        journal = self.journal
        with self._lock:
            key = self._keys.get(id(obj))
            if key is not None:
                if key != TETHER_KEY:
                    self._counts[key] += 1
                    if journal is not None:
                        journal.append(key)
                return key, False
            if len(self._counts) >= self._max:
                raise EncodeError(
                    f"this connection holds {len(self._counts)} objects for the peer, the limit "
                    "(Limits.max_exports): the peer must let go of some proxies before it is sent "
                    "more references (or raise the limit)"
                )
            key = self._allocate()
            self._objects[key] = obj
            self._counts[key] = 1
            self._keys[id(obj)] = key
            if journal is not None:
                journal.append(key)
            return key, True

    def _allocate(self) -> int:
        key = self._next
        while key in self._objects:
            key = key + 1 if key + 1 < KEY_LIMIT else 1
            if key == self._next:
                raise ProtocolError(f"all {KEY_LIMIT - 1} exposure keys are in use")
        self._next = key + 1 if key + 1 < KEY_LIMIT else 1
        return key

    def get(self, key: int) -> object:
        try:
            return self._objects[key]
        except KeyError:
            raise ProtocolError(
                f"no object is exposed under key {key} on this connection "
                f"({len(self)} objects are); it was never sent or was released"
            ) from None

    def key_of(self, obj: object) -> int | None:
        return self._keys.get(id(obj))

    def release(self, key: int, count: int) -> None:
        """The peer dropped ``count`` references to ``key``; forget the object when none remain."""
        with self._lock:
            if key == TETHER_KEY or key not in self._counts:
                raise ProtocolError(f"release of key {key}, which is not exposed")
            left = self._counts[key] - count
            if left < 0 or count <= 0:
                raise ProtocolError(
                    f"release of {count} references to key {key}, but {self._counts[key]} "
                    "were sent"
                )
            if left:
                self._counts[key] = left
                return
            obj = self._objects.pop(key)
            del self._counts[key]
            del self._keys[id(obj)]

    def clear(self) -> None:
        with self._lock:
            tether = self._objects[TETHER_KEY]
            self._objects = {TETHER_KEY: tether}
            self._counts.clear()
            self._keys = {id(tether): TETHER_KEY}


class ImportTable:
    """Proxies this side holds for the peer's objects: one live proxy per key.

    ``on_release(key, count)`` is called (from whatever thread the garbage collector runs in)
    when the last reference to a proxy disappears; the session batches these into release
    messages.
    """

    def __init__(self, on_release: Callable[[int, int], None]) -> None:
        self._lock = threading.RLock()  # a weakref callback may run while this thread holds it
        self._entries: dict[int, list[Any]] = {}  # key -> [weakref to proxy, count read]
        self._on_release = on_release
        self.closed = False
        self.created = 0  # proxies made so far (a decoder charges each new one)

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self, key: int, info: ClassInfo | None, factory: Callable[[int, ClassInfo | None], Any]
    ) -> Any:
        """Count one more reference read for ``key``; return its proxy (made on first sight)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                proxy = entry[0]()
                if proxy is not None:
                    entry[1] += 1
                    return proxy
                # The proxy died but its callback has not run yet: release its count now, and
                # let the new reference start afresh (the callback will see it was replaced).
                if not self.closed:
                    self._on_release(key, entry[1])
            proxy = factory(key, info)
            self.created += 1
            self._entries[key] = [weakref.ref(proxy, self._make_callback(key)), 1]
            return proxy

    def alias(self, key: int, proxy: Any) -> None:
        """From now on ``key`` stands for ``proxy`` (the direct proxy a handoff gave for the
        peer's reference ``key``): the entry keeps its count, and is released when ``proxy``
        dies. A ``proxy`` that cannot be weakly referenced is left alone."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            try:
                entry[0] = weakref.ref(proxy, self._make_callback(key))
            except TypeError:
                pass

    def rollback(self, keys: list[int]) -> None:
        """Undo the counts of a frame that is read again later (it waited for classes or handoffs)."""
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None:
                    continue
                entry[1] -= 1
                if entry[1] <= 0:
                    del self._entries[key]  # its callback will find it gone: no release

    def _make_callback(self, key: int) -> Callable[[Any], None]:
        def died(ref: Any) -> None:
            with self._lock:
                entry = self._entries.get(key)
                if entry is None or entry[0] is not ref:
                    return
                del self._entries[key]
                count = entry[1]
            if not self.closed:
                self._on_release(key, count)

        return died

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._entries.clear()
