"""The sync flavour's transport (``tether.sync.transport``: websockets' sans-I/O protocol over
sockets) beyond the conformance suite (``tests/transports``): keepalive without a thread of its
own, messages fragmented by the peer, the common case framed by ``tether.framing``, the
server's handshake, its ``transport=`` settings (how it is read: ``test_reading.py``)."""

from __future__ import annotations

import http.client
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

import tether
from tether.sync.settings import client_settings, server_settings
from tether.sync.transport import (
    KEEPALIVE_TIMEOUT_REASON,
    PushingServerConnection,
    accept_connection,
    open_connection,
)
from tether.websocket import keepalive_options

MAX = 1 << 20


class Calculator:
    def add(self, a: int, b: int) -> int:
        return a + b


@pytest.fixture
def accepted() -> Iterator[tuple[str, queue.Queue[Any]]]:
    """A listening socket whose accepted connections are answered by ``accept_connection``
    and put in the queue, not read (the test decides: ``run()`` in a thread, or never)."""
    listener = socket.create_server(("127.0.0.1", 0))
    connections: queue.Queue[Any] = queue.Queue()

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            settings = server_settings("test", keepalive_options(None), {}, max_size=MAX)
            connections.put(accept_connection(sock, ssl_context=None, settings=settings))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{listener.getsockname()[1]}", connections
    listener.close()


def client(url: str, keepalive: float | None = None, **transport: Any) -> Any:
    settings = client_settings("test", keepalive_options(keepalive), transport, open_timeout=5, max_size=MAX)
    return open_connection(url, subprotocols=None, ssl_context=None, settings=settings)


def pushed(connection: Any) -> queue.Queue[tuple[str, Any]]:
    """Attach to ``connection``; what it pushes goes to the queue returned."""
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    connection.attach(lambda data: events.put(("message", data)), lambda reason: events.put(("end", reason)))
    return events


def reading(connection: PushingServerConnection) -> threading.Thread:
    thread = threading.Thread(target=connection.run, daemon=True)
    thread.start()
    return thread


# -- keepalive -----------------------------------------------------------------------------------


def test_a_peer_that_stops_answering_pings_is_dropped_within_the_keepalive(accepted: Any) -> None:
    url, connections = accepted
    connection = client(url, keepalive=0.3)
    stalled = connections.get(timeout=5)  # never read: it answers no ping
    events = pushed(connection)
    started = time.monotonic()
    kind, reason = events.get(timeout=5)
    assert (kind, reason) == ("end", tether.session.describe_keepalive_timeout(0.3))
    assert 0.5 < time.monotonic() - started < 2.0  # a ping after 0.3 s of silence, 0.3 s for its pong
    assert connection.protocol.close_sent.code == 1011
    assert connection.protocol.close_sent.reason == KEEPALIVE_TIMEOUT_REASON
    threads = [t.name for t in threading.enumerate()]
    assert threads.count("tether-receiver") <= 1  # (no keepalive thread: the receiver pings)
    stalled_events = pushed(stalled)
    reading(stalled)  # the stalled side reads at last: the close frame, 1011
    assert stalled_events.get(timeout=5) == ("end", "peer closed the connection (code 1011: keepalive ping timeout)")


def test_a_peer_that_answers_pings_stays_connected(accepted: Any) -> None:
    url, connections = accepted
    connection = client(url, keepalive=0.1)
    served = connections.get(timeout=5)
    reading(served)
    events = pushed(connection)
    time.sleep(0.8)  # several pings, each answered
    assert events.empty() and connection.state.name == "OPEN"
    served_events = pushed(served)
    connection.send(b"still here")
    assert served_events.get(timeout=5) == ("message", b"still here")
    connection.close()
    assert events.get(timeout=5)[0] == "end"


def test_tether_connect_with_keepalive_talks_through_silences() -> None:
    with tether.serve(Calculator(), port=0, keepalive=0.1) as server:
        with tether.connect(server.url, keepalive=0.1) as peer:
            time.sleep(0.6)
            assert peer.root.add(1, 2) == 3


# -- messages ------------------------------------------------------------------------------------


