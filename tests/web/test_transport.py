"""``tether.web.WebSocketTransport.send_nowait``: a frame is written at once, with no task,
unless aiohttp then waits for its write buffer to drain; and the session built on it.

The first tests drive the transport with a stand-in ``WebSocketResponse`` whose ``send_bytes``
behaves as aiohttp's does (write first, then maybe wait); the last runs ``serve_web`` over
loopback. The hostile case (a peer that never reads) is in
``tests/security/test_backpressure.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp")

import tether
import tether.aio
from tether.exceptions import ConnectionLost
from tether.web import WebSocketTransport, serve_web

pytestmark = pytest.mark.timeout(30)


class FakeWebSocket:
    """What WebSocketTransport uses of aiohttp's WebSocketResponse: ``send_bytes`` writes the
    frame at once, then waits on ``self.gate`` while one is set (aiohttp's drain wait)."""

    def __init__(self) -> None:
        self.closed = False
        self.close_code: int | None = None
        self.written: list[bytes] = []
        self.gate: asyncio.Future[None] | None = None
        self.fail_after_write: BaseException | None = None

    async def send_bytes(self, data: bytes) -> None:
        self.written.append(data)
        if self.gate is not None:
            await self.gate
        if self.fail_after_write is not None:
            raise self.fail_after_write


def tasks_now() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


async def test_send_nowait_writes_the_frame_at_once_and_starts_no_task() -> None:
    ws = FakeWebSocket()
    transport = WebSocketTransport(ws)  # type: ignore[arg-type]
    before = tasks_now()
    transport.send_nowait(b"one")
    transport.send_nowait(b"two")
    assert ws.written == [b"one", b"two"]
    assert tasks_now() == before
    assert not transport.writing_paused
    await transport.drain()  # nothing to wait for


async def test_a_send_that_waits_for_the_buffer_pauses_writing_until_it_drains() -> None:
    ws = FakeWebSocket()
    transport = WebSocketTransport(ws)  # type: ignore[arg-type]
    ws.gate = asyncio.get_running_loop().create_future()
    transport.send_nowait(b"one")
    transport.send_nowait(b"two")
    assert ws.written == [b"one", b"two"]  # both written, in order, before any wait
    assert transport.writing_paused
    draining = asyncio.ensure_future(transport.drain())
    await asyncio.sleep(0.01)
    assert not draining.done() and transport.writing_paused
    ws.gate.set_result(None)
    await asyncio.wait_for(draining, 2)
    assert not transport.writing_paused


async def test_a_send_that_fails_after_waiting_leaves_nothing_unretrieved() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda loop, context: reported.append(context))
    try:
        ws = FakeWebSocket()
        transport = WebSocketTransport(ws)  # type: ignore[arg-type]
        ws.gate = loop.create_future()
        ws.fail_after_write = ConnectionResetError("gone")
        transport.send_nowait(b"one")
        ws.gate.set_result(None)
        await asyncio.wait_for(transport.drain(), 2)
        assert not transport.writing_paused
        import gc

        gc.collect()
        await asyncio.sleep(0)
        assert reported == []
    finally:
        loop.set_exception_handler(None)


async def test_a_closed_websocket_refuses_send_nowait() -> None:
    ws = FakeWebSocket()
    ws.closed = True
    ws.close_code = 1001
    transport = WebSocketTransport(ws)  # type: ignore[arg-type]
    with pytest.raises(ConnectionLost, match="code 1001"):
        transport.send_nowait(b"one")
    assert ws.written == []


class Root:
    def echo(self, value: Any) -> Any:
        return value

    async def aecho(self, value: Any) -> Any:
        return value


@pytest.mark.parametrize("threads", [True, False], ids=["threads", "loop"])
async def test_serve_web_answers_through_send_nowait(pyodide_dir: Path, threads: bool) -> None:
    """Calls of every kind, sequential and gathered, over loopback: the answers come back in
    order and whole, written by send_nowait (no flush task)."""
    async with serve_web(Root(), port=0, pyodide_dir=pyodide_dir, run_sync_in_threads=threads) as server:
        async with tether.aio.connect(server.ws_url) as peer:
            root = peer.root
            assert await root.echo(1) == 1
            assert await root.aecho("x") == "x"
            big = b"z" * (2 * 2**20)  # past aiohttp's write buffer limits
            assert await root.echo(big) == big
            assert await asyncio.gather(*(root.echo(i) for i in range(300))) == list(range(300))
            (session,) = [p.session for p in server.peers]
            assert session._send_nowait is not None and not session._flushing
            assert not session.transport.writing_paused
