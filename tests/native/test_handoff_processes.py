"""Three-party handoff between real processes on loopback: this test process is C, the
recipient; A (the introducer) and B (the owner) are ``tether serve`` processes serving
``tests.native.vats``. What is proved: the handoff takes a direct C-B link (A's frame counters
do not move while C calls), A's departure (close or SIGKILL) does not touch C's proxy, identity
holds on every route back, the tables return to their baselines, and what falls back to
forwarding does."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tether
import tether.handoff
from tether.proxy import _state

from .test_processes import start_server

Node = tuple[subprocess.Popen[str], str]


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)


@pytest.fixture
def nodes() -> Iterator[Callable[..., Node]]:
    started: list[subprocess.Popen[str]] = []

    def start(*extra: str) -> Node:
        proc, url = start_server("tests.native.vats:make_node", *extra)
        started.append(proc)
        return proc, url

    try:
        yield start
    finally:
        for proc in started:
            _stop(proc)


def _url_of(proxy: Any) -> str | None:
    return _state(proxy).session.url


def _wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        gc.collect()
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _frames(stats: dict[str, Any], b_url: str) -> tuple[int, int]:
    """A's frames on its link to B, and on the links of the peers connected to it."""
    link = stats["links"][b_url]
    served = sum(s["frames_sent"] + s["frames_received"] for s in stats["served"])
    return link["frames_sent"] + link["frames_received"], served


def test_the_handoff_takes_the_direct_link_and_a_carries_nothing_after_it(nodes: Callable[..., Node]) -> None:
    _, b_url = nodes()
    _, a_url = nodes()
    with tether.connect(a_url) as a:
        a.root.link(b_url)
        counter = a.root.remote_counter(b_url)
        assert _url_of(counter) == b_url, "C's proxy is on a connection of its own to B"
        gc.collect()
        before = a.root.stats()
        for i in range(100):
            assert counter.increment() == i + 1
        after = a.root.stats()
        b_frames_before, served_before = _frames(before, b_url)
        b_frames_after, served_after = _frames(after, b_url)
        assert b_frames_after == b_frames_before, "A's link to B carried frames after the handoff"
        # The second stats() call itself: its message in, the first one's answer out, and
        # perhaps the release of the handoff's fallback reference.
        assert served_after - served_before <= 3
        assert after["withdrawn"] == 0 and before["gifts"] == 0
        with tether.connect(b_url) as b:
            assert b.root.count() == 100


def test_the_introducer_leaving_does_not_break_the_recipients_proxy(nodes: Callable[..., Node]) -> None:
    _, b_url = nodes()
    proc_a, a_url = nodes()
    proc_a2, a2_url = nodes()
    a = tether.connect(a_url)
    a.root.link(b_url)
    first = a.root.remote_counter(b_url)
    a.root.unlink(b_url)  # A closes its own link to B
    assert first.increment() == 1
    a.close()
    os.kill(proc_a.pid, signal.SIGKILL)
    proc_a.wait(5)
    assert first.increment() == 2
    with tether.connect(a2_url) as a2:
        a2.root.link(b_url)
        second = a2.root.remote_counter(b_url)
    os.kill(proc_a2.pid, signal.SIGKILL)  # mid-conversation, with its link to B open
    proc_a2.wait(5)
    assert second is first, "two routes to one remote object give one proxy"
    assert second.increment() == 3


def test_identity_holds_on_every_route_back(nodes: Callable[..., Node]) -> None:
    _, b_url = nodes()
    _, a_url = nodes()
    with tether.connect(a_url) as a, tether.connect(b_url) as b:
        a.root.link(b_url)
        handed = a.root.remote_counter(b_url)
        direct = b.root.counter()
        assert handed is direct, "the handed-off proxy is the one C's own link to B gives"
        assert b.root.is_mine(handed), "back to its owner, it is the original object"
        assert a.root.is_held(handed, b_url), "back to the introducer, it is the introducer's proxy"
        assert a.root.pass_to(b_url, a.root.remote_counter(b_url)), "A -> B: B's own object"