def test_messages_fragmented_by_the_peer_arrive_whole(accepted: Any) -> None:
    url, connections = accepted
    with ws_connect(url, compression=None) as ws:
        served = connections.get(timeout=5)
        events = pushed(served)
        reading(served)
        ws.send([b"fra", b"gmen", b"ted"])  # websockets sends an iterable as fragments
        ws.send(["héllo, ", "wörld"])
        ws.send(b"whole")
        assert [events.get(timeout=5) for _ in range(3)] == [
            ("message", b"fragmented"),
            ("message", "héllo, wörld"),
            ("message", b"whole"),
        ]
        served.send(b"answer")
        assert ws.recv(timeout=5) == b"answer"


def test_a_message_arrives_as_bytes_of_its_own_size(accepted: Any) -> None:
    url, connections = accepted
    connection = client(url)
    served = connections.get(timeout=5)
    events = pushed(served)
    reading(served)
    for size in (0, 1, 125, 126, 65535, 65536, 200_000):
        connection.send(bytes(size))
        kind, data = events.get(timeout=5)
        assert kind == "message"
        assert type(data) is bytes and len(data) == size
    connection.close()


def test_the_common_case_is_framed_here_through_pings_and_fragments(accepted: Any) -> None:
    """Both sides frame whole binary messages themselves (tether.framing), and go on doing so
    after websockets has read pings, pongs and a fragmented message in between."""
    url, connections = accepted
    connection = client(url, keepalive=0.1)
    served = connections.get(timeout=5)
    served_events = pushed(served)
    reading(served)
    events = pushed(connection)
    for n in range(3):
        connection.send(b"call %d" % n)
        assert served_events.get(timeout=5) == ("message", b"call %d" % n)
        served.send(b"answer %d" % n)
        assert events.get(timeout=5) == ("message", b"answer %d" % n)
        time.sleep(0.25)  # pings and pongs go through websockets
    with served._lock:  # a fragmented message from the server: websockets reads it
        served.protocol.send_binary(b"frag", fin=False)
        served.protocol.send_continuation(b"mented", fin=True)
        chunks = served._output()
    with served._send_lock:
        served._write(chunks)
    assert events.get(timeout=5) == ("message", b"fragmented")
    connection.send(b"after")
    assert served_events.get(timeout=5) == ("message", b"after")
    assert connection._frames.enabled and served._frames.enabled
    connection.close()


