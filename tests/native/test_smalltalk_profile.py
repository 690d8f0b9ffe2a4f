"""The Smalltalk profile (docs/protocol.md 2.8), over real WebSockets on loopback: what a peer
that never says hello as a Python Tether sends and gets.

The Smalltalk side is played by raw WebSockets writing and reading Caffeine's words by hand
(a client that exposes its Tether as 0x60000001, as Caffeine's JavaScript does; a listener that
never answers ``hello``), and this side by ``tether.serve`` / ``tether.connect``.
"""

from __future__ import annotations

import gc
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import serve as ws_serve

import tether

pytestmark = pytest.mark.timeout(60)

JS_BASE = 0x60000001  # Caffeine's JavaScript: "my object" markers are 0x60000001 + key
ID = bytes(range(16))


def words(*ws: int) -> bytes:
    return struct.pack(f">{len(ws)}I", *ws)


def symbol(text: str) -> bytes:
    data = text.encode()
    return words(0x20000004, len(data)) + data


def small(n: int) -> bytes:
    return words(0x40000000 + n)


def message(receiver: int, selector: str, *args: bytes, exchange_id: bytes = ID) -> bytes:
    """A Caffeine message-send: Tether tag, UUID, receiver (a bare key), Message, Symbol, Array."""
    return (
        words(0x20000007, 0x20000011, 16) + exchange_id + words(receiver, 0x20000021)
        + symbol(selector) + words(0x20000008, len(args)) + b"".join(args)
    )  # fmt: skip


class CaffeineReader:
    """Reads Caffeine's words only (the tags the public JavaScript Tether knows); anything
    else raises, as that code would stop there."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def word(self) -> int:
        (w,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        return int(w)

    def bytes_(self) -> bytes:
        n = self.word()
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def value(self) -> Any:
        w = self.word()
        if 0x60000000 <= w < 0x70000000:
            return ("mine", w)
        if 0x40000000 <= w < 0x60000000:
            return w - 0x40000000
        if w < 0x20000000:
            return ("yours", w)
        if w in (0x20000001, 0x20000002, 0x20000003):
            return {0x20000001: True, 0x20000002: False, 0x20000003: None}[w]
        if w in (0x20000004, 0x20000005):
            return self.bytes_().decode()
        if w in (0x2000001B, 0x20000011):
            return self.bytes_()
        if w == 0x20000008:
            return [self.value() for _ in range(self.word())]
        raise AssertionError(f"tag {w:#010x} is not one of Caffeine's words")

    def message(self) -> tuple[bytes, Any, str, list[Any]]:
        assert self.word() == 0x20000007, "a message-send"
        exchange_id = self.value()
        assert isinstance(exchange_id, bytes), f"the exchange id must be a UUID, not {exchange_id!r}"
        receiver = self.value()
        assert self.word() == 0x20000021
        selector = self.value()
        args = self.value()
        assert self.pos == len(self.data)
        return exchange_id, receiver, selector, args


class Table:
    """A server root that a Smalltalk peer messages with keyword and binary selectors."""

    def __init__(self) -> None:
        self.items: dict[int, int] = {}
        self.total = 0

    def at_put(self, key: int, value: int) -> int:
        self.items[key] = value
        return value

    def at(self, key: int) -> int:
        return self.items[key]

    def __add__(self, n: int) -> int:
        self.total += n
        return self.total

    def keep_and_drop(self, obj: Any) -> str:
        """Receive the peer's object (a proxy here), then let it go: a release would follow."""
        del obj
        gc.collect()
        return "dropped"

    def ask(self, obj: Any) -> int:
        """Send the peer's object a keyword message, wait a little, give up (a cancel would follow)."""
        try:
            with tether.timeout(0.3):
                obj.at_put(1, 2)
        except TimeoutError:
            return 1
        return 0


def next_frame(ws: Any, timeout: float = 5) -> bytes:
    frame = ws.recv(timeout=timeout)
    assert isinstance(frame, bytes)
    return frame


def nothing_more(ws: Any, seconds: float = 0.5) -> None:
    try:
        frame = ws.recv(timeout=seconds)
    except TimeoutError:
        return
    raise AssertionError(f"a frame a Smalltalk peer cannot read arrived: {frame[:16].hex()}...")


@pytest.fixture
def js_peer() -> Iterator[tuple[Any, Table, Any]]:
    """A raw Caffeine-JavaScript-style client of a tether.serve server: (socket, table, root key)."""
    table = Table()
    with tether.serve(table, host="127.0.0.1", port=0) as server:
        ws = ws_connect(server.url, compression=None)
        with ws:
            ws.send(words(JS_BASE + 0))  # our Tether, key 0, in the JavaScript convention
            assert next_frame(ws) == words(JS_BASE + 0), "the server must answer in the detected base"
            ws.send(message(0, "root"))
            answer = CaffeineReader(next_frame(ws))
            assert answer.word() == 0x2000001D and answer.value() == ID
            kind, marker = answer.value()
            assert kind == "mine"
            yield ws, table, marker - JS_BASE
            stats = server.peers[0].stats() if server.peers else None
            assert stats is None or stats["proxies"] == 0


