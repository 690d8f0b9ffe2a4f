"""``tether.asgi.ASGITransport``'s ``writing_paused`` and ``drain()``: what the session reads
to stop reading from a peer that does not read (the hostile case over a real uvicorn is in
``tests/security/test_backpressure.py``). The ASGI server here is a stand-in whose ``send``
waits, as uvicorn's does while its buffer is full."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tether.asgi import ASGITransport
from tether.exceptions import ConnectionLost

pytestmark = pytest.mark.timeout(30)


class SlowServer:
    """ASGI ``receive``/``send``: ``send`` records the event, then waits on ``gate`` while one
    is set; with ``lost`` set, it raises instead (the client went away)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gate: asyncio.Future[None] | None = None
        self.lost = False

    async def receive(self) -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("never")

    async def send(self, message: dict[str, Any]) -> None:
        if self.gate is not None:
            await self.gate
        if self.lost:
            raise OSError("the client went away")
        self.sent.append(message)


async def test_writing_is_paused_while_the_server_waits_and_drain_waits_for_it() -> None:
    server = SlowServer()
    transport = ASGITransport(server.receive, server.send)
    assert not transport.writing_paused
    await transport.send(b"quick")
    assert not transport.writing_paused
    await transport.drain()  # nothing to wait for
    server.gate = asyncio.get_running_loop().create_future()
    sends = [asyncio.ensure_future(transport.send(bytes([n]))) for n in range(3)]
    await asyncio.sleep(0.01)
    assert transport.writing_paused
    draining = asyncio.ensure_future(transport.drain())
    await asyncio.sleep(0.01)
    assert not draining.done()
    server.gate.set_result(None)
    await asyncio.wait_for(draining, 2)
    await asyncio.gather(*sends)
    assert not transport.writing_paused
    assert [m["bytes"] for m in server.sent] == [b"quick", b"\x00", b"\x01", b"\x02"]


async def test_drain_ends_when_the_connection_is_lost_during_a_write() -> None:
    server = SlowServer()
    transport = ASGITransport(server.receive, server.send)
    server.gate = asyncio.get_running_loop().create_future()
    sends = [asyncio.ensure_future(transport.send(bytes([n]))) for n in range(2)]
    await asyncio.sleep(0.01)
    draining = asyncio.ensure_future(transport.drain())
    server.lost = True
    server.gate.set_result(None)
    await asyncio.wait_for(draining, 2)
    assert not transport.writing_paused
    for send in sends:
        with pytest.raises(ConnectionLost):
            await send


async def test_a_cancelled_drain_leaves_the_transport_usable() -> None:
    server = SlowServer()
    transport = ASGITransport(server.receive, server.send)
    server.gate = asyncio.get_running_loop().create_future()
    sending = asyncio.ensure_future(transport.send(b"one"))
    await asyncio.sleep(0.01)
    draining = asyncio.ensure_future(transport.drain())
    await asyncio.sleep(0.01)
    draining.cancel()
    server.gate.set_result(None)
    await sending  # (the cancelled drain's waiter is skipped, not set)
    assert not transport.writing_paused
    await transport.send(b"two")
    assert [m["bytes"] for m in server.sent] == [b"one", b"two"]


def tasks_now() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


async def test_send_nowait_writes_at_once_without_a_task_when_the_server_does_not_wait() -> None:
    server = SlowServer()
    transport = ASGITransport(server.receive, server.send)
    before = tasks_now()
    transport.send_nowait(b"one")
    transport.send_nowait(b"two")
    assert [m["bytes"] for m in server.sent] == [b"one", b"two"]
    assert tasks_now() == before and not transport.writing_paused


async def test_send_nowait_behind_a_waiting_write_keeps_the_order() -> None:
    server = SlowServer()
    transport = ASGITransport(server.receive, server.send)
    server.gate = asyncio.get_running_loop().create_future()
    for n in range(4):
        transport.send_nowait(bytes([n]))
    assert transport.writing_paused and server.sent == []
    server.gate.set_result(None)
    await asyncio.wait_for(transport.drain(), 2)
    assert [m["bytes"] for m in server.sent] == [b"\x00", b"\x01", b"\x02", b"\x03"]
    assert not transport.writing_paused


async def test_send_nowait_after_close_raises_connection_lost() -> None:
    server = SlowServer()
    transport = ASGITransport(server.receive, server.send)
    await transport.close(4000, "bye")
    with pytest.raises(ConnectionLost):
        transport.send_nowait(b"late")
    assert [m["type"] for m in server.sent] == ["websocket.close"]
