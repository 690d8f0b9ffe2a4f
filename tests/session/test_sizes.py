"""Sizes: each side announces its max_frame_size in hello and the sender checks it before
sending, so a value too large for the receiver is a clear local error (or an error answer) and
the connection lives on; batches of iteration are bounded by bytes as well as count."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import tether
from tether.testing import pair

MIB = 1 << 20


class Store:
    def take(self, data: bytes) -> int:
        return len(data)

    def give(self, n: int) -> bytes:
        return bytes(n)

    def chunks(self, n: int, size: int) -> Iterator[bytes]:
        for _ in range(n):
            yield bytes(size)

    def add(self, a: int, b: int) -> int:
        return a + b


@pytest.fixture
def peers() -> Iterator[Any]:
    with pair(Store(), max_frame_size=MIB) as (client, server):
        yield client, server


def test_the_limit_is_announced_in_hello(peers: Any) -> None:
    client, server = peers
    assert client.session.protocol.peer_max_frame_size == MIB
    assert server.session.protocol.peer_max_frame_size == MIB


def test_an_argument_too_large_for_the_receiver_is_refused_here_naming_both_sizes(peers: Any) -> None:
    client, _ = peers
    sent = client.stats()["frames_sent"]
    with pytest.raises(tether.FrameTooLarge, match=r"frame of 2097\d+ bytes, over the 1048576 bytes the server accepts") as info:
        client.root.take(bytes(2 * MIB))
    assert info.value.limit == MIB and info.value.size > 2 * MIB
    assert client.stats()["frames_sent"] == sent  # nothing was sent
    assert client.root.take(bytes(MIB // 2)) == MIB // 2  # the connection lives on
    assert client.root.add(1, 2) == 3


def test_an_answer_too_large_for_the_caller_becomes_an_error_answer(peers: Any) -> None:
    client, _ = peers
    with pytest.raises(tether.FrameTooLarge, match=r"the answer would be a frame of \d+ bytes, over the 1048576 bytes the client accepts") as info:
        client.root.give(2 * MIB)
    assert info.value.limit == MIB
    assert client.root.add(2, 2) == 4


def test_iterating_items_larger_than_a_batch_allows_fetches_fewer_per_batch(peers: Any) -> None:
    client, _ = peers
    sizes = [len(chunk) for chunk in client.root.chunks(12, 200_000)]  # 16 per batch would be 3.2 MB
    assert sizes == [200_000] * 12
