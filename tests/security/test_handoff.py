"""Hostile cases of three-party handoff (``docs/protocol.md`` 4.5, section 7 ``deposit_gift``
and ``withdraw_gift``). As the owner, a server hands a gift only to the holder of the secret it
was bound to, once, before it expires, and keeps only gifts of objects it exposes to the
depositor, a bounded number of them. As a recipient, a forged descriptor cannot make it use a
connection to anyone but the vat named, nor stall it beyond its bound, nor break the connection."""

from __future__ import annotations

import hashlib
import os
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest

import tether
import tether.handoff
import tether.session
from tether.codec import Decoder
from tether.gifts import VAT
from tether.proxy import _state

from ..native.test_processes import start_server
from .conftest import still_answers
from .wire import Marker, RawPeer, array, integer, message, mine, nil, raw_bytes, string, words, yours

HANDOFF = 0x20000123
FLOAT = 0x20000102


def deposit(raw: RawPeer, gift: bytes, obj: bytes, secret: bytes, seconds: float | int = 60) -> Any:
    """Deposit as a call (a real introducer sends it one-way), to read the outcome."""
    binding = hashlib.sha256(secret).digest()
    return raw.call(yours(0), "deposit_gift", raw_bytes(gift), obj, raw_bytes(binding), integer(int(seconds)))


def withdraw(raw: RawPeer, gift: bytes, secret: bytes) -> Any:
    return raw.call(yours(0), "withdraw_gift", raw_bytes(gift), raw_bytes(secret))


def descriptor(vat: bytes, gift: bytes, url: str | None, fallback: bytes) -> bytes:
    return words(HANDOFF) + raw_bytes(vat) + raw_bytes(gift) + (nil() if url is None else string(url)) + fallback


@pytest.fixture
def python_raw(raw: RawPeer) -> Iterator[RawPeer]:
    raw.hello()
    yield raw


def test_a_gift_goes_once_to_the_holder_of_its_secret(python_raw: RawPeer) -> None:
    raw = python_raw
    gift, secret = os.urandom(16), os.urandom(32)
    assert deposit(raw, gift, yours(raw.root), secret) is None
    with pytest.raises(tether.GiftRefused):
        withdraw(raw, gift, os.urandom(32))  # a wrong secret: refused, and the gift stays
    taken = withdraw(raw, gift, secret)
    assert isinstance(taken, (Marker, bytes))  # a reference to the server's root
    with pytest.raises(tether.GiftRefused):
        withdraw(raw, gift, secret)  # replayed
    still_answers(raw)


def test_a_guessed_gift_is_refused(python_raw: RawPeer) -> None:
    for _ in range(20):
        with pytest.raises(tether.GiftRefused):
            withdraw(python_raw, os.urandom(16), os.urandom(32))
    still_answers(python_raw)


def test_only_an_object_exposed_to_the_depositor_can_be_a_gift(python_raw: RawPeer) -> None:
    raw = python_raw
    for obj in (yours(0), mine(7), integer(5), string("x")):  # its Tether, our own object, values
        with pytest.raises(tether.ProtocolError, match="objects this side exposes"):
            deposit(raw, os.urandom(16), obj, os.urandom(32))
    still_answers(raw)


def test_a_gift_expires(python_raw: RawPeer) -> None:
    raw = python_raw
    gift, secret = os.urandom(16), os.urandom(32)
    binding = hashlib.sha256(secret).digest()
    raw.call(yours(0), "deposit_gift", raw_bytes(gift), yours(raw.root), raw_bytes(binding), words(FLOAT) + struct.pack(">d", 0.05))
    time.sleep(0.1)
    with pytest.raises(tether.GiftRefused):
        withdraw(raw, gift, secret)


@pytest.mark.parametrize(
    "args",
    [
        [raw_bytes(b"short"), "root", raw_bytes(b"b" * 32), integer(60)],
        ["gift", "root", raw_bytes(b"short"), integer(60)],
        ["gift", "root", raw_bytes(b"b" * 32), integer(0)],
        ["gift", "root", string("not bytes"), integer(60)],
    ],
    ids=["short gift id", "short binding", "no lifetime", "binding not bytes"],
)
def test_malformed_deposits_are_refused_and_the_connection_lives(python_raw: RawPeer, args: list[Any]) -> None:
    raw = python_raw
    parts = [raw_bytes(os.urandom(16)) if a == "gift" else yours(raw.root) if a == "root" else a for a in args]
    with pytest.raises(tether.ProtocolError):
        raw.call(yours(0), "deposit_gift", *parts)
    with pytest.raises(tether.ProtocolError):
        raw.call(yours(0), "withdraw_gift", raw_bytes(b"short"), raw_bytes(b"s" * 32))
    still_answers(raw)


def test_a_depositor_holds_at_most_max_gifts() -> None:
    with tether.serve(lambda peer: _Root(), port=0, limits=tether.Limits(max_gifts=3)) as server, RawPeer(server.url) as raw:
        raw.hello()
        secrets = [os.urandom(32) for _ in range(4)]
        gifts = [os.urandom(16) for _ in range(4)]
        for gift, secret in zip(gifts[:3], secrets[:3], strict=True):
            deposit(raw, gift, yours(raw.root), secret)
        with pytest.raises(tether.ProtocolError, match="max_gifts"):
            deposit(raw, gifts[3], yours(raw.root), secrets[3])
        withdraw(raw, gifts[0], secrets[0])  # one taken: room for one more
        deposit(raw, gifts[3], yours(raw.root), secrets[3])
        still_answers(raw)


