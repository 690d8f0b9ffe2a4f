"""Remote debugging over in-memory pairs (``tether.debug``): what the hello says, remote frames
as frames, post-mortem and breakpoints driven through a scripted stdin, inspect on proxies,
and when the remote frames are let go."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import io
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

import tether
from tether.debug import MAX_FAILURES
from tether.session import is_factory
from tether.sync.session import Peer, Session, open_session
from tether.testing import async_pair, memory_pair, pair


def helper(value: int) -> int:
    """A module-level function, inspected through a proxy."""
    tripled = value * 3
    return tripled


class Service:
    """A service with a failure two frames deep and a breakpoint in a handler."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def divide(self, a: int, b: int) -> float:
        scale = 10 * a
        return self._ratio(a, b, scale)

    def _ratio(self, a: int, b: int, scale: int) -> float:
        reason = f"dividing {a}"
        assert reason
        return scale / b

    def stepped(self, x: int) -> int:
        y = x + 1
        tether.breakpoint()
        z = helper(y)
        return z + 1

    def add(self, a: int, b: int) -> int:
        return a + b

    def function(self) -> Any:
        return helper


@contextlib.contextmanager
def sides(server_root: Any, server: dict[str, Any], client: dict[str, Any]) -> Iterator[tuple[Peer, Peer]]:
    """Like ``tether.testing.pair``, with options of its own for each side."""
    a, b = memory_pair()
    server_session = Session(b, client=False, url="memory server", **server)
    server_peer = Peer(server_session)
    server_session.protocol.root = server_root(server_peer) if is_factory(server_root) else server_root
    server_session.start()
    client_peer = open_session(a, url="memory client", **client)
    try:
        yield client_peer, server_peer
    finally:
        client_peer.close()
        server_peer.close()
        server_session.wait_closed(5)


