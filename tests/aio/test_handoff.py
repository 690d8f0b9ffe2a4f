"""Three-party handoff on the async face: this process is the recipient, with an asyncio
connection to the introducer A; A and the owner B are real ``tether serve`` processes."""

from __future__ import annotations

import asyncio
import gc
import subprocess
from collections.abc import Iterator

import pytest

import tether.aio
import tether.handoff
from tether.proxy import _state

from ..native.test_processes import start_server


@pytest.fixture
def b_and_a() -> Iterator[tuple[str, str]]:
    """The URLs of two nodes (``tests.native.vats``): the owner B, then the introducer A."""
    procs: list[subprocess.Popen[str]] = []
    urls: list[str] = []
    try:
        for _ in range(2):
            proc, url = start_server("tests.native.vats:make_node")
            procs.append(proc)
            urls.append(url)
        yield urls[0], urls[1]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)


def test_an_async_recipient_dials_the_owner_and_identity_holds(b_and_a: tuple[str, str]) -> None:
    b_url, a_url = b_and_a

    async def main() -> None:
        async with tether.aio.connect(a_url) as a:
            await a.root.link(b_url)
            counter = await a.root.remote_counter(b_url)
            assert _state(counter).session.url == b_url, "a connection of its own to B"
            before = await a.root.stats()
            assert [await counter.increment() for _ in range(20)] == list(range(1, 21))
            after = await a.root.stats()
            link = (before["links"][b_url], after["links"][b_url])
            assert link[0]["frames_sent"] == link[1]["frames_sent"], "A forwarded nothing"
            assert await a.root.is_held(counter, b_url), "back to A: A's own proxy"
            again = await a.root.remote_counter(b_url)
            assert again is counter, "two routes, one proxy"
            async with tether.aio.connect(b_url) as b:
                assert await b.root.is_mine(counter), "back to B: the original"
                assert await b.root.count() == 20
            await _state(counter).session.close()  # the dialed connection is ours to close

    asyncio.run(asyncio.wait_for(main(), 30))


def test_an_async_connection_opened_for_a_handoff_closes_once_it_holds_nothing(
    b_and_a: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tether.handoff, "IDLE_SECONDS", 0.2)
    b_url, a_url = b_and_a

    async def main() -> None:
        async with tether.aio.connect(a_url) as a:
            await a.root.link(b_url)
            counter = await a.root.remote_counter(b_url)
            dialed = _state(counter).session
            assert dialed.dialed and await counter.increment() == 1
            del counter
            for _ in range(100):
                gc.collect()
                if dialed.closed:
                    break
                await asyncio.sleep(0.05)
            assert dialed.closed, "it held nothing for IDLE_SECONDS: closed"

    asyncio.run(asyncio.wait_for(main(), 30))