class _Root:
    def add(self, a: int, b: int) -> int:
        return a + b

    def echo(self, x: Any) -> Any:
        return x


def _server_vat(raw: RawPeer) -> bytes:
    answer = raw.call(yours(0), "hello", array(string("language"), string("python")))
    info = answer if isinstance(answer, list) else Decoder(answer).read_object()
    pairs = dict(zip(info[::2], info[1::2], strict=True))
    vat = pairs["vat"]
    assert isinstance(vat, bytes) and len(vat) == 16 and vat == VAT.id  # the server runs in this process
    return vat


def test_a_forged_descriptor_for_the_servers_own_vat_falls_back(raw: RawPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tether.session, "HANDOFF_SECONDS", 0.3)
    vat = _server_vat(raw)
    answer = raw.call_root("echo", descriptor(vat, os.urandom(16), None, mine(9)))
    assert answer == yours(9), "the fallback, our own object 9, came back to us"
    still_answers(raw)


def test_a_forged_descriptor_cannot_lead_to_another_vat(raw: RawPeer, server: tether.Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The descriptor names a vat nobody has and the server's own URL: the server connects,
    sees the wrong vat in hello, closes that connection and uses the fallback."""
    monkeypatch.setattr(tether.session, "HANDOFF_SECONDS", 1.0)
    raw.hello()
    before = len(server.peers)
    exchange_id = raw.new_id()
    raw.send(message(exchange_id, yours(raw.root), "echo", [descriptor(os.urandom(16), os.urandom(16), server.url, mine(9))]))
    answer = raw.result(exchange_id, timeout=5)
    assert answer == yours(9), "the fallback, our own object 9, came back to us"
    deadline = time.monotonic() + 3
    while len(server.peers) > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(server.peers) == before, "the connection to the wrong vat was closed"
    still_answers(raw)


@pytest.mark.parametrize(
    "fields",
    [
        (b"v" * 15, b"g" * 16, None),
        (b"v" * 16, b"g" * 17, None),
        (b"v" * 16, b"g" * 16, "http://127.0.0.1:1/"),
        (b"v" * 16, b"g" * 16, "ws://" + "x" * 3000),
    ],
    ids=["short vat", "long gift", "not a WebSocket URL", "URL too long"],
)
def test_malformed_descriptors_are_decode_errors_and_the_connection_lives(raw: RawPeer, fields: tuple[bytes, bytes, str | None]) -> None:
    exchange_id = raw.new_id()
    raw.send(message(exchange_id, yours(raw.root), "echo", [descriptor(*fields, mine(3))]))
    with pytest.raises(tether.ProtocolError, match="handoff"):
        raw.result(exchange_id)
    still_answers(raw)


def test_a_peer_that_asked_for_forwarding_is_never_introduced() -> None:
    """handoff="forward" on the recipient: its hello has no handoff_key, so no descriptor."""
    items = [1]
    with tether.serve(_Holder(tether.by_reference(items)), port=0) as b, tether.connect(b.url) as ab:
        remote_items = ab.root.get()
        with tether.serve(_Holder(remote_items), port=0) as a:
            with tether.connect(a.url) as c:
                assert c.root.get() is items, "introduced: the list itself (this process owns it)"
            with tether.connect(a.url, handoff="forward") as c:
                got = c.root.get()
                assert "handoff_key" not in a.peers[-1].session.protocol.peer_info
                assert got is not items and _state(got).session is c.session, "forwarded through A"
                assert got[0] == 1


class _Holder:
    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def get(self) -> Any:
        return self.obj



def test_forged_descriptors_cannot_keep_connections_open(
    raw: RawPeer, server: tether.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A descriptor naming a real owner (its vat and URL: another process) but a gift never
    deposited makes this side connect and withdraw in vain; the connection it opened then
    closes, so forged descriptors cannot use up the connections kept for handoffs
    (tether.handoff.MAX_DIALED)."""
    monkeypatch.setattr(tether.handoff, "IDLE_SECONDS", 2.0)  # (after the withdrawals give up)
    monkeypatch.setattr(tether.session, "HANDOFF_SECONDS", 0.5)
    proc, owner_url = start_server("tests.native.vats:make_node")
    try:
        with tether.connect(owner_url) as probe:
            owner_vat = probe.root.vat()
        raw.hello()
        exchange_id = raw.new_id()
        raw.send(message(exchange_id, yours(raw.root), "echo", [descriptor(owner_vat, os.urandom(16), owner_url, mine(9))]))
        assert raw.result(exchange_id, timeout=5) == yours(9), "no gift: the fallback"
        opened = tether.handoff.connection_to(owner_vat)
        assert opened is not None and opened.dialed, "the server connected to the owner"
        deadline = time.monotonic() + 5
        while not opened.closed and time.monotonic() < deadline:
            time.sleep(0.02)
        assert opened.closed, "holding nothing, that connection closed"
        still_answers(raw)
    finally:
        proc.kill()
        proc.wait(5)
