"""``tether.trace.Trace``: the transcript of one connection, through ``Protocol.observer``."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from tether.testing import pair
from tether.trace import Entry, Trace, exception_text, without_tether_frames


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def increment(self, by: int = 1) -> int:
        self.count += by
        return self.count


class Library:
    def add(self, a: int, b: int) -> int:
        return a + b

    def titles(self) -> list[str]:
        return ["SICP", "Smalltalk-80"]

    def author(self, title: str) -> str:
        return {"SICP": "Abelson & Sussman"}[title]

    def new_counter(self) -> Counter:
        return Counter()

    def ping(self, n: int, other: Any) -> int:
        return 0 if n == 0 else 1 + other.ping(n - 1, self)


class Console:
    def ping(self, n: int, other: Any) -> int:
        return 0 if n == 0 else 1 + other.ping(n - 1, self)


def traced(quiet: frozenset[str] | None = None) -> tuple[list[Entry], list[Trace], Any]:
    entries: list[Entry] = []
    traces: list[Trace] = []

    def make_root(peer: Any) -> Library:
        options = {} if quiet is None else {"quiet": quiet}
        trace = Trace(peer.session, "native", "client", entries.append, **options)
        traces.append(trace)
        return trace.name(Library(), "library")

    return entries, traces, make_root


def lines(entries: list[Entry]) -> list[str]:
    return [f"{'>' if e.direction == 'sent' else '<'} {e.exchange} {e.kind} {e.text} @{e.depth}" for e in entries]


def test_trace_is_the_protocol_observer_and_labels_calls_and_answers_alike() -> None:
    entries, traces, make_root = traced()
    with pair(make_root, Console(), send_tracebacks=True) as (client, server):
        assert server.session.protocol.observer is traces[0]
        lib = client.root
        assert lib.add(3, 4) == 7
        counter = lib.new_counter()
        assert counter.increment(5) == 5
        with pytest.raises(KeyError):
            lib.author("Dune")
    shown = lines(entries)
    # the client's handshake: C1 hello, C2 root, answered with the same labels
    assert shown[0].startswith("< C1 call tether.hello(")
    assert shown[2:4] == ["< C2 call tether.root() @0", "> C2 answer = <library> @0"]
    assert "< C3 call library.add(3, 4) @0" in shown and "> C3 answer = 7 @0" in shown
    assert "> C4 answer = <Counter> @0" in shown
    assert "< C5 call Counter.increment(5) @0" in shown and "> C5 answer = 5 @0" in shown
    assert "< C6 call library.author('Dune') @0" in shown and "> C6 error raised KeyError: 'Dune' @0" in shown


def test_nested_calls_are_indented_by_how_many_calls_wait() -> None:
    entries, _, make_root = traced()
    with pair(make_root, Console()) as (client, _server):
        assert client.root.ping(3, Console()) == 3
    shown = lines(entries)
    start = next(i for i, line in enumerate(shown) if line.startswith("< C3 call library.ping(3, <Console#"))
    console = shown[start].split("<")[2].split(">")[0]  # the proxy's label: its class and key
    assert shown[start:] == [
        f"< C3 call library.ping(3, <{console}>) @0",
        f"> N1 call {console}.ping(2, <library>) @1",
        f"< C4 call library.ping(1, <{console}>) @2",
        f"> N2 call {console}.ping(0, <library>) @3",
        "< N2 answer = 0 @3",
        "> C4 answer = 1 @2",
        "< N1 answer = 2 @1",
        "> C3 answer = 3 @0",
    ]


def test_quiet_selectors_and_their_answers_are_left_out() -> None:
    entries, _, make_root = traced(quiet=frozenset({"titles", "release"}))
    with pair(make_root) as (client, _server):
        assert client.root.titles() == ["SICP", "Smalltalk-80"]
        assert client.root.add(1, 2) == 3
    texts = [e.text for e in entries]
    assert not any("titles" in t or "SICP" in t for t in texts)
    assert "library.add(1, 2)" in texts  # and it is the client's 3rd call: titles took no label
    assert [e.exchange for e in entries if e.text == "library.add(1, 2)"] == ["C3"]


def test_a_received_error_carries_its_remote_traceback_without_tether_frames() -> None:
    received: list[Entry] = []

    class Page:
        def look(self, lib: Any) -> str:
            return str(lib.author("Dune"))

    def make_root(peer: Any) -> Page:
        Trace(peer.session, "native", "client", received.append)
        return Page()

    with pair(make_root, Library(), send_tracebacks=True) as (client, _server):
        with pytest.raises(KeyError):
            client.root.look(client.session.protocol.root)
    errors = [e for e in received if e.kind == "error" and e.direction == "received"]
    assert errors and errors[0].text == "raised KeyError: 'Dune'"
    assert errors[0].traceback is not None and "in author" in errors[0].traceback


def test_without_tether_frames() -> None:
    traceback = "\n".join([
        "Traceback (most recent call last):",
        '  File "/lib/python3.14/site-packages/tether/dispatch.py", line 89, in _call',
        "    return obj(*args, **kwargs)",
        "           ^^^^^^^^^^^^^^^^^^^^",
        '  File "/lib/python3.14/site-packages/tether/aio/session.py", line 9, in run',
        "    await x",
        '  File "/home/me/tether/src/tether_demo/web.py", line 352, in author',
        "    return self.shelf[title]",
        "           ~~~~~~~~~~^^^^^^^",
        '  File "/home/me/tether/app/tool.py", line 3, in helper',
        "    pass",
        "KeyError: 'Dune'",
    ])  # fmt: skip
    assert without_tether_frames(traceback).splitlines() == [
        "Traceback (most recent call last):",
        '  File "/home/me/tether/src/tether_demo/web.py", line 352, in author',
        "    return self.shelf[title]",
        '  File "/home/me/tether/app/tool.py", line 3, in helper',
        "    pass",
        "KeyError: 'Dune'",
    ]
    only_tether = "\n".join([*traceback.splitlines()[:6], "pyodide.ffi.JsException: SyntaxError"])
    assert without_tether_frames(only_tether).splitlines() == [
        "Traceback (most recent call last):",
        '  File "/lib/python3.14/site-packages/tether/aio/session.py", line 9, in run',
        "    await x",
        "pyodide.ffi.JsException: SyntaxError",
    ]
    assert without_tether_frames(None) == "(none)"


def test_exception_text() -> None:
    assert exception_text(KeyError("Dune")) == "KeyError: 'Dune'"
    assert exception_text(ValueError("bad")) == "ValueError: bad"
    assert exception_text(RuntimeError()) == "RuntimeError"


def test_importing_trace_loads_no_io_framework() -> None:
    # The page imports it inside Pyodide, where asyncio is there but websockets and aiohttp are not.
    code = (
        "import sys, tether.trace\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {'asyncio', 'websockets', 'js', 'aiohttp'})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
