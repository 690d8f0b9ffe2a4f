"""What one peer can make the server spend: every bound of tether.Limits (and the frame size)
refuses with an error that names it, the connection lives on, and what the server keeps for
the peer stays bounded."""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

import tether
from tether.protocol import Incoming, Opened, Protocol
from tether.proxy import make_proxy

from .conftest import server_still_answers, still_answers
from .services import Root, make_root
from .wire import (
    ARRAY,
    BYTEARRAY,
    FROZENSET,
    FUNCTION,
    SET,
    SLICE,
    SMALLINT,
    STRING,
    RawPeer,
    answer,
    array,
    by_value,
    by_value_again,
    compact,
    described,
    dict_,
    frozenset_,
    integer,
    message,
    named,
    nil,
    set_,
    string,
    tuple_,
    words,
    yours,
)

MODULE = "tests.security.services"
MERSENNE = 2**61 - 1  # hash(k * MERSENNE) == 0 for every int k: Python's int hash is not randomized


def session_of(server: tether.Server, raw: RawPeer) -> Any:
    """The server's session for this raw peer's connection (found by the peer's port)."""
    port = raw.ws.local_address[1]
    (peer,) = [p for p in server.peers if (p.session.url or "").endswith(f":{port}")]
    return peer.session


# -- hash flooding --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("container", "make"),
    [
        ("Dict", lambda keys: dict_(*[(k, nil()) for k in keys])),
        ("Set", lambda keys: set_(*keys)),
        ("FrozenSet", lambda keys: frozenset_(*keys)),
        ("Dict", lambda keys: dict_(*[(tuple_(k), nil()) for k in keys])),  # tuples of colliding ints collide
    ],
    ids=["Dict", "Set", "FrozenSet", "Dict of Tuple keys"],
)
def test_seventeen_integer_keys_with_one_hash_are_refused(
    raw: RawPeer, container: str, make: Callable[[list[bytes]], bytes]
) -> None:
    keys = [integer(k * MERSENNE) for k in range(1, 18)]
    with pytest.raises(tether.ProtocolError, match=rf"more than 16 keys of one {container} share the hash -?\d+ \(hash flooding\)"):
        raw.call_root("echo", make(keys))
    still_answers(raw)


def test_colliding_decimal_keys_by_value_are_refused_too(raw: RawPeer) -> None:
    first = by_value(1, "decimal", "Decimal", tuple_(string(str(MERSENNE))))
    others = [by_value_again(1, tuple_(string(str(k * MERSENNE)))) for k in range(2, 18)]
    with pytest.raises(tether.ProtocolError, match=r"more than 16 keys of one Dict share the hash 0"):
        raw.call_root("echo", dict_(*[(k, nil()) for k in [first, *others]]))
    still_answers(raw)


# -- memory per frame byte ------------------------------------------------------------------


def test_a_frame_of_reference_markers_is_refused_before_it_makes_a_proxy_per_word(
    server: tether.Server, raw: RawPeer
) -> None:
    markers = words(ARRAY, 100_000, *range(0x60000001, 0x60000001 + 100_000))  # 400 KB, 100,000 peer objects
    with pytest.raises(tether.ProtocolError, match=r"would make more than \d+ bytes of objects \(at a new proxy\)"):
        raw.call_root("echo", markers)
    still_answers(raw)
    assert len(session_of(server, raw).protocol.imports) < 50_000


def _protocol() -> Protocol:
    protocol = Protocol(client=False, root=Root(), proxy_factory=lambda key, info: make_proxy(None, key, info))  # type: ignore[arg-type]
    assert protocol.receive(words(0x60000000)) == [Opened(0)]
    protocol.data_to_send()
    return protocol


