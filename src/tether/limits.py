"""The bounds on what one peer can make this side spend, in one object.

Every resource a peer's frames can make us spend has a bound here, with a default that a normal
application never meets; a frame or call over a bound gets a clear error (an error answer when
the frame was a message-send, else the connection closes with a protocol error) and nothing
else is lost. Pass ``limits=tether.Limits(...)`` to ``serve`` or ``connect`` to change them; the
frame size has its own option, ``max_frame_size``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from .exceptions import DecodeError

__all__ = ["DEFAULT_PAUSE_READING_ABOVE", "HELD_READING_LOOK", "Limits", "check_keys"]

DEFAULT_PAUSE_READING_ABOVE = 4 * 2**20
"""Bytes of frames not yet written to a peer above which a connection stops reading from it
until they are (the ``transport=`` setting ``pause_reading_above``): what a peer that sends
calls but never reads their answers can make us hold."""

HELD_READING_LOOK = 0.005
"""Seconds between a held reader's looks at whether it may read again (past
``pause_reading_above``, on the threading face)."""


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
      ``max_queued`` messages and ``max_queued_bytes`` bytes of their frames (one message
      always fits), and beyond that are answered with :class:`~tether.Busy`;
    * ``max_kept_answers``: the peer's calls whose answers this side keeps at once for messages
      pipelined on them (until the peer drops them); a call asking for more is answered with
      :class:`~tether.Busy`. Messages waiting for a kept answer have a ``max_queued`` and a
      ``max_queued_bytes`` of their own;
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
    max_queued_bytes: int = 64 << 20
    max_kept_answers: int = 4096
    max_gifts: int = 1024

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"Limits.{name} must be a positive int, not {value!r}")


_HASH_MODULUS = sys.hash_info.modulus  # integer hashes are taken modulo this (2**61 - 1; 2**31 - 1 in Pyodide)


def check_keys(keys: list[Any], what: str, limit: int, building: set[int] | frozenset[int], pos: int) -> None:
    """Check that the keys of a Dict or Set read from a frame (the codec, at byte ``pos``) can be
    hashed here safely, before any is inserted.

    Refused: unhashable keys, remote objects (their hash lives on the peer), objects whose
    state is still being read (``building``: no user method runs on a half-built object), and
    more than ``limit`` (``Limits.max_same_hash``) keys with one hash (colliding keys make
    inserting quadratic).
    """
    counts: dict[int, int] | None = None
    for i, key in enumerate(keys):
        t = type(key)
        if t is str or t is bytes:  # hashes randomized per process: cannot be made to collide
            continue
        if t is int and -_HASH_MODULUS < key < _HASH_MODULUS:
            continue  # hash(k) is k itself here (but -1 and -2): distinct keys, distinct hashes
        if getattr(t, "__tether_proxy__", False):
            raise DecodeError(
                f"{what} is a remote object: its hash lives on the peer, so it cannot be a key here",
                pos,
            ).prefixed(f"[{i}]")
        if id(key) in building:
            raise DecodeError(f"{what} is an object whose state is still being read (a cycle)", pos).prefixed(
                f"[{i}]"
            )
        try:
            h = hash(key)
        except TypeError:
            raise DecodeError(f"{what} is unhashable ({t.__name__})", pos).prefixed(f"[{i}]") from None
        except Exception as exc:
            raise DecodeError(f"{what} cannot be hashed: {exc!r}", pos).prefixed(f"[{i}]") from None
        if counts is None:
            counts = {}
        n = counts[h] = counts.get(h, 0) + 1
        if n > limit:
            raise DecodeError(
                f"more than {limit} keys of one {what.split()[0]} share the hash {h} (hash "
                "flooding); the limit is Limits.max_same_hash",
                pos,
            )
