"""What :meth:`tether.protocol.Protocol.receive` returns (the events one frame causes), where a
conversation is (:class:`State`), and what a tracer implements (:class:`Observer`)."""

from __future__ import annotations

import builtins
import enum
import typing
from dataclasses import dataclass
from typing import Any

from .frames import AnswerOf, MessageSend

__all__ = [
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_TOO_BIG",
    "AnswerReceived",
    "ErrorReceived",
    "Event",
    "HandoffNeeded",
    "Incoming",
    "Observer",
    "Opened",
    "State",
    "Violation",
]


@dataclass(slots=True)
class Opened:
    """The peer exposed its Tether: the conversation has started."""

    peer_tether_key: int


@dataclass(slots=True)
class Incoming:
    """A message-send to perform: run it in its own task or worker (:meth:`Protocol.start`,
    then :meth:`Protocol.finish` or :meth:`Protocol.fail`)."""

    message: MessageSend

    def __init__(self, message: MessageSend) -> None:
        self.message = message  # (written out: mypyc compiles it, dataclasses' would be interpreted)


@dataclass(slots=True)
class AnswerReceived:
    exchange_id: bytes
    value: builtins.object  # (builtins.: mypyc looks a field's type up among the module's globals)

    def __init__(self, exchange_id: bytes, value: builtins.object) -> None:
        self.exchange_id = exchange_id  # (written out: mypyc compiles it, as Incoming's)
        self.value = value


@dataclass(slots=True)
class ErrorReceived:
    exchange_id: bytes
    error: builtins.BaseException


@dataclass(slots=True)
class Violation:
    """The peer broke the protocol beyond repair: close the connection with ``code``."""

    code: int
    reason: str


@dataclass(slots=True)
class HandoffNeeded:
    """A frame holds handoff descriptors (``tether.gifts.Handoff``) this side must resolve
    first: withdraw each gift from the vat it names (or give up on it), then tell
    :meth:`Protocol.handoff_resolved`. The frame, and every frame after it, waits until then."""

    handoffs: list[Any]


Event = Opened | Incoming | AnswerReceived | ErrorReceived | Violation | HandoffNeeded

CLOSE_PROTOCOL_ERROR = 1002
CLOSE_TOO_BIG = 1009


class State(enum.Enum):
    """Where a connection's conversation is (:attr:`Protocol.state`)."""

    CONNECTING = "connecting"  # the peer has not exposed its Tether yet
    OPEN = "open"  # it has: messages flow both ways
    CLOSING = "closing"  # the peer broke the protocol, or the runtime is closing: frames are ignored
    CLOSED = "closed"  # the connection is gone: nothing more is queued, the tables are empty


class Observer(typing.Protocol):
    """Watches one connection's traffic (``Protocol.observer``): told of every call, answer and
    error this side encodes and of the events every received frame causes. For tracing and
    debugging tools; it must not send anything itself, and it runs on the thread that encodes
    or receives, so keep it quick."""

    def call_sent(
        self, exchange_id: bytes | None, receiver: int | AnswerOf, selector: str, args: Any, kwargs: dict[str, Any]
    ) -> None: ...

    def answer_sent(self, exchange_id: bytes, value: object) -> None: ...

    def error_sent(self, exchange_id: bytes, exc: BaseException) -> None: ...

    def events_received(self, events: list[Event]) -> None: ...