def _peak(protocol: Protocol, frame: bytes) -> tuple[int, list[Any]]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        events = protocol.receive(frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, events


def _ints(tag: int, n: int) -> bytes:
    return words(tag, n) + struct.pack(f">{n}I", *range(SMALLINT + 1000, SMALLINT + 1000 + n))


MEMORY = {
    "a Set of 20,000 distinct small ints": lambda: _ints(SET, 20_000),
    "a FrozenSet of 20,000 distinct small ints": lambda: _ints(FROZENSET, 20_000),
    "20,000 exceptions by value in the compact form": lambda: array(
        by_value(1, "builtins", "OSError", tuple_()), *[compact(1, tuple_(integer(1), integer(2)))] * 20_000
    ),
    "4,000 class info definitions": lambda: array(*[described(k, k, "m", f"C{k}") for k in range(1, 4001)]),
    "30,000 described references of one class": lambda: array(
        described(1, 1, "m", "C"), *[words(0x2000010A, 0x60000000 + k, 0x2000010C, 1) for k in range(2, 30_000)]
    ),
}


@pytest.mark.parametrize("make", list(MEMORY.values()), ids=list(MEMORY))
def test_a_frame_never_makes_more_than_the_memory_factor_allows(make: Callable[[], bytes]) -> None:
    """Measured with tracemalloc on the sans-I/O protocol: what decoding one adversarial frame
    allocates stays within max(memory_floor, memory_factor x frame bytes) (docs/security.md)."""
    limits = tether.Limits()
    protocol = _protocol()
    protocol.receive(message(b"W" * 16, yours(0), "fetch", [array(integer(1))]))  # warm up
    protocol.data_to_send()
    frame = message(b"M" * 16, yours(0), "fetch", [make()])
    peak, events = _peak(protocol, frame)
    bound = max(limits.memory_floor, limits.memory_factor * len(frame))
    assert peak <= bound, f"{peak} bytes for a frame of {len(frame)} ({peak / len(frame):.1f} per byte, bound {limits.memory_factor})"
    refused = protocol.data_to_send()
    assert events or refused, "the frame was neither read nor refused"
    (event,) = protocol.receive(message(b"N" * 16, yours(0), "root"))
    assert isinstance(event, Incoming) and event.message.selector == "root"  # the connection reads on


# -- class infos and class names ------------------------------------------------------------


def test_more_than_4096_class_infos_on_a_connection_are_refused(raw: RawPeer) -> None:
    infos = [described(k, k, "m", f"C{k}") for k in range(1, 4098)]
    with pytest.raises(tether.ProtocolError, match=r"the peer defined 4096 class infos .*Limits\.max_class_infos"):
        raw.call_root("echo", array(*infos))
    still_answers(raw)


def test_class_names_beyond_the_limit_are_refused_and_not_kept(server: tether.Server, raw: RawPeer) -> None:
    names = [by_value(k, "builtins", "ValueError", tuple_()) for k in range(1, 4098)]
    with pytest.raises(tether.ProtocolError, match=r"named 4096 classes on this connection, the limit \(Limits\.max_class_infos\)"):
        raw.call_root("echo", array(*names))
    for k in range(5000, 5100):  # one more name per frame
        with pytest.raises(tether.ProtocolError, match=r"Limits\.max_class_infos"):
            raw.call_root("echo", by_value(k, "builtins", "ValueError", tuple_()))
    kept = len(session_of(server, raw).protocol.references._peer_class_names)
    assert kept <= 4096, f"the server keeps {kept} class names for this peer, over Limits.max_class_infos"
    still_answers(raw)


def test_refused_class_names_are_not_kept(server: tether.Server, raw: RawPeer) -> None:
    """Each frame names a class that is refused, with a 256 KiB module name: 64 frames send
    16 MiB of names, none of which may stay on the server."""
    for k in range(1, 65):
        with pytest.raises(tether.ProtocolError, match=r"cannot be received: this side does not let untrusted peers"):
            raw.call_root("echo", by_value(k, f"m{k}" + "x" * 262_144, "C", dict_()))
    names = session_of(server, raw).protocol.references._peer_class_names.values()
    kept = sum(len(module) + len(qualname) for module, qualname, _ in names)
    assert kept < 1 << 20, f"the server keeps {kept} bytes of refused class names for this peer"
    still_answers(raw)


# -- exports --------------------------------------------------------------------------------


def test_an_answer_of_70000_references_is_refused_and_the_connection_can_still_be_sent_references(
    peer: tether.Peer,
) -> None:
    root = peer.root
    with pytest.raises(tether.EncodeError, match=r"holds 65536 objects for the peer, the limit \(Limits\.max_exports\)"):
        root.things(70_000)
    assert root.add(1, 2) == 3
    assert root.thing().poke() == "poked", "the references of the refused answer are still held for the peer"


def test_an_answer_that_fails_to_encode_leaves_no_reference_behind(server: tether.Server, raw: RawPeer) -> None:
    session = session_of(server, raw)
    before = len(session.protocol.exports)
    for _ in range(10):
        with pytest.raises(tether.EncodeError, match=r"a builtins\.frame cannot be sent to an untrusted peer"):
            raw.call_root("things_and_frame")
    held = len(session.protocol.exports) - before
    assert held == 0, f"the server holds {held} objects for the peer from answers it never sent"
    still_answers(raw)


# -- nesting in every form ------------------------------------------------------------------


def _nest(wrap: Callable[[bytes], bytes], depth: int = 250, inner: bytes = integer(1)) -> bytes:
    value = inner
    for _ in range(depth):
        value = wrap(value)
    return value


NESTING = {
    "Array": lambda: _nest(array),
    "Tuple": lambda: _nest(tuple_),
    "Dict value": lambda: _nest(lambda v: dict_((integer(0), v))),
    "FrozenSet": lambda: _nest(frozenset_),
    "Slice": lambda: _nest(lambda v: words(SLICE) + v + nil() + nil()),
    "object by value (full form)": lambda: array(
        by_value(1, "builtins", "ValueError", tuple_()), _nest(lambda v: by_value_again(1, v), inner=tuple_())
    ),
    "reference by name, through fallbacks": lambda: _nest(lambda v: named("x", "y", fallback=v)),
    "function record": lambda: _nest(lambda v: words(FUNCTION) + dict_((string("source"), v))),
}


@pytest.mark.parametrize("make", list(NESTING.values()), ids=list(NESTING))
def test_nesting_deeper_than_200_in_any_form_is_refused(raw: RawPeer, make: Callable[[], bytes]) -> None:
    with pytest.raises(tether.ProtocolError, match=r"value nests deeper than 200 levels"):
        raw.call_root("echo", make())
    still_answers(raw)


def test_nesting_through_the_compact_object_form_alone_is_refused(raw: RawPeer) -> None:
    raw.call_root("point")  # the server sent Point: this peer may name it, then use 0x21000000 + id
    nested = _nest(lambda v: compact(1, v, nil()), depth=300, inner=nil())
    with pytest.raises(tether.ProtocolError, match=r"value nests deeper than 200 levels"):
        raw.call_root("echo", array(by_value(1, MODULE, "Point", integer(0), nil()), nested))
    still_answers(raw)


def test_an_array_nested_100000_deep_is_refused_without_exhausting_the_stack(raw: RawPeer) -> None:
    deep = words(*[ARRAY, 1] * 100_000) + integer(1)
    with pytest.raises(tether.ProtocolError, match=r"value nests deeper than 200 levels"):
        raw.call_root("echo", deep)
    still_answers(raw)


# -- lengths, counts, items -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (words(ARRAY, 0x0FFFFFFF), r"an Array declares 268435455 elements but only 0 bytes remain"),
        (words(STRING, 0xFFFFFFFF), r"String declares 4294967295 bytes but only 0 remain"),
        (words(BYTEARRAY, 0x7FFFFFFF) + b"abc", r"ByteArray declares 2147483647 bytes but only 3 remain"),
    ],
    ids=["an Array of 2**28 elements", "a String of 4 GiB", "a ByteArray of 2 GiB"],
)
def test_a_declared_length_past_the_end_of_the_frame_is_refused_before_allocating(
    raw: RawPeer, value: bytes, error: str
) -> None:
    with pytest.raises(tether.ProtocolError, match=error):
        raw.call_root("echo", value)
    still_answers(raw)