def test_the_owners_tables_return_to_their_baseline(nodes: Callable[..., Node]) -> None:
    _, b_url = nodes()
    _, a_url = nodes()
    with tether.connect(b_url) as b, tether.connect(a_url) as a:

        def exposed() -> int:
            stats = b.root.stats()
            return sum(s["exposed"] for s in stats["served"]) + stats["gifts"]

        a.root.link(b_url)
        baseline = exposed()  # B's roots for this process and for A, no more
        counters = [a.root.remote_counter(b_url) for _ in range(5)]
        assert len({id(c) for c in counters}) == 1
        stats = b.root.stats()
        assert (stats["withdrawn"], stats["gifts"]) == (1, 0), "one handoff: A sends its key again while C holds it"
        assert exposed() > baseline
        del counters
        a.root.drop()
        assert _wait_for(lambda: exposed() == baseline), f"B still exposes {exposed()} (baseline {baseline})"


def test_handoff_forward_keeps_every_call_on_the_introducer(nodes: Callable[..., Node]) -> None:
    _, b_url = nodes()
    _, a_url = nodes("--handoff", "forward")
    with tether.connect(a_url) as a:
        a.root.link(b_url)
        counter = a.root.remote_counter(b_url)
        assert _url_of(counter) == a_url
        before = a.root.stats()
        for _ in range(10):
            counter.increment()
        after = a.root.stats()
        assert _frames(after, b_url)[0] - _frames(before, b_url)[0] == 20


def test_an_owner_that_refuses_the_recipient_leaves_forwarding(nodes: Callable[..., Node], tmp_path: Any) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    _, b_url = nodes("--token-file", str(token))
    _, a_url = nodes()
    with tether.connect(a_url) as a:
        a.root.link(b_url, token="s3cret")
        counter = a.root.remote_counter(b_url)
        assert _url_of(counter) == a_url, "B refused C: C uses A's reference"
        assert counter.increment() == 1


def test_after_a_handoff_an_error_names_the_owners_connection(nodes: Callable[..., Node]) -> None:
    proc_b, b_url = nodes()
    _, a_url = nodes()
    with tether.connect(a_url) as a:
        a.root.link(b_url)
        counter = a.root.remote_counter(b_url)
        os.kill(proc_b.pid, signal.SIGKILL)
        proc_b.wait(5)
        with pytest.raises(tether.ConnectionLost) as lost:
            counter.increment()
        assert b_url in str(lost.value) and a_url not in str(lost.value)
        assert a.root.pid() > 0, "the introducer's connection is untouched"


def test_a_caller_reading_its_own_connection_gets_an_answer_held_for_a_handoff(nodes: Callable[..., Node]) -> None:
    """The answer that carries the descriptor is held until the handoff is resolved, then read
    on by the worker that resolved it; the caller, which reads its connection itself while it
    waits (tether.sync.reading), must get it then, not only when more bytes come."""
    _, b_url = nodes()
    _, a_url = nodes()
    with tether.connect(a_url, keepalive=None) as a:
        a.root.link(b_url)
        got: list[Any] = []
        caller = threading.Thread(target=lambda: got.append(a.root.remote_counter(b_url)), daemon=True)
        caller.start()
        caller.join(10)  # (the server pings every 20 s: bytes that would wake a stuck reader)
        assert not caller.is_alive(), "the caller never saw its answer"
        assert _url_of(got[0]) == b_url


def test_a_connection_opened_for_a_handoff_closes_once_it_holds_nothing(
    nodes: Callable[..., Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tether.handoff, "IDLE_SECONDS", 0.2)
    _, b_url = nodes()
    _, a_url = nodes()
    with tether.connect(a_url) as a:
        a.root.link(b_url)
        counter = a.root.remote_counter(b_url)
        dialed = _state(counter).session
        assert dialed.dialed and dialed.url == b_url
        assert counter.increment() == 1
        time.sleep(0.5)
        assert not dialed.closed, "it holds a proxy: it stays open"
        del counter
        assert _wait_for(lambda: dialed.closed), "idle: it closes"
        again = a.root.remote_counter(b_url)  # the next handoff opens another
        assert _url_of(again) == b_url and _state(again).session is not dialed
        assert again.increment() == 2


def test_at_most_max_dialed_connections_are_opened_for_handoffs(
    nodes: Callable[..., Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tether.handoff, "MAX_DIALED", 0)
    _, b_url = nodes()
    _, a_url = nodes()
    with tether.connect(a_url) as a:
        a.root.link(b_url)
        counter = a.root.remote_counter(b_url)
        assert _url_of(counter) == a_url, "over the bound: forwarded"
        assert counter.increment() == 1

