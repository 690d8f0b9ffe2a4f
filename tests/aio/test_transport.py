"""The async face's own transport (``tether.aio.transport``) under ``tether.aio.connect`` and
``tether.aio.serve``: messages pushed with no reader task, sends from other threads, close
codes, keepalive against a stopped process and a silent socket, the opening timeout, TLS,
IPv6, and the ``transport=`` settings it takes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import tether
import tether.aio
from tether.aio.transport import KEEPALIVE_TIMEOUT_REASON, ClientConnection, ServerConnection
from tether.exceptions import ConnectionLost, UsageError

from ..native.services import Calculator

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).parents[2]


async def test_messages_are_pushed_with_no_reader_task_and_no_task_per_call() -> None:
    loop = asyncio.get_running_loop()
    created: list[Any] = []
    factory = loop.get_task_factory()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        created.append(getattr(coro, "__qualname__", coro))
        return asyncio.Task(coro, loop=loop, **kwargs) if factory is None else factory(loop, coro, **kwargs)

    async with tether.aio.serve(Calculator(), port=0) as server:
        async with tether.aio.connect(server.url) as peer:
            assert isinstance(peer.session.transport, ClientConnection)
            assert peer.session._reader is None
            assert isinstance(server.peers[0].session.transport, ServerConnection)
            root = peer.root
            assert await root.add(1, 2) == 3
            loop.set_task_factory(counting)
            try:
                for i in range(200):
                    assert await root.add(i, 1) == i + 1
            finally:
                loop.set_task_factory(factory)
    # Neither side made a task for those calls: the client's answers came from data_received, and
    # the server ran add in worker threads (run_sync_in_threads) and wrote from the loop's callback.
    assert created == []


async def test_plain_methods_run_on_the_loop_without_a_task_when_threads_are_off() -> None:
    loop = asyncio.get_running_loop()
    created: list[Any] = []
    factory = loop.get_task_factory()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        created.append(getattr(coro, "__qualname__", coro))
        return asyncio.Task(coro, loop=loop, **kwargs)

    async with tether.aio.serve(Calculator(), port=0, run_sync_in_threads=False) as server:
        async with tether.aio.connect(server.url) as peer:
            root = peer.root
            loop.set_task_factory(counting)
            try:
                assert [await root.add(i, 1) for i in range(50)] == [i + 1 for i in range(50)]
            finally:
                loop.set_task_factory(factory)
    assert created == []


async def test_a_blocking_call_from_another_thread_is_sent_by_the_loop() -> None:
    async with tether.aio.serve(Calculator(), port=0) as server:
        async with tether.aio.connect(server.url) as peer:
            root = peer.root
            results = await asyncio.gather(*(asyncio.to_thread(root.add, i, i) for i in range(20)))
            assert results == [2 * i for i in range(20)]


async def test_close_codes_and_reasons_are_seen_by_the_other_side() -> None:
    async with tether.aio.serve(Calculator(), port=0) as server:
        async with tether.aio.connect(server.url) as peer:
            root = peer.root
            pending = asyncio.ensure_future(root.sleep(5))
            await asyncio.sleep(0.1)
            await server.peers[0].session.close(4000, "bye now")
            with pytest.raises(ConnectionLost, match="code 4000: bye now"):
                await asyncio.wait_for(pending, 2)
            client = peer.session.transport
            assert (client.close_code, client.close_reason) == (4000, "bye now")
        async with tether.aio.connect(server.url) as peer:
            await peer.root.add(1, 1)
            served = server.peers[0].session.transport
        await served.wait_closed(2)
        assert (served.close_code, served.close_reason) == (1000, "")


async def test_server_shutdown_says_so_with_1001() -> None:
    async with tether.aio.serve(Calculator(), port=0) as server:
        peer = await tether.aio.connect(server.url)
        pending = asyncio.ensure_future(peer.root.sleep(5))
        await asyncio.sleep(0.1)
    with pytest.raises(ConnectionLost, match="the server shut down"):
        await asyncio.wait_for(pending, 2)
    assert peer.session.transport.close_code == 1001


async def test_keepalive_notices_a_stopped_server_process() -> None:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "serve", "tests.native.services:make_service", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert "serving" in line, line
        url = line.rsplit(" ", 1)[1].strip()
        async with tether.aio.connect(url, keepalive=0.3) as peer:
            root = peer.root
            assert await root.add(1, 2) == 3
            os.kill(proc.pid, signal.SIGSTOP)  # it no longer reads, answers or pongs
            began = time.monotonic()
            with pytest.raises(ConnectionLost, match="stopped answering pings"):
                await asyncio.wait_for(root.add(3, 4), 5)
            assert time.monotonic() - began < 2.0  # a ping after 0.3-0.6 s of silence, 0.3 s for its pong
            assert peer.session.transport.protocol.close_sent.reason == KEEPALIVE_TIMEOUT_REASON
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait(5)


async def test_keepalive_drops_a_client_that_never_answers_pings() -> None:
    async with tether.aio.serve(Calculator(), port=0, keepalive=0.2) as server:
        silent = await asyncio.to_thread(_raw_websocket, server.port)  # opens the WebSocket, then nothing
        try:
            deadline = time.monotonic() + 3
            while not server._connections and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            (connection,) = server._connections
            began = time.monotonic()
            await connection.wait_closed(3)
            assert connection.state.name == "CLOSED"
            assert time.monotonic() - began < 1.5
            assert connection.protocol.close_sent.code == 1011
            assert connection.protocol.close_sent.reason == KEEPALIVE_TIMEOUT_REASON
        finally:
            silent.close()


async def test_a_client_that_never_sends_its_handshake_is_dropped_after_open_timeout() -> None:
    async with tether.aio.serve(Calculator(), port=0, transport={"open_timeout": 0.3}) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        try:
            await asyncio.sleep(0.1)
            assert len(server._connections) == 1
            deadline = time.monotonic() + 2
            while server._connections and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert not server._connections
            async with tether.aio.connect(server.url) as peer:  # others are served as before
                assert await peer.root.add(1, 1) == 2
        finally:
            sock.close()


def _raw_websocket(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.settimeout(5)
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


async def test_tls() -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ssl)
    client_ssl = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_ssl)
    async with tether.aio.serve(Calculator(), port=0, ssl=server_ssl) as server:
        assert server.url.startswith("wss://127.0.0.1:")
        async with tether.aio.connect(server.url, ssl=client_ssl) as peer:
            assert await peer.root.add(3, 4) == 7
            assert await peer.root.echo(b"z" * 300_000) == b"z" * 300_000
            assert peer.session.transport.transport.get_extra_info("ssl_object") is not None
        with pytest.raises(ConnectionLost, match="CERTIFICATE_VERIFY_FAILED"):  # not trusted by default
            await tether.aio.connect(server.url, open_timeout=3)


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_available(), reason="this machine has no IPv6 loopback (::1)")
async def test_ipv6_loopback() -> None:
    async with tether.aio.serve(Calculator(), host="::1", port=0) as server:
        assert server.url.startswith("ws://[::1]:")
        async with tether.aio.connect(server.url) as peer:
            assert await peer.root.add(3, 4) == 7


async def test_transport_settings_are_taken_by_their_names_and_others_refused() -> None:
    settings = {"close_timeout": 3, "server_header": "calc", "write_limit": (131072, 1024), "max_queue": 4,
                "compression": None}  # fmt: skip
    async with tether.aio.serve(Calculator(), port=0, transport=settings) as server:
        async with tether.aio.connect(server.url, transport={"close_timeout": 2, "user_agent_header": "me"}) as peer:
            transport = peer.session.transport
            assert transport.close_timeout == 2
            assert transport.response.headers["Server"] == "calc"
            served = server.peers[0].session.transport
            assert served.close_timeout == 3
            assert served.request.headers["User-Agent"] == "me"
            assert served.transport.get_write_buffer_limits() == (1024, 131072)
    with pytest.raises(UsageError, match=r"max_size.*max_frame_size=.*takes: .*pause_reading_above"):
        tether.aio.connect("ws://127.0.0.1:9", transport={"max_size": 5})
    with pytest.raises(UsageError, match="'bogus'"):
        tether.aio.serve(Calculator(), port=0, transport={"bogus": 1})
    with pytest.raises(UsageError, match="not compressed"):
        tether.aio.connect("ws://127.0.0.1:9", transport={"compression": "deflate"})
    with pytest.raises(UsageError, match="pause_reading_above is bytes, at least"):
        tether.aio.serve(Calculator(), port=0, transport={"write_limit": 65536, "pause_reading_above": 1000})
    with pytest.raises(UsageError, match="write_limit is bytes"):
        tether.aio.connect("ws://127.0.0.1:9", transport={"write_limit": (10, 20)})


async def test_what_arrives_before_the_session_attaches_is_bounded() -> None:
    """A client that floods frames while the server's root factory is still at work: the
    connection keeps 1 MiB of them (and the rest of the read that passed it), then stops reading until the session
    attaches, and then hands them all over, in order."""
    from tether.aio.transport import _MAX_EARLY

    release = asyncio.Event()

    async def slow_factory(peer: Any) -> Calculator:
        await release.wait()
        return Calculator()

    async with tether.aio.serve(slow_factory, port=0) as server:
        sock = await asyncio.to_thread(_raw_websocket, server.port)
        try:
            frame = bytes([0x82, 0xFE, 0xFF, 0xFF]) + bytes(4) + bytes(65535)  # masked, 64 KiB - 1
            sock.settimeout(0.2)
            sent = 0
            with contextlib.suppress(TimeoutError, OSError):
                while sent < 200:  # 12.5 MiB, far more than kept
                    sock.sendall(frame)
                    sent += 1
            await asyncio.sleep(0.2)
            (connection,) = server._connections
            assert connection._holding_early
            assert connection._early_size <= _MAX_EARLY + 256 * 1024 + 65535  # and the rest of one read
            release.set()  # the factory returns: the session attaches and reads them
            deadline = time.monotonic() + 5
            while connection._holding_early and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert not connection._holding_early
        finally:
            release.set()
            sock.close()


async def test_both_sides_frame_the_common_case_themselves_through_pings() -> None:
    """tether.framing frames whole binary messages on both sides of the async face, and goes on
    doing so after websockets has read pings and pongs in between."""
    async with tether.aio.serve(Calculator(), port=0, keepalive=0.1) as server:
        async with tether.aio.connect(server.url, keepalive=0.1) as peer:
            for i in range(3):
                assert await peer.root.add(i, 1) == i + 1
                await asyncio.sleep(0.25)  # pings and pongs go through websockets
            assert peer.session.transport._frames.enabled
            assert server.peers[0].session.transport._frames.enabled


async def test_a_frame_right_behind_the_upgrade_request_is_read_by_websockets() -> None:
    """A client may send its first frame before it has the server's answer: websockets' parser
    is inside it when the handshake ends, so that connection is all websockets' (no fast
    path), and the conversation starts all the same."""
    from tether.frames import exposure_bytes

    request = (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    mask = b"\x01\x02\x03\x04"
    payload = exposure_bytes(0)  # the client's Tether, as a client opens the conversation
    frame = bytes((0x82, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    async with tether.aio.serve(Calculator(), port=0) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(request + frame[:3])  # the frame's header and part of its mask
            await writer.drain()
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert answer.startswith(b"HTTP/1.1 101")
            writer.write(frame[3:])
            first = await asyncio.wait_for(reader.readexactly(2 + 4), 5)  # the server's exposure frame
            assert first[0] == 0x82 and first[2:] == exposure_bytes(0)
            assert not server.peers[0].session.transport._frames.enabled
        finally:
            writer.close()
