"""A close reason longer than a close frame carries (123 bytes of UTF-8) is cut at a character
boundary by the session, and the connection really closes (websockets raises instead of
closing for an uncut one, which left the socket open while the session said closed)."""

from __future__ import annotations

import asyncio
import time

import tether
import tether.aio


class Root:
    def add(self, a: int, b: int) -> int:
        return a + b


def test_sync_session_close_with_a_long_reason_closes_the_connection() -> None:
    with tether.serve(Root(), port=0) as server:
        peer = tether.connect(server.url)
        assert peer.root.add(1, 2) == 3
        peer.session.close(4000, "é" * 120)  # 240 bytes of UTF-8
        deadline = time.monotonic() + 5
        while server.peers and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.peers == [], "the server still holds the connection"


def test_aio_session_close_with_a_long_reason_closes_the_connection() -> None:
    async def run() -> list[object]:
        async with tether.aio.serve(Root(), port=0) as server:
            peer = await tether.aio.connect(server.url)
            assert await peer.root.add(1, 2) == 3
            await peer.session.close(4000, "é" * 120)
            deadline = time.monotonic() + 5
            while server.peers and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            return list(server.peers)

    assert asyncio.run(run()) == []
