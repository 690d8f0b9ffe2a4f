"""Three-party handoff, the recipient's part: which connection leads to a vat, and the steps
that resolve one handoff descriptor (``docs/protocol.md`` 5.5; the core is ``tether.gifts``).

Resolving is written once, as a generator of steps (:func:`resolve`): it yields
:class:`Dial` (open a connection to a URL), :class:`Withdraw` (ask a connection's Tether for a
gift) and :class:`Pause` (wait a little before asking again), and each runtime only performs
the steps: the threading one by blocking in a worker thread, the asyncio one by awaiting in a
task. A step that fails is thrown back into the generator.

What a recipient does with a descriptor for the object of vat V, gift G:

1. V is this process: take G from this process's own vat (the object itself: identity holds).
2. Else a connection to V is open (either side may have opened it): withdraw G over it, so the
   object arrives as that connection's proxy for it (one proxy per remote object).
3. Else, when the descriptor names a URL that is not known to fail, connect to it (at most one
   connection per vat is being opened at a time) and check that the peer's hello names V. At
   most :data:`MAX_DIALED` such connections are open at once; one that holds nothing (no
   proxy, nothing exposed, no call) for :data:`IDLE_SECONDS` closes.
4. Ask V's Tether for G (``withdraw_gift``); G may not be there yet (its deposit and the
   descriptor travel different links): ask again with growing pauses until the deadline.

Any failure gives ``None``: the descriptor's fallback, the introducer's proxy, is used (calls
are forwarded by the introducer).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from .exceptions import GiftRefused
from .gifts import Handoff

__all__ = [
    "GIFT_SECONDS",
    "HANDOFF_SECONDS",
    "IDLE_SECONDS",
    "MAX_DIALED",
    "UNREACHABLE_SECONDS",
    "Dial",
    "Pause",
    "Step",
    "Withdraw",
    "advance",
    "connection_to",
    "dialed",
    "register",
    "resolve",
    "send_deposits",
]

HANDOFF_SECONDS = 10.0  # a held frame waits at most this long for its handoffs, then uses the fallbacks
GIFT_SECONDS = 60.0  # how long an owner keeps a gift this side deposits with it for a recipient
UNREACHABLE_SECONDS = 30.0
MAX_DIALED = 64  # connections this process keeps open that it opened for handoffs; beyond, forward
IDLE_SECONDS = 30.0  # such a connection that holds nothing (no proxy, nothing exposed) closes after this  # a URL that could not be reached is not tried again for this long

log = logging.getLogger("tether")
_lock = threading.Lock()
_by_vat: dict[bytes, list[weakref.ref[Any]]] = {}
_unreachable: dict[str, float] = {}  # URL -> until when it is not tried
_dialed: weakref.WeakSet[Any] = weakref.WeakSet()  # sessions opened for handoffs


@dataclass(frozen=True, slots=True)
class Dial:
    """Give a session on a connection to vat ``vat``: an open one, else a new client connection
    to ``url`` (exposing nothing), one dial per vat at a time. A new connection whose hello does
    not name ``vat`` is closed and the step fails."""

    url: str
    vat: bytes


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Call ``withdraw_gift(gift, secret)`` on ``session``'s peer, waiting at most until
    ``deadline`` (``time.monotonic()``); give the answer."""

    session: Any
    gift: bytes
    secret: bytes
    deadline: float


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float


Step = Dial | Withdraw | Pause


def register(session: Any, vat: bytes) -> None:
    """``session`` is a connection to vat ``vat`` (its hello said so)."""
    with _lock:
        refs = [ref for ref in _by_vat.get(vat, ()) if (s := ref()) is not None and not s.closed]
        refs.append(weakref.ref(session))
        _by_vat[vat] = refs


def connection_to(vat: bytes) -> Any:
    """The oldest open connection to vat ``vat`` that has said hello, or ``None``."""
    with _lock:
        refs = _by_vat.get(vat, ())
        for ref in refs:
            session = ref()
            if session is not None and not session.closed:
                return session
        _by_vat.pop(vat, None)
    return None


