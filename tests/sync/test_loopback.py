"""The sync face over real WebSockets on loopback: calls, callbacks, nesting, concurrency,
distributed GC, and bad input from a raw WebSocket client."""

from __future__ import annotations

import gc
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

import tether
from tether.codec import Encoder
from tether.frames import message_send_bytes

from ..native.services import Calculator, make_service

ID = bytes(range(16))


def words(*ws: int) -> bytes:
    return b"".join(struct.pack(">I", w) for w in ws)


class ClientRoot:
    def answer(self, question: str) -> str:
        return f"client answers {question}"

    def bounce(self, n: int, other: Any) -> int:
        return 0 if n == 0 else 1 + other.bounce(n - 1, self)


@pytest.fixture(scope="module")
def server() -> Iterator[tether.Server]:
    with tether.serve(make_service, host="127.0.0.1", port=0, send_tracebacks=True) as srv:
        yield srv


@pytest.fixture
def peer(server: tether.Server) -> Iterator[tether.Peer]:
    with tether.connect(server.url, root=ClientRoot()) as p:
        yield p


def test_the_issue_example() -> None:
    with tether.serve(Calculator(), host="127.0.0.1", port=0) as srv:
        assert srv.url.startswith("ws://127.0.0.1:")
        with tether.connect(srv.url) as p:
            assert p.root.add(3, 4) == 7


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_available(), reason="this machine has no IPv6 loopback (::1)")
def test_ipv6_loopback() -> None:
    with tether.serve(Calculator(), host="::1", port=0) as srv:
        assert srv.url.startswith("ws://[::1]:")
        with tether.connect(srv.url) as p:
            assert p.root.add(1, 2) == 3


def test_server_calls_back_into_the_client(peer: tether.Peer) -> None:
    assert peer.root.ask_client("why") == "client answers why"
    assert peer.root.apply(lambda a, b: a * b, 6, 7) == 42


def test_nested_calls_500_hops_over_the_wire(peer: tether.Peer) -> None:
    assert peer.root.bounce(500, ClientRoot()) == 500