def test_more_than_max_items_in_one_frame_is_refused(raw: RawPeer) -> None:
    half = words(ARRAY, 524_289) + words(SMALLINT) * 524_289  # two Arrays: 2**20 + 2 items, 4 MiB
    with pytest.raises(tether.ProtocolError, match=r"makes more than Limits\.max_items=1048576 in this frame"):
        raw.call_root("echo", words(ARRAY, 2) + half + half)
    still_answers(raw)


# -- a frame too large ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_frames() -> Iterator[tether.Server]:
    """A default server but for a 1 MiB frame limit, so that a frame over it stays small."""
    with tether.serve(make_root, host="127.0.0.1", port=0, max_frame_size=1 << 20) as srv:
        yield srv


def test_a_frame_over_max_frame_size_closes_that_connection_with_1009_only(small_frames: tether.Server) -> None:
    with RawPeer(small_frames.url) as raw:
        raw.send(message(raw.new_id(), yours(raw.root), "echo", [words(BYTEARRAY, 1_200_000) + bytes(1_200_000)]))
        with pytest.raises(ConnectionClosed) as info:
            raw.ws.recv(timeout=3)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    server_still_answers(small_frames)


# -- decode failures that are not protocol errors --------------------------------------------


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (by_value(1, "datetime", "datetime", string("not a date")), r"cannot rebuild a datetime from its state"),
        (
            by_value(1, "datetime", "timedelta", tuple_(integer(10**12), integer(0), integer(0))),
            r"cannot rebuild a timedelta from its state",
        ),
        (by_value(1, "pathlib", "PurePosixPath", tuple_(integer(5))), r"cannot rebuild a PurePosixPath from its state"),
        (by_value(1, "decimal", "Decimal", integer(5)), r"cannot rebuild a Decimal from its state"),
    ],
    ids=["a datetime of garbage", "a timedelta that overflows", "a path of an int", "a Decimal of a non-tuple"],
)
def test_a_value_whose_rebuild_raises_gets_an_error_answer_not_a_closed_connection(
    raw: RawPeer, value: bytes, error: str
) -> None:
    with pytest.raises(tether.ProtocolError, match=rf"cannot read the message-send: {error}"):
        raw.call_root("echo", value)
    still_answers(raw)