def dialed(session: Any) -> None:
    """``session`` was opened for a handoff: it counts against :data:`MAX_DIALED`, and closes
    when it has held nothing for :data:`IDLE_SECONDS` (``BaseSession._close_if_idle``)."""
    session.dialed = True
    with _lock:
        _dialed.add(session)
    # Looked at once now, and again whenever it releases proxies: a connection whose withdrawal
    # got nothing (and whose peer serves no root) would otherwise never be looked at.
    session._later(IDLE_SECONDS, session._close_if_idle)


def _may_dial() -> bool:
    with _lock:
        return sum(1 for session in _dialed if not session.closed) < MAX_DIALED


def _known_unreachable(url: str) -> bool:
    with _lock:
        until = _unreachable.get(url)
        if until is None:
            return False
        if until > time.monotonic():
            return True
        del _unreachable[url]
        return False


def _mark_unreachable(url: str) -> None:
    with _lock:
        if len(_unreachable) >= 1024:
            _unreachable.clear()
        _unreachable[url] = time.monotonic() + UNREACHABLE_SECONDS


def resolve(session: Any, handoff: Handoff, seconds: float) -> Generator[Step, Any, object]:
    """The steps that resolve ``handoff``, read on ``session``, within ``seconds``: the object
    withdrawn, or ``None`` for the fallback. Performs no I/O itself (see the module docstring)."""
    protocol = session.protocol
    secret = protocol.handoff_secret
    deadline = time.monotonic() + seconds
    if secret is None:
        return None
    vat = protocol.vat
    target = None
    if handoff.vat != vat.id:
        target = connection_to(handoff.vat)
        if target is session:
            return None  # the introducer names itself: its own reference, the fallback, is it
        if target is None:
            if handoff.url is None or _known_unreachable(handoff.url) or not _may_dial():
                return None
            try:
                target = yield Dial(handoff.url, handoff.vat)
            except Exception:  # unreachable, refused, or someone else listens there
                _mark_unreachable(handoff.url)
                return None
    pause = 0.005
    while True:
        try:
            if target is None:
                return vat.withdraw(handoff.gift, secret)
            return (yield Withdraw(target, handoff.gift, secret, deadline))
        except GiftRefused:
            pass  # its deposit may still be on its way
        except Exception:
            return None
        if time.monotonic() + pause > deadline:
            return None
        yield Pause(pause)
        pause = min(pause * 2, 0.2)


def advance(steps: Generator[Step, Any, object], value: Any, error: BaseException | None, where: str) -> tuple[bool, Any]:
    """Send the last step's result (or throw its failure) into ``steps``: (True, the next
    step), or (False, what the resolution gave: ``None`` if it failed unexpectedly, which is
    logged naming ``where``)."""
    try:
        step: Step = steps.throw(error) if error is not None else steps.send(value)
    except StopIteration as stop:
        return False, stop.value
    except Exception:
        log.exception("resolving a handoff from %s failed", where)
        return False, None
    return True, step


def send_deposits(deposits: list[tuple[Any, bytes, object, bytes]]) -> None:
    """A frame just queued introduces its peer to proxies of other connections: deposit a gift
    for each with its owner (a one-way ``deposit_gift`` on the session the proxy belongs to),
    before that frame is sent. A deposit that cannot be sent is logged: its recipient's
    withdrawal fails, and it uses the fallback."""
    for session, gift, proxy, binding in deposits:
        protocol = session.protocol
        key = protocol.peer_tether_key
        if key is None or session.closed:
            continue
        try:
            protocol.queue_call(key, "deposit_gift", (gift, proxy, binding, GIFT_SECONDS))
        except Exception as exc:
            log.warning("could not deposit a gift with %s: %s", session.describe(), exc)
            continue
        session._flush()