def test_200_blocking_calls_run_concurrently_and_a_quick_call_answers_at_once(peer: tether.Peer) -> None:
    root = peer.root
    results: list[str] = []
    started = time.perf_counter()
    threads = [threading.Thread(target=lambda: results.append(root.sleep(1))) for _ in range(200)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    quick = time.perf_counter()
    assert root.add(2, 2) == 4
    assert time.perf_counter() - quick < 0.5
    for t in threads:
        t.join(10)
    assert results == ["slept"] * 200
    assert time.perf_counter() - started < 5


def test_frames_queued_by_several_threads_at_once_go_out_in_one_write(peer: tether.Peer) -> None:
    """Three callers queue their calls while a send is under way: none waits for the send
    lock, and the sending thread, once done, sends all three with one ``send_many`` (one
    system call); every caller gets its own answer."""
    session: Any = peer.session
    batches: list[int] = []
    send_many = session._send_many
    session._send_many = lambda frames: batches.append(len(frames)) or send_many(frames)
    results: list[int] = []
    sending = threading.Event()
    go_on = threading.Event()
    transport = session.transport

    class SlowSend:  # the transport, whose send is under way until go_on (the first call's)
        def send(self, frame: bytes) -> None:
            sending.set()
            go_on.wait(30)
            transport.send(frame)

        def __getattr__(self, name: str) -> Any:
            return getattr(transport, name)

    # (A transport of its own, not a send replaced on the connection: mypyc compiles
    # tether.sync.transport, whose methods cannot be replaced on an instance.)
    session.transport = SlowSend()
    first = threading.Thread(target=lambda: results.append(peer.root.add(0, 100)))
    first.start()
    assert sending.wait(5)
    session.transport = transport
    threads = [threading.Thread(target=lambda i=i: results.append(peer.root.add(i, 100))) for i in (1, 2, 3)]
    for thread in threads:
        thread.start()
    until = time.monotonic() + 5
    while len(session.protocol._outbox) < 3 and time.monotonic() < until:
        time.sleep(0.001)
    assert len(session.protocol._outbox) == 3

    def in_flush() -> list[threading.Thread]:
        frames = sys._current_frames()
        return [t for t in threads if t.ident in frames and frames[t.ident].f_code.co_name == "_flush"]

    try:
        until = time.monotonic() + 5
        while in_flush() and time.monotonic() < until:
            time.sleep(0.001)
        assert in_flush() == []  # (their threads went on to wait for their answers)
    finally:
        go_on.set()
    for thread in [first, *threads]:
        thread.join(5)
    assert sorted(results) == [100, 101, 102, 103]
    assert batches == [3]


def test_remote_error_with_traceback(peer: tether.Peer) -> None:
    with pytest.raises(ZeroDivisionError, match="remotely") as info:
        peer.root.fail()
    assert "in fail" in info.value.remote_traceback  # type: ignore[attr-defined]


def test_refused_attribute_reaches_the_caller_and_the_connection_survives(peer: tether.Peer) -> None:
    with pytest.raises(tether.AccessDenied):
        peer.root._private()
    assert peer.root.add(1, 1) == 2


def test_stats_has_the_documented_keys(peer: tether.Peer) -> None:
    stats = peer.stats()
    assert set(stats) >= {"exposed", "proxies", "pending", "frames_sent", "frames_received", "bytes_sent", "bytes_received"}
    assert stats["frames_sent"] >= 3 and stats["bytes_received"] > 0


def test_10000_by_reference_arguments_are_all_released(peer: tether.Peer) -> None:
    class Token:
        pass

    echo = peer.root.echo
    baseline = peer.stats()["exposed"]
    for _ in range(10_000):
        echo(Token())
    deadline = time.monotonic() + 10
    while peer.stats()["exposed"] != baseline and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert peer.stats()["exposed"] == baseline


def test_server_closing_fails_pending_calls_within_a_second() -> None:
    srv = tether.serve(Calculator(), host="127.0.0.1", port=0)
    p = tether.connect(srv.url)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            p.root.sleep(10)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.2)
    started = time.perf_counter()
    srv.close()
    t.join(2)
    assert not t.is_alive() and time.perf_counter() - started < 1.5
    assert isinstance(errors[0], tether.ConnectionLost)
    with pytest.raises(tether.ConnectionLost):
        p.root.add(1, 2)
    p.close()


def test_connecting_to_nothing_is_a_clear_error() -> None:
    with tether.serve(Calculator(), host="127.0.0.1", port=0) as srv:
        port = srv.port
    with pytest.raises(tether.ConnectionLost, match="cannot connect"):
        tether.connect(f"ws://127.0.0.1:{port}", open_timeout=2)


# -- the raw conversation, byte for byte --------------------------------------------------


def raw_open(url: str, k: int = 5, base: int = 0x60000000) -> Any:
    """Open a raw conversation exposing our Tether as key ``k`` in the marker ``base`` we use;
    return the socket and the server's Tether key as read in that base."""
    ws = ws_connect(url, compression=None, legacy=True)
    ws.send(words(base + k))
    reply = ws.recv(timeout=5)
    assert len(reply) == 4 and base <= struct.unpack(">I", reply)[0] < 0x70000000
    return ws, struct.unpack(">I", reply)[0] - base


def raw_send(ws: Any, receiver: int, selector: str, args: list[Any]) -> bytes:
    ws.send(message_send_bytes(Encoder(), ID, receiver, selector, args))
    return ws.recv(timeout=5)  # type: ignore[no-any-return]


def test_raw_smalltalk_style_conversation(server: tether.Server) -> None:
    with tether.serve(Calculator(), host="127.0.0.1", port=0) as srv:
        ws, s = raw_open(srv.url)
        with ws:
            answer = raw_send(ws, s, "root", [])
            assert answer[:4] == words(0x2000001D)
            assert answer[4:28] == words(0x20000011, 16) + ID
            marker = struct.unpack(">I", answer[28:])[0]
            assert len(answer) == 32 and 0x60000000 < marker < 0x70000000
            r = marker - 0x60000000
            answer = raw_send(ws, r, "add", [3, 4])
            assert answer == words(0x2000001D, 0x20000011, 16) + ID + words(0x40000007)


