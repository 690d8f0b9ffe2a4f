"""Three-party handoff, the core of it: this process's vat (its identity and the gifts deposited
with it) and the handoff descriptor on the wire (``docs/protocol.md`` section 5.5).

When A sends C a reference to an object that lives on B, A can *introduce* C to B instead of
forwarding every call: A deposits a gift for the object with B (a one-way ``deposit_gift``
message on the A-B connection: a random 16-byte gift id, the object, and a binding to C), and
writes C a handoff descriptor (B's vat id and advertised URL, the gift id, and a reference to
A's own proxy as a fallback). C connects to B (or uses a connection it has) and withdraws the
gift with ``withdraw_gift(gift id, secret)``: B checks that the SHA-256 of the secret is the
binding A deposited, hands the object over once, and forgets the gift. The secret is C's own,
made for its connection to A; A learned only its hash (C's hello says ``handoff_key``), so the
descriptor is worth nothing to anyone but C.

A :class:`Vat` is one per process (:data:`VAT`): what B keeps. The descriptor's reader is
registered with the codec here; what a connection does with a descriptor is
:meth:`tether.references.References.handoff`.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from .codec import Decoder, register_reader, write_bytes, write_str
from .exceptions import DecodeError, GiftRefused, ProtocolError
from .words import TAG_BYTEARRAY, TAG_HANDOFF, TAG_NIL, TAG_STRING, pack_word

__all__ = [
    "GIFT_ID_SIZE",
    "MAX_GIFT_SECONDS",
    "SECRET_SIZE",
    "VAT",
    "VAT_ID_SIZE",
    "Handoff",
    "Vat",
    "handoff_key",
    "write_handoff",
]

VAT_ID_SIZE = 16
GIFT_ID_SIZE = 16
SECRET_SIZE = 32
MAX_GIFT_SECONDS = 300.0  # a deposited gift is kept at most this long, whatever the depositor asked
_MAX_URL = 2048


def handoff_key(secret: bytes) -> bytes:
    """The binding a depositor writes for a recipient: SHA-256 of the recipient's secret."""
    return hashlib.sha256(secret).digest()


class _Gift:
    __slots__ = ("binding", "depositor", "expires", "obj")

    def __init__(self, obj: object, binding: bytes, expires: float, depositor: int) -> None:
        self.obj = obj
        self.binding = binding
        self.expires = expires
        self.depositor = depositor