def test_keyword_and_binary_selectors_reach_the_python_names(js_peer: tuple[Any, Table, Any]) -> None:
    ws, table, root = js_peer
    ws.send(message(root, "at:put:", small(1), small(5)))
    assert CaffeineReader(next_frame(ws)).data[28:] == small(5)
    ws.send(message(root, "at:", small(1)))
    assert next_frame(ws)[28:] == small(5)
    ws.send(message(root, "+", small(2)))
    assert next_frame(ws)[28:] == small(2)
    ws.send(message(root, "+", small(3)))  # (after the first answer: each message runs in a
    assert next_frame(ws)[28:] == small(5)  # worker of its own, so two at once may end in any order)
    assert table.items == {1: 5} and table.total == 5


def test_a_peer_without_hello_gets_no_release_and_no_cancel(js_peer: tuple[Any, Table, Any]) -> None:
    """A release and a cancel are one-way messages (a nil exchange id), which Caffeine's code
    cannot read: a peer that never said hello as a Python Tether keeps its objects, and an
    abandoned call is not cancelled; the selector it gets is the Smalltalk one."""
    ws, _, root = js_peer
    ws.send(message(root, "keep_and_drop:", words(JS_BASE + 7)))  # our object 7
    assert CaffeineReader(next_frame(ws)).data[28:] == words(0x20000005, 7) + b"dropped"
    nothing_more(ws)
    ws.send(message(root, "ask:", words(JS_BASE + 8)))
    _, receiver, selector, args = CaffeineReader(next_frame(ws)).message()
    assert (receiver, selector, args) == (("yours", 8), "at:put:", [1, 2])  # at_put(1, 2) -> at:put:
    answer = next_frame(ws)  # we never answer: the server gives up after 0.3 s
    assert answer[12:28] == ID and answer[28:] == small(1)
    nothing_more(ws)


def test_an_answer_to_an_id_never_sent_creates_no_proxy(js_peer: tuple[Any, Table, Any]) -> None:
    ws, _, root = js_peer
    stray = bytes(range(100, 116))
    ws.send(words(0x2000001D, 0x20000011, 16) + stray + words(0x20000008, 3, JS_BASE + 1, JS_BASE + 2, JS_BASE + 3))
    nothing_more(ws)  # no error, no release
    ws.send(message(root, "at:put:", small(2), small(9)))
    assert next_frame(ws)[28:] == small(9)  # the conversation goes on


class SmalltalkListener:
    """A raw listener in Smalltalk's convention (0x60000000 base) that exposes its Tether,
    answers ``root`` with its object 1 and ``at:put:`` with 3, and never answers ``hello``."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[Any]]] = []
        self.server = ws_serve(self.handle, "127.0.0.1", 0, compression=None)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}"

    def handle(self, ws: Any) -> None:
        assert ws.recv(timeout=5) == words(0x60000000)  # the client's Tether
        ws.send(words(0x60000000))
        while True:
            try:
                frame = ws.recv(timeout=10)
            except Exception:
                return
            exchange_id, _, selector, args = CaffeineReader(frame).message()  # Caffeine words only
            self.received.append((selector, args))
            if selector == "root":
                ws.send(words(0x2000001D, 0x20000011, 16) + exchange_id + words(0x60000001))
            elif selector == "at:put:":
                ws.send(words(0x2000001D, 0x20000011, 16) + exchange_id + small(3))

    def __enter__(self) -> SmalltalkListener:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.server.shutdown()
        self.thread.join(5)


def test_a_listener_that_never_answers_hello_can_be_called() -> None:
    with SmalltalkListener() as listener, tether.connect(listener.url, open_timeout=5) as peer:
        assert peer.info == {}  # no hello: a Smalltalk peer
        assert peer.root.at_put(1, 2) == 3
    hello, root, at_put = listener.received
    assert hello[0] == "hello" and root == ("root", []) and at_put == ("at:put:", [1, 2])
    info = hello[1][0]  # the hello argument, read with Caffeine's words only
    assert dict(zip(info[::2], info[1::2], strict=True))["language"] == "python"


def test_smalltalk_selectors_for_python_calls() -> None:
    from tether.dispatch import python_name, smalltalk_selector

    cases = {("size", 0): "size", ("at_put", 2): "at:put:", ("add", 1): "add:", ("__add__", 1): "+",
             ("__eq__", 1): "=", ("value_with", 2): "value:with:", ("do_it", 1): "do_it"}  # fmt: skip
    for (name, arity), selector in cases.items():
        assert smalltalk_selector(name, arity) == selector
        if selector != name:
            assert python_name(selector) in (name, name.rstrip("_"))
