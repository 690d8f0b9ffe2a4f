"""The vat's gift table (tether.gifts) and the recipient's steps (tether.handoff.resolve),
without a network: single use, binding, expiry, bounds, and a withdrawal that comes before its
deposit (the two travel different links) is retried until the deposit is there."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace
from typing import Any

import pytest

from tether.exceptions import GiftRefused, ProtocolError
from tether.gifts import Handoff, Vat, handoff_key
from tether.handoff import Dial, Pause, Withdraw, register, resolve


def test_a_gift_is_handed_over_once_to_its_secret_only() -> None:
    vat, obj, secret = Vat(), object(), os.urandom(32)
    vat.deposit(b"g" * 16, obj, handoff_key(secret), 60, depositor=1, limit=10)
    with pytest.raises(GiftRefused):
        vat.withdraw(b"g" * 16, os.urandom(32))
    assert len(vat) == 1, "a wrong secret does not burn the gift"
    assert vat.withdraw(b"g" * 16, secret) is obj
    with pytest.raises(GiftRefused):
        vat.withdraw(b"g" * 16, secret)
    assert len(vat) == 0 and vat.withdrawn == 1


def test_gifts_expire_and_free_their_depositors_room() -> None:
    vat, secret = Vat(), os.urandom(32)
    vat.deposit(b"a" * 16, object(), handoff_key(secret), 0.05, depositor=1, limit=1)
    with pytest.raises(ProtocolError, match="max_gifts"):
        vat.deposit(b"b" * 16, object(), handoff_key(secret), 60, depositor=1, limit=1)
    vat.deposit(b"c" * 16, object(), handoff_key(secret), 60, depositor=2, limit=1)  # another depositor
    time.sleep(0.1)
    with pytest.raises(GiftRefused):
        vat.withdraw(b"a" * 16, secret)
    vat.deposit(b"b" * 16, object(), handoff_key(secret), 60, depositor=1, limit=1)
    assert len(vat) == 2


def test_a_lifetime_is_clamped_and_ids_are_used_once() -> None:
    vat, secret = Vat(), os.urandom(32)
    vat.deposit(b"a" * 16, object(), handoff_key(secret), 10**9, depositor=1, limit=5)
    assert vat._gifts[b"a" * 16].expires - time.monotonic() <= 300
    with pytest.raises(ProtocolError, match="used once"):
        vat.deposit(b"a" * 16, object(), handoff_key(secret), 60, depositor=1, limit=5)


class _Link:
    """A connection to the owner's vat, as far as resolve() looks at one."""

    closed = False


def _session(vat: Vat, secret: bytes | None) -> Any:
    protocol = SimpleNamespace(handoff_secret=secret, vat=vat)
    return SimpleNamespace(protocol=protocol)


def test_a_withdrawal_before_its_deposit_is_retried_until_the_deposit_comes() -> None:
    owner, secret = Vat(), os.urandom(32)
    link = _Link()
    register(link, owner.id)
    try:
        steps = resolve(_session(Vat(), secret), Handoff(owner.id, None, b"g" * 16, "fallback"), 5.0)
        step = next(steps)
        assert type(step) is Withdraw and step.session is link and step.secret == secret
        step = steps.throw(GiftRefused("not yet"))
        assert type(step) is Pause
        owner.deposit(b"g" * 16, "the object", handoff_key(secret), 60, depositor=1, limit=5)
        step = steps.send(None)
        assert type(step) is Withdraw
        with pytest.raises(StopIteration) as done:
            steps.send(owner.withdraw(step.gift, step.secret))
        assert done.value.value == "the object"
    finally:
        link.closed = True


def test_an_unknown_vat_without_a_url_or_past_the_deadline_gives_the_fallback() -> None:
    secret = os.urandom(32)
    steps = resolve(_session(Vat(), secret), Handoff(os.urandom(16), None, b"g" * 16, "fallback"), 5.0)
    with pytest.raises(StopIteration) as done:
        next(steps)
    assert done.value.value is None
    steps = resolve(_session(Vat(), secret), Handoff(os.urandom(16), "ws://127.0.0.1:9/", b"g" * 16, "fallback"), 5.0)
    assert type(next(steps)) is Dial
    with pytest.raises(StopIteration) as done:
        steps.throw(ConnectionRefusedError())
    assert done.value.value is None
    steps = resolve(_session(Vat(), secret), Handoff(os.urandom(16), "ws://127.0.0.1:9/", b"g" * 16, "fallback"), 5.0)
    with pytest.raises(StopIteration):
        next(steps)  # that URL failed a moment ago: not tried again


def test_this_processs_own_vat_is_withdrawn_from_without_a_connection() -> None:
    mine, secret = Vat(), os.urandom(32)
    mine.deposit(b"g" * 16, "the object", handoff_key(secret), 60, depositor=1, limit=5)
    steps = resolve(_session(mine, secret), Handoff(mine.id, None, b"g" * 16, "fallback"), 5.0)
    with pytest.raises(StopIteration) as done:
        next(steps)
    assert done.value.value == "the object"