def test_send_many_writes_messages_in_order_in_one_write(accepted: Any) -> None:
    """What several threads queued at once goes out as one write (one system call), each
    message its own frame, in order; both sides' messages are framed by tether.framing."""
    url, connections = accepted
    connection = client(url)
    served = connections.get(timeout=5)
    served_events = pushed(served)
    reading(served)
    events = pushed(connection)
    writes: list[int] = []
    sock = connection.socket

    class Counting(socket.socket):  # the connection's socket (a duplicate of it), counting writes
        def sendall(self, data: Any, flags: int = 0) -> None:
            writes.append(1)
            super().sendall(data, flags)

    # (The socket, not Connection._write: mypyc compiles tether.sync.transport, whose methods
    # cannot be replaced on an instance.)
    counting = Counting(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
    connection.socket = counting
    try:
        connection.send_many([b"one", b"", b"three" * 100])
    finally:
        connection.socket = sock
        counting.close()
    assert writes == [1]
    assert [served_events.get(timeout=5) for _ in range(3)] == [("message", b"one"), ("message", b""), ("message", b"three" * 100)]
    served.send_many([b"x", b"y"])
    assert [events.get(timeout=5) for _ in range(2)] == [("message", b"x"), ("message", b"y")]
    connection.close()
    with pytest.raises(ConnectionClosed):
        connection.send_many([b"after close"])


def test_a_frame_right_behind_the_upgrade_request_is_read_by_websockets(accepted: Any) -> None:
    """A client may send frames before it has the server's answer: then websockets' parser is
    inside them when the handshake ends, so that connection is all websockets' (no fast path),
    and the frame still arrives."""
    url, connections = accepted
    port = int(url.rsplit(":", 1)[1])
    request = (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    mask = b"\x01\x02\x03\x04"
    payload = b"early bird"
    frame = bytes((0x82, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(request + frame[:5])  # the frame's header and part of its mask
        served = connections.get(timeout=5)
        events = pushed(served)
        reading(served)
        raw.sendall(frame[5:])
        assert events.get(timeout=5) == ("message", b"early bird")
        assert not served._frames.enabled


# -- the server's handshake ----------------------------------------------------------------------


def test_a_plain_http_request_gets_an_http_error_and_the_server_serves_on() -> None:
    with tether.serve(Calculator(), port=0) as server:
        request = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        request.request("GET", "/")
        response = request.getresponse()
        assert response.status == 426  # Upgrade Required
        request.close()
        with tether.connect(server.url) as peer:
            assert peer.root.add(1, 2) == 3


def test_a_client_that_never_sends_its_request_is_dropped_after_the_servers_open_timeout() -> None:
    with tether.serve(Calculator(), port=0, transport={"open_timeout": 0.3}) as server:
        with socket.create_connection((server.host, server.port), timeout=5) as silent:
            started = time.monotonic()
            assert silent.recv(16) == b""  # closed by the server
            assert time.monotonic() - started < 3
        with tether.connect(server.url) as peer:
            assert peer.root.add(1, 2) == 3


def test_the_server_answers_the_tether_subprotocol_and_serves_a_client_offering_none() -> None:
    with tether.serve(Calculator(), port=0) as server:
        with tether.connect(server.url) as peer:
            assert peer.session.transport.subprotocol == "tether"
        with ws_connect(server.url, compression=None) as ws:  # no subprotocol offered
            assert ws.subprotocol is None
            ws.send(bytes.fromhex("60000005"))
            assert len(ws.recv(timeout=5)) == 4  # the server's exposure


# -- transport= ----------------------------------------------------------------------------------


def test_transport_settings_reach_the_connection() -> None:
    with tether.serve(Calculator(), port=0, transport={"close_timeout": 3, "server_header": "calc"}) as server:
        with tether.connect(server.url, transport={"close_timeout": 2, "user_agent_header": "me"}) as peer:
            transport = peer.session.transport
            assert transport.close_timeout == 2
            assert transport.request.headers["User-Agent"] == "me"
            assert transport.response.headers["Server"] == "calc"
            (served,) = server.peers
            assert served.session.transport.close_timeout == 3
            assert served.session.transport.request.headers["User-Agent"] == "me"


def test_transport_settings_it_does_not_take_are_refused_by_name() -> None:
    with pytest.raises(tether.UsageError, match=r"'max_size' \(use tether's max_frame_size= option\)"):
        tether.connect("ws://127.0.0.1:9", transport={"max_size": 5})
    with pytest.raises(tether.UsageError, match=r"'bogus'.*takes: .*close_timeout"):
        tether.serve(Calculator(), port=0, transport={"bogus": 1})
    with pytest.raises(tether.UsageError, match="not compressed"):
        tether.connect("ws://127.0.0.1:9", transport={"compression": "deflate"})
    with tether.serve(Calculator(), port=0, transport={"max_queue": 4, "compression": None}) as server:
        with tether.connect(server.url, transport={"max_queue": 2}) as peer:  # accepted, no queue to size
            assert peer.root.add(1, 2) == 3


def test_pause_reading_above_reaches_the_connection_and_is_checked() -> None:
    """The bound on what a peer that does not read can make us hold (the hostile case is in
    tests/security/test_backpressure.py): set by transport=, 4 MiB by default, a byte count."""
    from tether.limits import DEFAULT_PAUSE_READING_ABOVE

    with tether.serve(Calculator(), port=0, transport={"pause_reading_above": 70000}) as server:
        with tether.connect(server.url) as peer:
            assert peer.session.transport.pause_reading_above == DEFAULT_PAUSE_READING_ABOVE == 4 * 2**20
            assert peer.session.transport.hold_reading is not None and not peer.session.transport.hold_reading()
            (served,) = server.peers
            assert served.session.transport.pause_reading_above == 70000
    for bad in (0, -1, 1.5, "4MiB"):
        with pytest.raises(tether.UsageError, match="pause_reading_above is a number of bytes, at least 1"):
            tether.connect("ws://127.0.0.1:9", transport={"pause_reading_above": bad})