@pytest.mark.parametrize("given", [True, False], ids=["marker_base given", "marker_base detected"])
def test_raw_peer_may_use_the_javascript_marker_base(given: bool) -> None:
    """Caffeine's JavaScript writes and reads "my object" markers as 0x60000001 + key. Given as
    marker_base=, or detected from the client's first exposure frame (0x60000001 can only be
    its Tether, key 0, in that convention), the server then writes its own markers in that base."""
    options = {"marker_base": 0x60000001} if given else {}
    with tether.serve(make_service, host="127.0.0.1", port=0, **options) as srv:
        ws, s = raw_open(srv.url, k=0, base=0x60000001)  # sends 0x60000001: key 0 in the JavaScript convention
        with ws:
            assert s == 0, "the server's Tether (its key 0) must be exposed as 0x60000001"
            root_marker = struct.unpack(">I", raw_send(ws, s, "root", [])[28:32])[0]
            assert root_marker == 0x60000002  # the root is the server's key 1, in the same base
            ws.send(message_send_bytes(Encoder(), ID, 1, "ask_client", ["q"]))
            request = ws.recv(timeout=5)  # the server asks our Tether for our root
            assert request[:8] == words(0x20000007, 0x20000011)
            assert request[28:32] == words(0), "our Tether must be addressed as key 0"
            ws.send(words(0x2000001D) + request[4:28] + words(0x20000003))  # our root: nil
            reply = ws.recv(timeout=5)
            assert error_answer_of(reply) == "builtins.AttributeError"


def error_answer_of(reply: bytes) -> str:
    assert reply[:4] == words(0x20000109), reply[:4].hex()
    assert reply[28:32] == words(0x20000005)
    n = struct.unpack(">I", reply[32:36])[0]
    return reply[36 : 36 + n].decode()


def test_malformed_message_send_gets_an_error_answer_and_the_connection_goes_on(server: tether.Server) -> None:
    ws, s = raw_open(server.url)
    with ws:
        good = message_send_bytes(Encoder(), ID, s, "hello", [{}])
        ws.send(good[:-3])  # truncated
        assert error_answer_of(ws.recv(timeout=5)) == "tether.exceptions.ProtocolError"
        ws.send(good[:32] + words(0x20000005, 0xFFFFFFF0))  # huge declared length as receiver
        assert error_answer_of(ws.recv(timeout=5)) == "tether.exceptions.ProtocolError"
        assert error_answer_of(raw_send(ws, 4242, "add", [1, 2])) == "tether.exceptions.ProtocolError"
        assert raw_send(ws, s, "hello", [{}])[:4] == words(0x2000001D)


def test_unknown_tag_closes_only_that_connection(server: tether.Server, peer: tether.Peer) -> None:
    ws, _ = raw_open(server.url)
    with ws:
        ws.send(words(0x20000FFF, 1, 2))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1002
        assert "unknown frame tag 0x20000fff" in info.value.rcvd.reason
    assert peer.root.add(1, 2) == 3


def test_raw_text_frames_and_frames_over_the_limit_close_the_connection_and_a_tether_client_checks_first() -> None:
    with tether.serve(Calculator(), host="127.0.0.1", port=0, max_frame_size=4096) as srv:
        with tether.connect(srv.url, max_frame_size=1 << 20) as other:
            ws, _ = raw_open(srv.url)
            with ws:
                ws.send(b"\x00" * 5000)
                with pytest.raises(ConnectionClosed) as info:
                    ws.recv(timeout=5)
                assert info.value.rcvd is not None and info.value.rcvd.code == 1009
            ws, _ = raw_open(srv.url)
            with ws:
                ws.send("text")
                with pytest.raises(ConnectionClosed) as info:
                    ws.recv(timeout=5)
                assert info.value.rcvd is not None and info.value.rcvd.code == 1002
            assert other.root.add(2, 3) == 5
            with pytest.raises(tether.FrameTooLarge, match="over the 4096 bytes the server accepts"):
                other.root.echo(b"x" * 10_000)  # over the server's limit, announced: refused here
            assert other.root.add(3, 4) == 7  # and this connection lives on