def test_forged_answers_to_ids_never_sent_are_dropped_unread(server: tether.Server, raw: RawPeer) -> None:
    """Answers and error answers the server never asked for (any id, any content: 10,000
    markers, a deep array) are dropped before they are decoded: no proxy, no release, no reply."""
    session = session_of(server, raw)
    before = session.protocol.answers_dropped
    markers = words(ARRAY, 10_000, *range(0x60000001, 0x60000001 + 10_000))
    for n in range(50):
        forged = bytes([n]) * 16
        raw.send(answer(forged, markers))
        raw.send(words(0x20000109, 0x20000011, 16) + forged + words(0x20000005, 1) + b"x")
    still_answers(raw)
    assert session.protocol.answers_dropped - before == 100
    assert len(session.protocol.imports) == 0


async def test_an_answer_that_comes_after_the_asyncio_callers_deadline_is_dropped_unread() -> None:
    """A peer that ignores our cancel and answers after the caller's deadline (the asyncio face's
    loop timer) with an object: the caller already has its TimeoutError, and the late answer is
    dropped before it is read (no proxy made, nothing pending); the connection goes on."""
    import asyncio

    import tether.aio

    answered = asyncio.Event()

    class Stubborn:
        async def late(self) -> object:
            try:
                await asyncio.sleep(0.3)
            except asyncio.CancelledError:  # told to stop: goes on all the same
                await asyncio.sleep(0.3)
            answered.set()
            return Stubborn()  # by reference: would make a proxy if it were read

        def add(self, a: int, b: int) -> int:
            return a + b

    sessions: list[Any] = []

    def factory(peer: Any) -> Stubborn:
        peer.session._was_cancelled = lambda exchange_id: False  # the hostile peer sends the answer anyway
        sessions.append(peer.session)
        return Stubborn()

    async with tether.aio.serve(factory, host="127.0.0.1", port=0) as server:
        async with tether.aio.connect(server.url, timeout=0.05) as client:
            protocol = client.session.protocol
            root = client.root
            before, proxies = protocol.answers_dropped, len(protocol.imports)  # (the root's proxy)
            with pytest.raises(TimeoutError, match=r"no answer to 'late' within 0\.05 s"):
                await root.late()
            assert client.stats()["pending"] == 0
            await asyncio.wait_for(answered.wait(), 5)
            for _ in range(500):
                if protocol.answers_dropped > before:
                    break
                await asyncio.sleep(0.01)
            assert protocol.answers_dropped - before == 1
            assert len(protocol.imports) == proxies and client.stats()["pending"] == 0
            assert await root.add(2, 3) == 5
    assert sessions


async def test_calls_queued_behind_busy_handlers_are_bounded_in_bytes_not_only_in_number() -> None:
    """A peer that keeps the running slots busy and queues calls with big arguments behind them
    cannot make the server hold more than Limits.max_queued_bytes of them (64 MiB by default;
    before, only max_queued counted: 65,536 messages of up to a frame each, gigabytes): the
    rest are answered Busy, and the queued ones run when the slots free. A real threading
    server and an asyncio client over loopback."""
    import asyncio

    import tether.aio

    big = b"x" * (256 * 1024)
    server = tether.serve(make_root, host="127.0.0.1", port=0, limits=tether.Limits(max_concurrency=2), max_frame_size=2**20)
    try:
        async with tether.aio.connect(server.url, max_frame_size=2**20) as peer:
            root = peer.root
            slow = [asyncio.ensure_future(root.pause(5)) for _ in range(2)]
            while sum(p.session.gate.running for p in server.peers) < 2:
                await asyncio.sleep(0.01)
            results = await asyncio.gather(*(root.echo(big) for _ in range(300)), return_exceptions=True)
            busy = [r for r in results if isinstance(r, tether.Busy)]
            echoed = [r for r in results if r == big]
            assert len(busy) + len(echoed) == 300, {type(r) for r in results}
            assert 200 <= len(echoed) <= 256 and busy, (len(echoed), len(busy))  # 64 MiB of 256 KiB frames
            assert "Limits.max_queued_bytes (67108864)" in str(busy[0])
            await asyncio.gather(*slow)
            (served,) = server.peers
            assert served.session.gate.queued_bytes == 0
            assert await root.add(2, 3) == 5
    finally:
        server.close()
