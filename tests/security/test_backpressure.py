"""A peer that sends calls but never reads the answers, against the async face's server
(``tether.aio.serve``, whose transport is ``tether.aio.transport``).

Each call asks for a 64 KiB answer; the hostile client writes as many as the kernel takes and
never reads a byte. Without a bound the server would queue every answer in its write buffer;
with it, the server stops reading from that peer (``transport.pause_reading()``) once more than
``pause_reading_above`` bytes wait to be sent, so the client's calls stay in the kernel's
buffers and the server's buffer stays bounded, while other clients are served as before.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

import tether
import tether.aio

from .services import make_root
from .wire import MY_OBJECT, message, raw_bytes, words, yours

pytestmark = pytest.mark.timeout(60)

ANSWER_SIZE = 65536
BOUND = 256 * 1024  # the server's pause_reading_above in this test


def settled(count: Callable[[], int], what: str, quiet: float = 0.1, within: float = 3.0) -> int:
    """``count()`` once it has not changed for ``quiet`` seconds; AssertionError saying ``what``
    when it still changes after ``within`` seconds."""
    deadline = time.monotonic() + within
    last, since = count(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, f"{what}: still changing after {within} s"
        time.sleep(0.01)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
    return last


class NeverReads:
    """A raw WebSocket client on a blocking socket: it opens the WebSocket, exposes its Tether,
    then only writes (``echo`` calls of 64 KiB), never reading after the handshake."""

    def __init__(self, url: str) -> None:
        self.protocol = ClientProtocol(parse_uri(url), subprotocols=[Subprotocol("tether")], max_size=None)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # little kept for us by the kernel
        uri = parse_uri(url)
        self.sock.connect((uri.host, uri.port))
        self.sock.settimeout(5)
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        while True:
            self.protocol.receive_data(self.sock.recv(65536))
            events = self.protocol.events_received()
            if events and isinstance(events[0], Response):
                assert events[0].status_code == 101, events[0]
                break
        self.sent_calls = 0

    def _flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.sock.sendall(chunk)

    def _next_message(self) -> bytes:
        while True:
            for event in self.protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.BINARY:
                    return bytes(event.data)
            self.protocol.receive_data(self.sock.recv(65536))
            self._flush()

    def flood(self, stop: threading.Event) -> None:
        """Expose our Tether and fetch the root (reading for the last time), then send calls
        until the kernel takes no more (or ``stop``)."""
        self.protocol.send_binary(words(MY_OBJECT))
        self._flush()
        assert self._next_message() == words(MY_OBJECT)
        self.protocol.send_binary(message(b"ROOT----" + bytes(8), yours(0), "root"))
        self._flush()
        answer = self._next_message()
        root = struct.unpack(">I", answer[-4:])[0] - MY_OBJECT  # a plain "my object" marker
        payload = raw_bytes(b"x" * ANSWER_SIZE)
        self.sock.settimeout(0.5)
        while not stop.is_set():
            self.protocol.send_binary(message(b"FLOOD---" + self.sent_calls.to_bytes(8, "big"), yours(root), "echo", [payload]))
            try:
                self._flush()
            except (TimeoutError, OSError):
                return  # the server stopped reading: our writes no longer go anywhere
            self.sent_calls += 1

    def close(self) -> None:
        self.sock.close()


async def test_a_client_that_never_reads_cannot_grow_the_servers_write_buffer_past_the_bound() -> None:
    transport = {"pause_reading_above": BOUND}
    # Handlers on the loop (as tasks): each read's calls are answered before the next read, so
    # what it holds is the bound plus the answers of one read. (With worker threads, the calls
    # read while the first answers were being made are answered too, after it stopped reading:
    # at most what Limits.max_concurrency and max_queued admit.)
    async with tether.aio.serve(make_root, host="127.0.0.1", port=0, transport=transport,
                                run_sync_in_threads=False) as server:  # fmt: skip
        hostile = await asyncio.to_thread(NeverReads, server.url)
        stop = threading.Event()
        flooding = asyncio.ensure_future(asyncio.to_thread(hostile.flood, stop))
        try:
            biggest = 0
            paused_seen = False
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                await asyncio.sleep(0.01)
                for peer in server.peers:
                    connection = peer.session.transport
                    if connection.transport is not None:
                        biggest = max(biggest, connection.transport.get_write_buffer_size())
                        paused_seen = paused_seen or connection.reading_paused
            assert len(server.peers) == 1
            connection = server.peers[0].session.transport
            # It stopped reading, and holds no more than the bound and the last answers written
            # (each message's answer is written as one piece; a few may complete one read).
            assert paused_seen and connection.reading_paused
            assert biggest <= BOUND + 8 * (ANSWER_SIZE + 64), f"{biggest} bytes buffered (bound {BOUND})"
            assert hostile.sent_calls * ANSWER_SIZE > 4 * BOUND, f"only {hostile.sent_calls} calls were sent"
            answered = peer_answers(server)
            await asyncio.sleep(0.5)
            assert peer_answers(server) == answered, "the server went on answering a peer that does not read"
            # Everyone else is served as before.
            async with tether.aio.connect(server.url) as other:
                assert await other.root.add(2, 3) == 5
        finally:
            stop.set()
            hostile.close()
            await flooding
        deadline = time.monotonic() + 5
        while server.peers and time.monotonic() < deadline:  # the hostile peer's connection ends
            await asyncio.sleep(0.02)
        assert not server.peers


def peer_answers(server: tether.aio.Server) -> int:
    return sum(peer.session.stats().get("frames_sent", 0) for peer in server.peers)


async def test_a_caller_waits_while_its_peer_does_not_read_then_goes_on() -> None:
    """The other way round: our own calls to a peer that stopped reading wait (``await``
    returns once the write buffer drained) instead of piling up."""
    transport = {"write_limit": 65536, "pause_reading_above": BOUND}
    async with tether.aio.serve(make_root, host="127.0.0.1", port=0, transport=transport) as server:
        async with tether.aio.connect(server.url, transport=transport) as peer:
            root = peer.root
            big = b"y" * (1024 * 1024)
            answers = await asyncio.gather(*(root.echo(big) for _ in range(20)))
            assert all(a == big for a in answers)
            connection = peer.session.transport
            assert not connection.writing_paused and not connection.reading_paused


async def test_serve_web_reads_no_further_from_a_client_that_never_reads(pyodide_dir: Path) -> None:
    """serve_web (aiohttp): once a send waits for aiohttp's write buffer to drain, the reader
    stops taking the peer's messages until it has drained, so the peer's further calls stay in
    the kernel's buffers instead of being answered into ours; other clients are served."""
    pytest.importorskip("aiohttp")
    import tether.web

    async with tether.web.serve_web(make_root, port=0, pyodide_dir=pyodide_dir, run_sync_in_threads=False) as server:
        hostile = await asyncio.to_thread(NeverReads, server.ws_url)
        stop = threading.Event()
        flooding = asyncio.ensure_future(asyncio.to_thread(hostile.flood, stop))
        try:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and not (server.peers and server.peers[0].session.transport.writing_paused):
                await asyncio.sleep(0.01)
            (session,) = [peer.session for peer in server.peers]
            assert session.transport.writing_paused, "the server's writes never waited for the peer"
            await asyncio.sleep(0.3)
            received = session.stats()["frames_received"]
            await asyncio.sleep(0.5)
            assert session.stats()["frames_received"] == received, "the server went on reading a peer that does not read"
            assert hostile.sent_calls > received + 8, f"{hostile.sent_calls} calls sent, {received} read"
            async with tether.aio.connect(server.ws_url) as other:
                assert await other.root.add(2, 3) == 5
        finally:
            stop.set()
            hostile.close()
            await flooding


