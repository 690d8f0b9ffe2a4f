"""Frames a connection holds back until what the first of them needs is here: classes the
peer must send first (``get_classes``, ``docs/protocol.md`` 5.4) or handoffs the runtime
resolves (``docs/protocol.md`` 5.5). Held frames are read again, in their order, as soon as
that arrives; one :class:`HeldFrames` belongs to each :class:`tether.protocol.Protocol`."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from .events import Event, HandoffNeeded, State
from .exceptions import ProtocolError
from .exposure import TETHER_KEY
from .gifts import Handoff
from .words import TAG_ANSWER, TAG_ERROR_ANSWER, TAG_MESSAGE, TAG_SYMBOL, TAG_TETHER, pack_word

if TYPE_CHECKING:
    from .protocol import Protocol

__all__ = ["ANSWER_TAG_BYTES", "ERROR_TAG_BYTES", "TETHER_TAG_BYTES", "HeldFrames"]

ANSWER_TAG_BYTES = pack_word(TAG_ANSWER)  # the first word of each frame kind, as bytes
ERROR_TAG_BYTES = pack_word(TAG_ERROR_ANSWER)
TETHER_TAG_BYTES = pack_word(TAG_TETHER)
_GET_CLASSES_SELECTOR = (
    pack_word(TETHER_KEY) + pack_word(TAG_MESSAGE) + pack_word(TAG_SYMBOL) + pack_word(11) + b"get_classes"
)


class HeldFrames:
    """One connection's held frames (``frames``: ``None`` when none is held), the class
    requests it sent (exchange id -> class ids) and the gifts the runtime resolves for it."""

    def __init__(self, protocol: Protocol) -> None:
        self._protocol = protocol
        self.frames: deque[bytes] | None = None
        self._for_classes = False  # else, while frames are held: for handoffs being resolved
        self.class_requests: dict[bytes, list[int]] = {}
        self._resolving: set[bytes] = set()

    def keeps(self, data: bytes) -> bool:
        """Whether a frame just received joins those held (answers to our class requests and
        the peer's own class requests go through: each side may wait for the other's classes)."""
        if self.frames is None:
            return False
        head = data[:4]
        if head in (ANSWER_TAG_BYTES, ERROR_TAG_BYTES):
            passes = data[12:28] in self.class_requests
        else:
            passes = head == TETHER_TAG_BYTES and data[28:55] == _GET_CLASSES_SELECTOR
        if not passes:
            self.frames.append(data)
        return not passes

    def _read(self) -> list[Event]:
        """Read the held frames in order, until one must wait again."""
        held, self.frames = self.frames, None
        self._for_classes = False
        protocol = self._protocol
        events: list[Event] = []
        while held:
            events += protocol._receive(held.popleft())
            if self.frames is not None:  # blocked again, on other classes or handoffs
                self.frames.extend(held)
                break
        return events

    # -- classes on demand ------------------------------------------------------------------

    def wait_for_classes(self, data: bytes, class_ids: list[int]) -> None:
        """Hold ``data`` (the first frame held) and ask the peer for the classes it needs."""
        protocol = self._protocol
        assert protocol.peer_tether_key is not None
        self.frames = deque([data])
        self._for_classes = True
        exchange_id = protocol.next_id()
        self.class_requests[exchange_id] = class_ids
        protocol.queue_tether_call(exchange_id, "get_classes", (class_ids,))

    def classes_arrived(self, exchange_id: bytes, records: Any, error: BaseException | None) -> list[Event]:
        """Define the classes the peer sent, then read the held frames in order."""
        references = self._protocol.references
        requested = self.class_requests.pop(exchange_id)
        if error is None and not isinstance(records, list):
            error = ProtocolError("get_classes must answer a list of class records")
        if error is None:
            if not references.accept_code:
                error = ProtocolError("this side does not accept code (accept_code=False)")
            else:
                references.define_classes(records)
        references.note_class_failures(requested, error)
        return self._read()

    # -- handoffs ---------------------------------------------------------------------------

    def wait_for_handoffs(self, data: bytes, needed: list[Handoff]) -> list[Event]:
        """Hold ``data`` until its handoffs are resolved; returns the event asking the runtime
        for those not asked for yet (at most ``Limits.max_gifts`` at once: beyond, and where
        this side takes no handoffs, the fallback is used at once)."""
        protocol = self._protocol
        resolved = protocol.references.handoffs
        new: list[Handoff] = []
        for handoff in needed:
            if handoff.gift in self._resolving or handoff.gift in resolved:
                continue
            if len(self._resolving) >= protocol.limits.max_gifts or protocol.handoff_secret is None:
                resolved[handoff.gift] = None  # the fallback: forwarding
                continue
            self._resolving.add(handoff.gift)
            new.append(handoff)
        if not any(handoff.gift in self._resolving for handoff in needed):
            return protocol._receive(data)  # all settled already
        self.frames = deque([data])
        return [HandoffNeeded(new)] if new else []

    def resolved(self, gift: bytes, value: object) -> list[Event]:
        """See :meth:`tether.protocol.Protocol.handoff_resolved`."""
        if gift not in self._resolving:
            return []
        self._resolving.discard(gift)
        protocol = self._protocol
        if protocol.state is State.CLOSED or protocol.state is State.CLOSING:
            return []
        protocol.references.handoffs[gift] = value
        if self.frames is None or self._for_classes:
            return []  # read when the classes arrive
        return self._read()
