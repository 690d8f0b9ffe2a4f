"""max_connections: a stranger cannot make a server hold more connections (a thread each on the
threading server, from the TCP accept on) than it allows. One more is answered with an HTTP 503
saying so, before anything it sends is read, and the server serves on; a place freed is taken
again. Each server: tether.serve, tether.aio.serve, serve_web's /ws; over loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import tether
import tether.aio
from tether.exceptions import HandshakeFailed

from .services import make_root

pytestmark = pytest.mark.timeout(60)


def silent(port: int) -> socket.socket:
    """A TCP connection that never sends its WebSocket handshake (it holds a place until the
    server's open_timeout, or until it closes)."""
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def refusal_of(port: int) -> bytes:
    """What the server answers one more connection with, read until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def assert_refused(answer: bytes, limit: int) -> None:
    assert answer.startswith(b"HTTP/1.1 503 "), answer[:100]
    assert f"this server has {limit} connections open or opening, its max_connections".encode() in answer


async def add_once_a_place_frees(url: str) -> None:
    """Connect (and call) as soon as the server has a place again (within 5 s)."""
    for _ in range(100):
        try:
            async with tether.aio.connect(url, open_timeout=5) as peer:
                assert await peer.root.add(1, 1) == 2
            return
        except HandshakeFailed:
            await asyncio.sleep(0.05)
    raise AssertionError("the freed place was not taken again")


def test_the_threading_server_answers_one_connection_too_many_with_503_and_no_thread() -> None:
    with tether.serve(make_root, host="127.0.0.1", port=0, max_connections=3) as server:
        port = port_of(server.url)
        holders = [silent(port) for _ in range(3)]
        time.sleep(0.2)
        threads = threading.active_count()
        for _ in range(20):
            assert_refused(refusal_of(port), 3)
        assert threading.active_count() <= threads  # the refused ones started no thread
        with pytest.raises(HandshakeFailed, match="503"):
            tether.connect(server.url, open_timeout=5)
        holders.pop().close()  # a place frees once its thread sees the socket end
        deadline = time.monotonic() + 5
        while True:
            try:
                with tether.connect(server.url, open_timeout=5) as peer:
                    assert peer.root.add(2, 3) == 5
                break
            except HandshakeFailed:
                assert time.monotonic() < deadline, "the freed place was not taken again"
                time.sleep(0.05)
        for sock in holders:
            sock.close()


async def test_the_asyncio_server_answers_one_connection_too_many_with_503() -> None:
    async with tether.aio.serve(make_root, host="127.0.0.1", port=0, max_connections=2) as server:
        port = port_of(server.url)
        async with tether.aio.connect(server.url) as first:
            holder = silent(port)
            await asyncio.sleep(0.1)
            for _ in range(10):
                assert_refused(await asyncio.to_thread(refusal_of, port), 2)
            with pytest.raises(HandshakeFailed, match="503"):
                await tether.aio.connect(server.url, open_timeout=5)
            assert await first.root.add(2, 3) == 5  # those in are served on
            holder.close()
            await add_once_a_place_frees(server.url)


async def test_serve_web_answers_one_websocket_too_many_with_503(pyodide_dir: Path) -> None:
    pytest.importorskip("aiohttp")
    import tether.web

    async with tether.web.serve_web(make_root, port=0, pyodide_dir=pyodide_dir, max_connections=1) as server:
        async with tether.aio.connect(server.ws_url) as first:
            with pytest.raises(HandshakeFailed, match="503"):
                await tether.aio.connect(server.ws_url, open_timeout=5)
            assert await first.root.add(2, 3) == 5
        await add_once_a_place_frees(server.ws_url)  # given back when the first one's handler ends


def test_max_connections_is_checked_and_only_servers_take_it() -> None:
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(tether.UsageError, match="max_connections= is a number of connections, at least 1"):
            tether.Options(max_connections=bad)  # type: ignore[arg-type]
    with pytest.raises(tether.UsageError, match="only a server takes"):
        tether.connect("ws://127.0.0.1:9", max_connections=5)
    any_: Any = tether.Options(max_connections=5)  # an Options object may hold it for every side
    assert any_.max_connections == 5


def test_the_asgi_app_leaves_max_connections_to_its_server_and_says_so() -> None:
    pytest.importorskip("uvicorn")
    import tether.asgi

    with pytest.raises(tether.UsageError, match="--limit-concurrency"):
        tether.asgi.app(make_root, max_connections=5)