def test_the_asgi_app_reads_no_further_from_a_client_that_never_reads() -> None:
    """tether.asgi under a real uvicorn: once a write waits for uvicorn to drain, the reader
    stops taking the peer's messages until it has, so a peer that only sends calls cannot make
    this side hold their answers without bound; other clients are served."""
    pytest.importorskip("uvicorn")
    import tether.asgi

    from ..asgi.server import Uvicorn

    app = tether.asgi.app(make_root, run_sync_in_threads=False)
    with Uvicorn(app) as server:
        hostile = NeverReads(server.ws_url + "/ws")
        stop = threading.Event()
        flooding = threading.Thread(target=hostile.flood, args=(stop,), daemon=True)
        flooding.start()
        try:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and hostile.sent_calls < 100:
                time.sleep(0.01)
            time.sleep(1.0)
            (session,) = [peer.session for peer in app.peers]
            received = settled(lambda: session.stats()["frames_received"], "the app went on reading a peer that does not read")
            time.sleep(0.5)
            assert session.stats()["frames_received"] == received, "the app went on reading a peer that does not read"
            assert session.transport.writing_paused
            with tether.connect(server.ws_url + "/ws") as other:
                assert other.root.add(2, 3) == 5
        finally:
            stop.set()
            hostile.close()
            flooding.join(5)


def test_the_threading_server_reads_no_further_from_a_client_that_never_reads() -> None:
    """tether.serve (the threading face, its own transport): while more than
    ``pause_reading_above`` bytes of answers wait behind a write the peer does not take, the
    connection's watchers read nothing more from it, so what this side holds stays bounded
    (before, it read on and queued every answer: gigabytes in seconds); other clients are
    served, and keepalive drops the peer (it answers no ping either)."""
    transport = {"pause_reading_above": BOUND}
    server = tether.serve(make_root, host="127.0.0.1", port=0, transport=transport, keepalive=0.5)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hostile = NeverReads(server.url)
    stop = threading.Event()
    flooding = threading.Thread(target=hostile.flood, args=(stop,), daemon=True)
    flooding.start()
    try:
        deadline = time.monotonic() + 3.0
        session = None
        while time.monotonic() < deadline:
            time.sleep(0.01)
            if server.peers and server.peers[0].session.protocol.queued_bytes > BOUND:
                session = server.peers[0].session
                break
        assert session is not None, "the server never held more than the bound: the test proves nothing"
        # (A watcher that began reading before the hold finishes that read: let it.)
        received = settled(lambda: session.stats()["frames_received"], "the server went on reading a peer that does not read")
        time.sleep(0.3)
        assert session.stats()["frames_received"] == received, "the server went on reading a peer that does not read"
        # Held: the bound, and the answers of the messages read before the watchers stopped.
        assert session.protocol.queued_bytes <= BOUND + 16 * (ANSWER_SIZE + 64), session.protocol.queued_bytes
        with tether.connect(server.url) as other:
            assert other.root.add(2, 3) == 5
        deadline = time.monotonic() + 10.0
        while not session.closed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert session.closed, "keepalive did not drop a peer that answers no ping"
        assert "keepalive" in (session.close_reason or ""), session.close_reason
    finally:
        stop.set()
        hostile.close()
        flooding.join(5)
        server.close()