def typed(monkeypatch: pytest.MonkeyPatch, *commands: str) -> None:
    """What the user types at this process's terminal (pdb commands, one a line)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(c + "\n" for c in commands)))


def test_the_hello_says_debug_only_where_it_was_asked_for() -> None:
    with pair(Service(), debug=True) as (client, server):
        assert client.info["debug"] is True and server.info["debug"] is True
    with pair(Service()) as (client, server):
        assert "debug" not in client.info and "debug" not in server.info


def test_a_remote_error_carries_the_remote_frames_as_frames() -> None:
    with pair(Service(), debug=True) as (client, _):
        with pytest.raises(ZeroDivisionError) as caught:
            client.root.divide(3, 0)
    err = caught.value
    text = "".join(traceback.format_exception(err))
    marked = f"<remote memory client: {__file__}>"
    assert f'File "{marked}", line {Service.divide.__code__.co_firstlineno + 2}, in divide' in text
    assert "    return self._ratio(a, b, scale)" in text
    assert f'File "{marked}", line {Service._ratio.__code__.co_firstlineno + 3}, in _ratio' in text
    assert text.rstrip().endswith("ZeroDivisionError: division by zero")
    # Only the proxy's own frame stands between the caller and the remote frames.
    names = [frame.name for frame in traceback.extract_tb(err.__traceback__)]
    assert names == ["test_a_remote_error_carries_the_remote_frames_as_frames", "__call__", "divide", "_ratio"]
    assert "Remote traceback" not in text  # no note: the frames say it
    assert err.remote_traceback and "in _ratio" in err.remote_traceback  # type: ignore[attr-defined]


@pytest.mark.parametrize(("server_debug", "client_debug"), [(True, False), (False, True)])
def test_without_both_sides_asking_errors_carry_text_only(server_debug: bool, client_debug: bool) -> None:
    server = {"debug": server_debug, "send_tracebacks": True}
    with sides(Service(), server, {"debug": client_debug}) as (client, _):
        with pytest.raises(ZeroDivisionError) as caught:
            client.root.divide(3, 0)
        with pytest.raises(tether.AccessDenied, match=r"debugging is not on for this connection"):
            tether.post_mortem(caught.value)
        with pytest.raises(tether.AccessDenied):
            client.root._ratio  # noqa: B018 - asking alone makes no side trusted
    assert not hasattr(caught.value, "__tether_failure__")
    text = "".join(traceback.format_exception(caught.value))
    assert "<remote" not in text and "Remote traceback" in text and "in _ratio" in text


def test_post_mortem_runs_pdb_on_the_remote_frames(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    typed(monkeypatch, "p scale", "p reason", "u", "p scale + 1", "q")
    with pair(Service(), debug=True) as (client, _):
        with pytest.raises(ZeroDivisionError) as caught:
            client.root.divide(3, 0)
        tether.post_mortem(caught.value)
        out = capsys.readouterr().out
        assert "--Remote post-mortem in process" in out
        assert f"> {__file__}({Service._ratio.__code__.co_firstlineno + 3})_ratio()" in out
        assert "(Pdb) 30\n(Pdb) 'dividing 3'\n(Pdb) > " in out
        assert "(Pdb) 31\n" in out
        # The debugger quit: the frames were let go, and saying so is all a second try does.
        with pytest.raises(tether.UsageError, match=r"the frames of this failure \(ZeroDivisionError"):
            tether.post_mortem(caught.value)
        assert client.root.add(1, 2) == 3


def test_pm_debugs_the_error_being_handled(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    typed(monkeypatch, "p b", "q")
    with pair(Service(), debug=True) as (client, _):
        try:
            client.root.divide(1, 0)
        except ZeroDivisionError:
            tether.pm()
    assert "(Pdb) 0\n" in capsys.readouterr().out
    monkeypatch.delattr(sys, "last_value", raising=False)
    monkeypatch.delattr(sys, "last_exc", raising=False)
    with pytest.raises(tether.UsageError, match=r"no error to debug"):
        tether.pm()


def test_a_breakpoint_is_stepped_and_continued_and_other_calls_go_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reader, writer = _pipe()
    monkeypatch.setattr(sys, "stdin", reader)
    _SEEN.clear()
    with pair(Service(), debug=True) as (client, _):
        results: list[int] = []
        caller = threading.Thread(target=lambda: results.append(client.root.stepped(4)))
        caller.start()
        writer.write("p y\ns\n")
        writer.flush()
        _wait_for(lambda: _seen(capsys, "-> def helper"))
        # The handler waits in the debugger; other calls are served meanwhile.
        assert client.root.add(2, 3) == 5
        writer.write("n\np value\nc\n")
        writer.close()
        caller.join(10)
        assert results == [16]
    _seen(capsys, "")
    out = "".join(_SEEN)
    assert "--Remote breakpoint in stepped()" in out
    assert "-> z = helper(y)\n(Pdb) 5\n(Pdb) --Call--" in out
    assert "(Pdb) 5\n" in out.split("-> tripled = value * 3", 1)[1]


def test_q_aborts_the_handler_and_the_caller_gets_bdbquit(monkeypatch: pytest.MonkeyPatch) -> None:
    typed(monkeypatch, "q")
    with pair(Service(), debug=True) as (client, _):
        with pytest.raises(tether.RemoteError, match=r"bdb\.BdbQuit"):
            client.root.stepped(1)
        assert client.root.add(1, 1) == 2


def test_stepping_past_the_handler_lets_it_go(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    typed(monkeypatch, *["n"] * 6)
    with pair(Service(), debug=True) as (client, _):
        assert client.root.stepped(1) == 7
        assert "--the handler returned: the debugger lets it go--" in capsys.readouterr().out
        assert client.root.add(1, 1) == 2


class Member:
    pass


class Dropping:
    def drop(self) -> int:
        members: Any = weakref.WeakSet()
        member = Member()
        members.add(member)
        tether.breakpoint()
        del member  # the WeakSet's callback runs here
        return len(members)


def test_stepping_does_not_stop_in_a_weakset_callback(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # (A collection can run such a callback at any step, as one did in a test above.)
    typed(monkeypatch, "s", "s", "p len(members)", "c")
    with pair(Dropping(), debug=True) as (client, _):
        assert client.root.drop() == 0
    out = capsys.readouterr().out
    assert "_weakrefset" not in out
    assert "(Pdb) 0\n" in out  # the steps went on in drop(), where len(members) is 0


def _collected(phase: str, info: dict[str, int]) -> None:
    """A gc callback, as test tools and profilers install them."""
    _note_collection(phase)


def _note_collection(phase: str) -> None:
    noted = phase
    _COLLECTIONS.append(noted)


_COLLECTIONS: list[Any] = []


class Cyclic:
    """Garbage only a collection frees: its finalizer runs inside the collection."""

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        _note_collection("finalized")


class Collecting:
    def collect(self) -> int:
        gc.disable()  # (no automatic collection frees the cycle before the stepping reaches it)
        try:
            Cyclic()
            tether.breakpoint()
            gc.collect()  # the finalizer and the gc callback run here, and could at any step
            found = len(_COLLECTIONS)
        finally:
            gc.enable()
        return found


def test_stepping_does_not_stop_in_what_a_collection_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _COLLECTIONS.clear()
    typed(monkeypatch, "s", "s", "p found >= 3", "c")
    gc.callbacks.append(_collected)  # (the collector keeps this very list)
    try:
        with pair(Collecting(), debug=True) as (client, _):
            assert client.root.collect() >= 3  # they ran: the callback (start, stop), the finalizer
    finally:
        gc.callbacks.remove(_collected)
    assert "finalized" in _COLLECTIONS
    out = capsys.readouterr().out
    assert "_collected" not in out and "_note_collection" not in out and "__del__" not in out
    assert "(Pdb) True\n" in out  # the two steps went on in collect(), past found = ...


def test_a_breakpoint_without_a_debugging_caller_says_so_and_goes_on(capsys: pytest.CaptureFixture[str]) -> None:
    with sides(Service(), {"debug": True}, {}) as (client, _):  # the client did not ask
        assert client.root.stepped(1) == 7
    assert "tether.breakpoint(): no debugger: the caller did not ask for debugging" in capsys.readouterr().err
    with pair(Service()) as (client, _):
        assert client.root.stepped(1) == 7
    assert "tether.breakpoint(): no debugger: this side does not offer debugging" in capsys.readouterr().err
    tether.breakpoint()  # not in a handler at all
    assert "this code does not run on behalf of a peer's call" in capsys.readouterr().err


def test_a_breakpoint_can_fall_back_to_local_pdb(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    typed(monkeypatch, "p here", "c")
    here = "local frame"

    def stop() -> str:
        tether.breakpoint(local=True)
        return here

    assert stop() == "local frame"
    sys.settrace(None)
    assert "'local frame'" in capsys.readouterr().out


def test_inspect_on_a_proxy_works_as_on_the_object() -> None:
    with pair(Service(), debug=True) as (client, _):
        root = client.root
        assert inspect.getsource(root.divide) == inspect.getsource(Service.divide)
        lines, first = inspect.getsourcelines(root.function())
        assert (lines, first) == inspect.getsourcelines(helper)
        assert inspect.getsource(root.function()).startswith("def helper(value: int) -> int:")
        assert str(inspect.signature(root.function())) == "(value: int) -> int"
        assert "_ratio" in dir(root) and "gate" in dir(root)  # private names too: a trusted peer
        members = dict(inspect.getmembers(root))
        assert "_ratio" in members and "add" in members
    with pair(Service()) as (client, _):  # no debugging: the source is not shown
        with pytest.raises(TypeError):
            inspect.getsource(client.root.divide)
        assert "_ratio" not in dir(client.root)


def test_inspect_getsource_of_a_remote_class() -> None:
    class Holder:
        def kind(self) -> type:
            return Service

    with pair(Holder(), debug=True) as (client, _):
        source = inspect.getsource(client.root.kind())
    assert source == inspect.getsource(Service)


def test_the_remote_frames_are_let_go_with_the_callers_exception() -> None:
    with pair(Service(), debug=True) as (client, server):
        before = server.stats()["exposed"]
        try:
            client.root.divide(1, 0)
        except ZeroDivisionError as err:
            failure = err.__tether_failure__  # type: ignore[attr-defined]
            assert "failure ZeroDivisionError" in repr(failure)
            del failure
        assert server.stats()["exposed"] == before + 1
        gc.collect()
        _wait_for(lambda: server.stats()["exposed"] == before)


def test_a_connection_keeps_the_frames_of_its_newest_failures_only() -> None:
    with pair(Service(), debug=True) as (client, _):
        errors = []
        for _ in range(MAX_FAILURES + 1):
            try:
                client.root.divide(1, 0)
            except ZeroDivisionError as err:
                errors.append(err)
        assert "(let go)" in repr(errors[0].__tether_failure__)  # type: ignore[attr-defined]
        assert "(held)" in repr(errors[1].__tether_failure__)  # type: ignore[attr-defined]


def test_grant_debugging_from_a_root_factory_is_for_that_peer_only() -> None:
    peers: list[Any] = []

    def factory(peer: Any) -> Service:
        if not peers:
            tether.grant_debugging(peer)  # the first peer only
        peers.append(peer)
        return Service()

    for expected in (True, False):
        with sides(factory, {}, {"debug": True}) as (client, _):
            with pytest.raises(ZeroDivisionError) as caught:
                client.root.divide(1, 0)
            assert hasattr(caught.value, "__tether_failure__") is expected
            assert client.info.get("debug", False) is expected
    with pytest.raises(tether.UsageError, match=r"takes the Peer a root factory is given"):
        tether.grant_debugging(object())


def test_async_handlers_show_their_frames_but_cannot_stop_in_a_debugger(capsys: pytest.CaptureFixture[str]) -> None:
    class Async:
        async def fail(self) -> None:
            await asyncio.sleep(0)
            raise KeyError("async")

        async def stop(self) -> str:
            tether.breakpoint()
            return "went on"

    async def main() -> None:
        async with async_pair(Async(), debug=True) as (client, _):
            with pytest.raises(KeyError) as caught:
                await client.root.fail()
            assert "in fail" in "".join(traceback.format_exception(caught.value))
            assert await client.root.stop() == "went on"

    asyncio.run(main())
    assert "a coroutine handler runs on an event loop" in capsys.readouterr().err


def test_the_debug_option_is_checked() -> None:
    assert tether.Options(debug=True).session(serving=True)["debug"] is True
    with pytest.raises(tether.UsageError, match=r"debug= is True or False"):
        tether.Options(debug="yes")  # type: ignore[arg-type]


# -- helpers ---------------------------------------------------------------------------------

_SEEN: list[str] = []


def _seen(capsys: pytest.CaptureFixture[str], text: str) -> bool:
    _SEEN.append(capsys.readouterr().out)
    return text in "".join(_SEEN)


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _pipe() -> tuple[Any, Any]:
    import os

    r, w = os.pipe()
    return open(r), open(w, "w")
