"""tether.Limits in the decoder: what one frame can make this side allocate is bounded, and
each bound refuses with an error answer that names it (the connection lives on)."""

from __future__ import annotations

import struct
import tracemalloc
from typing import Any

import pytest

import tether
from tether.codec import (
    COMPACT_STRING,
    MY_OBJECT_BASE,
    SMALLINT_BASE,
    TAG_ARRAY,
    TAG_DICT,
    TAG_ERROR_ANSWER,
    TAG_FLOAT,
    TAG_INTEGER,
    TAG_SET,
    TAG_TUPLE,
)
from tether.protocol import Incoming, Opened, Protocol
from tether.proxy import make_proxy

ID = bytes(range(16))


def words(*ws: int) -> bytes:
    return b"".join(struct.pack(">I", w) for w in ws)


class Root:
    def take(self, *args: Any) -> int:
        return len(args)


def server(limits: tether.Limits | None = None) -> Protocol:
    protocol = Protocol(
        client=False, root=Root(), proxy_factory=lambda key, info: make_proxy(None, key, info), limits=limits  # type: ignore[arg-type]
    )
    assert protocol.receive(words(MY_OBJECT_BASE)) == [Opened(0)]
    protocol.data_to_send()
    return protocol


def send(argument: bytes) -> bytes:
    """A message-send ``root.take(<argument>)`` to key 1... here the Tether's root is not
    exposed yet, so it is sent to the Tether object (key 0) as ``fetch``: any selector does for
    decoding, and the argument is what is measured."""
    symbol = b"fetch"
    return (
        words(0x20000007, 0x20000011, 16)
        + ID
        + words(0, 0x20000021, 0x20000004, len(symbol))
        + symbol
        + words(TAG_ARRAY, 1)
        + argument
    )


def decode(protocol: Protocol, frame: bytes) -> tuple[list[Any], int]:
    """Receive ``frame``; return its events (kept alive) and the peak bytes allocated."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        events = protocol.receive(frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return events, peak


def refusal(protocol: Protocol) -> str:
    (frame,) = protocol.data_to_send()
    assert frame[:4] == words(TAG_ERROR_ANSWER)
    return frame.decode("utf-8", "replace")


N = 40_000  # elements: frames of 160 KB to 640 KB, whose bound (48 x) is above the 1 MiB floor

ADVERSARIAL = {
    "distinct small ints": words(TAG_ARRAY, N, *(SMALLINT_BASE + 1000 + i for i in range(N))),
    "two-byte strings": words(TAG_ARRAY, N) + (words(COMPACT_STRING + 2) + b"ab") * N,
    "floats": words(TAG_ARRAY, N) + (words(TAG_FLOAT) + struct.pack(">d", 1.5)) * N,
    "big integers": words(TAG_ARRAY, N) + b"".join(words(TAG_INTEGER, 4) + struct.pack(">i", -i - 7) for i in range(N)),
    "empty arrays": words(TAG_ARRAY, N) + words(TAG_ARRAY, 0) * N,
    "empty tuples of one": words(TAG_ARRAY, N) + words(TAG_TUPLE, 1, SMALLINT_BASE) * N,
    "empty sets": words(TAG_ARRAY, N) + words(TAG_SET, 0) * N,
    "one-pair dicts": words(TAG_ARRAY, N)
    + b"".join(words(TAG_DICT, 1, SMALLINT_BASE + i, SMALLINT_BASE) for i in range(N)),
    "distinct references": words(TAG_ARRAY, N, *(MY_OBJECT_BASE + 1 + i for i in range(N))),
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_a_frame_never_allocates_more_than_the_memory_factor_allows(name: str) -> None:
    limits = tether.Limits()
    frame = send(ADVERSARIAL[name])
    events, peak = decode(server(limits), frame)
    bound = max(limits.memory_floor, limits.memory_factor * len(frame))
    assert peak <= bound, f"{name}: {peak} bytes for a frame of {len(frame)} ({peak / len(frame):.1f} per byte)"
    assert events == [] or isinstance(events[0], Incoming)


def test_a_frame_of_references_is_refused_before_it_makes_a_proxy_per_word() -> None:
    protocol = server()
    events, _ = decode(protocol, send(ADVERSARIAL["distinct references"]))
    assert events == []
    assert "Limits.memory_factor" in refusal(protocol)
    assert len(protocol.imports) < N // 2


def test_colliding_integer_keys_are_refused_at_the_seventeenth() -> None:
    modulus = 2**61 - 1  # hash(k * modulus) == 0 for every k
    keys = [k * modulus for k in range(1, 18)]
    body = words(TAG_SET, len(keys)) + b"".join(
        words(TAG_INTEGER, 16) + k.to_bytes(16, "big", signed=True) for k in keys
    )
    protocol = server()
    assert protocol.receive(send(body)) == []
    assert "share the hash 0 (hash flooding)" in refusal(protocol)
    body16 = words(TAG_SET, 16) + b"".join(
        words(TAG_INTEGER, 16) + k.to_bytes(16, "big", signed=True) for k in keys[:16]
    )
    (event,) = protocol.receive(send(body16))
    assert isinstance(event, Incoming) and len(event.message.args[0]) == 16


def test_items_per_container_and_per_frame_are_bounded() -> None:
    protocol = server(tether.Limits(max_items=1000))
    assert protocol.receive(send(words(TAG_ARRAY, 1001, *([SMALLINT_BASE] * 1001)))) == []
    assert "Limits.max_items=1000" in refusal(protocol)
    two = words(TAG_ARRAY, 2) + words(TAG_ARRAY, 600, *([SMALLINT_BASE] * 600)) * 2
    assert protocol.receive(send(two)) == []
    assert "Limits.max_items=1000" in refusal(protocol)
    (event,) = protocol.receive(send(words(TAG_ARRAY, 900, *([SMALLINT_BASE] * 900))))
    assert isinstance(event, Incoming)


def test_limits_must_be_positive_ints() -> None:
    with pytest.raises(ValueError, match=r"Limits\.max_exports must be a positive int"):
        tether.Limits(max_exports=0)


def test_a_frame_that_encodes_leaves_no_journal_open() -> None:
    from tether.testing import pair

    class Maker:
        def make(self) -> object:
            return Root()

    with pair(Maker()) as (client, server):
        proxy = client.root.make()
        assert proxy.take(1, 2) == 2
        protocol = server.session.protocol
        assert protocol.exports.journal is None  # only a frame being encoded has one
        assert len(protocol.exports) == 2  # the root and the made object, once each
