"""Opening a conversation fails with a tether.HandshakeFailed that says what was found instead
(a bad URL, an HTTP server, a WebSocket echo server, text frames, silence), within open_timeout,
on both faces. Every server here is a real one on 127.0.0.1."""

from __future__ import annotations

import http.server
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.sync.server import ServerConnection
from websockets.sync.server import serve as ws_serve

import tether


def serve_ws(handler: Callable[[ServerConnection], None]) -> Iterator[str]:
    with ws_serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        server.shutdown()
    thread.join(5)


@pytest.fixture
def echo_url() -> Iterator[str]:
    def echo(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    yield from serve_ws(echo)


@pytest.fixture
def text_url() -> Iterator[str]:
    def chatty(ws: ServerConnection) -> None:
        ws.send("hello, I speak text")
        for _ in ws:
            pass

    yield from serve_ws(chatty)


@pytest.fixture
def silent_url() -> Iterator[str]:
    def silent(ws: ServerConnection) -> None:
        for _ in ws:
            pass

    yield from serve_ws(silent)


@pytest.fixture
def mute_tether_url() -> Iterator[str]:
    """Exposes its Tether like a server, then never answers anything."""

    def mute(ws: ServerConnection) -> None:
        ws.recv()
        ws.send(struct.pack(">I", 0x60000000))
        for _ in ws:
            pass

    yield from serve_ws(mute)


@pytest.fixture
def http_url() -> Iterator[str]:
    class NotFound(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_error(404, "no WebSocket here")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


CASES = [
    ("echo_url", r"sent our own message back: not a Tether peer \(an echo server\?\)"),
    ("text_url", r"Tether frames are binary messages, got a text message"),
    ("http_url", r"answered HTTP 404 .* instead of opening a WebSocket: not a Tether server"),
]


@pytest.mark.parametrize(("fixture", "message"), CASES)
def test_the_sync_face_says_what_it_found_instead_of_a_tether_peer(
    request: pytest.FixtureRequest, fixture: str, message: str
) -> None:
    url = request.getfixturevalue(fixture)
    with pytest.raises(tether.HandshakeFailed, match=message):
        tether.connect(url, open_timeout=3)


@pytest.mark.parametrize(("fixture", "message"), CASES)
async def test_the_async_face_says_what_it_found_instead_of_a_tether_peer(
    request: pytest.FixtureRequest, fixture: str, message: str
) -> None:
    url = request.getfixturevalue(fixture)
    with pytest.raises(tether.HandshakeFailed, match=message):
        await tether.aio.connect(url, open_timeout=3)


def test_a_url_that_is_not_a_websocket_url_is_refused_with_the_forms_that_work() -> None:
    with pytest.raises(tether.HandshakeFailed, match=r"is not a WebSocket URL: use ws://HOST:PORT or wss://HOST:PORT"):
        tether.connect("127.0.0.1:8765")


@pytest.mark.parametrize("fixture", ["silent_url", "mute_tether_url"])
def test_a_peer_that_never_answers_fails_within_open_timeout(request: pytest.FixtureRequest, fixture: str) -> None:
    url = request.getfixturevalue(fixture)
    started = time.monotonic()
    with pytest.raises(tether.HandshakeFailed, match=r"within"):
        tether.connect(url, open_timeout=0.5)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("fixture", ["silent_url", "mute_tether_url"])
async def test_a_peer_that_never_answers_fails_within_open_timeout_on_the_async_face(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    url = request.getfixturevalue(fixture)
    started = time.monotonic()
    with pytest.raises(tether.HandshakeFailed, match=r"within"):
        await tether.aio.connect(url, open_timeout=0.5)
    assert time.monotonic() - started < 2.0


def test_a_handshake_failure_is_a_connection_lost_and_a_tether_error() -> None:
    assert issubclass(tether.HandshakeFailed, tether.ConnectionLost)
    assert issubclass(tether.Refused, tether.HandshakeFailed)
