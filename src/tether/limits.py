"""The bounds on what one peer can make this side spend, in one object.

Every resource a peer's frames can make us spend has a bound here, with a default that a normal
application never meets; a frame or call over a bound gets a clear error (an error answer when
the frame was a message-send, else the connection closes with a protocol error) and nothing
else is lost. Pass ``limits=tether.Limits(...)`` to ``serve`` or ``connect`` to change them; the
frame size has its own option, ``max_frame_size``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection limits (see ``docs/security.md`` for what each one bounds).

    * ``memory_factor``, ``memory_floor``: decoding one frame may create objects worth at most
      ``max(memory_floor, memory_factor * frame bytes)`` bytes (an estimate charged per object:
      containers, proxies, objects by value);
    * ``max_items``: elements in one container, and in all containers of one frame together;
    * ``max_same_hash``: keys of one Dict or Set that share one hash value (colliding keys make
      building a dict quadratic: hash flooding);
    * ``max_class_infos``: class descriptions (and, apart, class names) the peer may define on
      the connection, and ``max_class_bytes`` the bytes of names they hold together;
    * ``max_exports``: objects this side holds for the peer (every reference it was sent and
      did not release yet);
    * ``max_concurrency``: the peer's messages running at once; a handler waiting for a
      remote answer gives its place to the next, and running and waiting handlers together
      (threads or tasks) are at most four times this. More wait in a queue of at most
      ``max_queued``, and beyond that are answered with :class:`~tether.Busy`;
    * ``max_kept_answers``: the peer's calls whose answers this side keeps at once for messages
      pipelined on them (until the peer drops them); a call asking for more is answered with
      :class:`~tether.Busy`. Messages waiting for a kept answer count in ``max_queued``;
    * ``max_gifts``: gifts the peer may have deposited here at once for third parties to
      withdraw (three-party handoff, ``tether.gifts``; each lives at most 300 s), and handoffs
      this side resolves at once for descriptors the peer sent (more fall back to forwarding).
    """

    memory_factor: int = 48
    memory_floor: int = 1 << 20
    max_items: int = 1 << 20
    max_same_hash: int = 16
    max_class_infos: int = 4096
    max_class_bytes: int = 8 << 20
    max_exports: int = 65536
    max_concurrency: int = 256
    max_queued: int = 65536
    max_kept_answers: int = 4096
    max_gifts: int = 1024

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"Limits.{name} must be a positive int, not {value!r}")