class Vat:
    """This process as a party to handoffs: its random id (``id``, 16 bytes, sent in hello) and
    the gifts others deposited with it, each kept until withdrawn or expired. Bounds: a
    depositing connection holds at most ``Limits.max_gifts`` gifts here at once; a gift lives at
    most :data:`MAX_GIFT_SECONDS`."""

    def __init__(self, vat_id: bytes | None = None) -> None:
        self.id = vat_id if vat_id is not None else os.urandom(VAT_ID_SIZE)
        self._lock = threading.Lock()
        self._gifts: dict[bytes, _Gift] = {}
        self._per_depositor: dict[int, int] = {}
        self.withdrawn = 0  # gifts handed over so far (for tests and stats)

    def __len__(self) -> int:
        """The gifts held now (expired ones are dropped first)."""
        with self._lock:
            self._sweep(time.monotonic())
            return len(self._gifts)

    def deposit(self, gift_id: bytes, obj: object, binding: bytes, seconds: float, depositor: int, limit: int) -> None:
        """Keep ``obj`` for whoever presents the secret whose hash is ``binding``, for at most
        ``seconds`` (clamped to :data:`MAX_GIFT_SECONDS`). ``depositor`` names the depositing
        connection (its bound is ``limit`` gifts at once). Raises ProtocolError on a malformed
        gift, a gift id in use, or a depositor over its bound."""
        if type(gift_id) is not bytes or len(gift_id) != GIFT_ID_SIZE:
            raise ProtocolError(f"a gift id is {GIFT_ID_SIZE} bytes (a ByteArray)")
        if type(binding) is not bytes or len(binding) != 32:
            raise ProtocolError("a gift's binding is the 32-byte SHA-256 of the recipient's secret")
        if type(seconds) not in (int, float) or not 0 < seconds:
            raise ProtocolError("a gift's lifetime is a number of seconds above 0")
        now = time.monotonic()
        with self._lock:
            self._sweep(now)
            if gift_id in self._gifts:
                raise ProtocolError("a gift with this id is held already: gift ids are random and used once")
            held = self._per_depositor.get(depositor, 0)
            if held >= limit:
                raise ProtocolError(
                    f"the depositor holds {held} gifts here, the limit (Limits.max_gifts): they are "
                    "kept until withdrawn or expired"
                )
            self._gifts[gift_id] = _Gift(obj, binding, now + min(float(seconds), MAX_GIFT_SECONDS), depositor)
            self._per_depositor[depositor] = held + 1

    def withdraw(self, gift_id: bytes, secret: bytes) -> object:
        """Hand over the gift ``gift_id`` to the holder of ``secret``, once. Raises
        :class:`GiftRefused` when there is no such gift for that secret (the gift stays for its
        recipient when the secret is wrong)."""
        if type(gift_id) is not bytes or len(gift_id) != GIFT_ID_SIZE or type(secret) is not bytes or len(secret) != SECRET_SIZE:
            raise ProtocolError(
                f"withdraw_gift takes a {GIFT_ID_SIZE}-byte gift id and a {SECRET_SIZE}-byte secret (ByteArrays)"
            )
        binding = handoff_key(secret)
        with self._lock:
            self._sweep(time.monotonic())
            gift = self._gifts.get(gift_id)
            if gift is None or gift.binding != binding:
                raise GiftRefused(
                    "no gift with this id is held here for this recipient (not deposited yet, "
                    "withdrawn already, expired, or meant for someone else)"
                )
            del self._gifts[gift_id]
            self._forget(gift.depositor)
            self.withdrawn += 1
            return gift.obj

    def _sweep(self, now: float) -> None:
        expired = [gift_id for gift_id, gift in self._gifts.items() if gift.expires <= now]
        for gift_id in expired:
            self._forget(self._gifts.pop(gift_id).depositor)

    def _forget(self, depositor: int) -> None:
        left = self._per_depositor[depositor] - 1
        if left:
            self._per_depositor[depositor] = left
        else:
            del self._per_depositor[depositor]


VAT = Vat()  # this process


@dataclass(frozen=True, slots=True)
class Handoff:
    """A handoff descriptor as read: the object is ``vat``'s (reachable at ``url``, or ``None``
    when only a connection this side already has to that vat will do), waiting as gift ``gift``;
    ``fallback`` is the introducer's proxy for it (a proxy of the connection the descriptor came
    on), used when the gift cannot be had."""

    vat: bytes
    url: str | None
    gift: bytes
    fallback: Any


def write_handoff(out: bytearray, vat: bytes, url: str | None, gift: bytes) -> None:
    """Write the head of a handoff descriptor (the caller writes the fallback reference after)."""
    out += pack_word(TAG_HANDOFF)
    write_bytes(out, TAG_BYTEARRAY, vat)
    write_bytes(out, TAG_BYTEARRAY, gift)
    if url is None:
        out += pack_word(TAG_NIL)
    else:
        write_str(out, TAG_STRING, url)


def _r_handoff(d: Decoder) -> object:
    start = d.pos - 4
    vat = d.read_object()
    gift = d.read_object()
    url = d.read_object()
    if type(vat) is not bytes or len(vat) != VAT_ID_SIZE:
        raise DecodeError(f"a handoff names a vat by {VAT_ID_SIZE} bytes (a ByteArray)", start)
    if type(gift) is not bytes or len(gift) != GIFT_ID_SIZE:
        raise DecodeError(f"a handoff names its gift by {GIFT_ID_SIZE} bytes (a ByteArray)", start)
    if url is not None and (type(url) is not str or len(url) > _MAX_URL or not url.startswith(("ws://", "wss://"))):
        raise DecodeError(f"a handoff's URL is nil or a ws:// or wss:// String of at most {_MAX_URL} bytes", start)
    fallback = d.read_object()
    hooks: Any = d.refs
    if hooks is None or not hasattr(hooks, "handoff"):
        raise DecodeError("a handoff where only values may appear", start)
    return hooks.handoff(Handoff(vat, url, gift, fallback))


register_reader(TAG_HANDOFF, _r_handoff)
