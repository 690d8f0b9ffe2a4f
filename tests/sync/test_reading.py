"""How the sync face reads a connection (``tether.sync.reading``, leader/followers): a caller
that waits for an answer reads the connection on its own thread when nobody else reads it; a
message the session would give to a worker runs on the thread that read it while another
thread watches the connection; and the worker pool's ``hand_off``, which finds that thread."""

from __future__ import annotations

import queue
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import tether
from tether.protocol import AnswerReceived, Incoming
from tether.sync import reading
from tether.sync.settings import client_settings, server_settings
from tether.sync.transport import Connection, accept_connection, open_connection
from tether.websocket import keepalive_options
from tether.workers import WorkerPool, worker_pool

MAX = 1 << 20


def until(condition: Any, what: str) -> None:
    """Wait (at most 10 s) for ``condition()`` to hold."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.001)


def idle_workers(n: int) -> None:
    """Have at least ``n`` workers of the process's pool wait for a job."""
    pool = worker_pool()
    gathered = threading.Barrier(n + 1)
    for _ in range(n):
        pool.submit(gathered.wait, 10)
    gathered.wait(10)
    until(lambda: pool._idle >= n, f"{n} idle workers")


@pytest.fixture
def pair() -> Iterator[tuple[Connection, Connection]]:
    """A client connection and the server connection that accepted it, neither attached yet
    (nor read: the server's is watched once the test runs it), without keepalive pings."""
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        settings = client_settings("test", keepalive_options(None), {}, open_timeout=5, max_size=MAX)
        accepted: queue.Queue[Any] = queue.Queue()

        def accept() -> None:
            sock, _ = listener.accept()
            server = server_settings("test", keepalive_options(None), {}, max_size=MAX)
            accepted.put(accept_connection(sock, ssl_context=None, settings=server))

        threading.Thread(target=accept, daemon=True).start()
        client = open_connection(
            f"ws://127.0.0.1:{listener.getsockname()[1]}", subprotocols=None, ssl_context=None, settings=settings
        )
        server = accepted.get(timeout=5)
    yield client, server
    client.close()
    server.close()


def test_a_caller_reads_what_arrives_while_it_holds_the_reading_itself(pair: tuple[Connection, Connection]) -> None:
    client, server = pair
    server.attach(lambda data: None, lambda reason: None)
    threading.Thread(target=server.run, daemon=True).start()
    delivered: list[tuple[int, Any]] = []
    client.attach(lambda data: delivered.append((threading.get_ident(), data)), lambda reason: None)
    sent: list[bool] = []

    def stop() -> bool:  # (called once this thread has the reading: the peer sends now)
        if not sent:
            sent.append(True)
            server.send(b"for the caller")
        return bool(delivered)

    while not delivered:
        assert client.read_here(5.0, stop)
    # Even if the watcher woke first, it gave way: the caller read the message itself.
    assert delivered == [(threading.get_ident(), b"for the caller")]


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="only epoll can keep the watchers asleep")
def test_the_watchers_sleep_while_a_caller_reads(
    pair: tuple[Connection, Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty messages, each sent once the caller waits for it: the caller reads every one,
    and the connection's watcher, waiting on the epoll all along, never wakes for one (it did
    for about half of them when the caller waited on the same epoll)."""
    monkeypatch.setattr(reading, "_LOOK", 5.0)  # (the caller waits until the message comes, however slow the sender)
    client, server = pair
    server.attach(lambda data: None, lambda reason: None)
    threading.Thread(target=server.run, daemon=True).start()
    delivered: list[tuple[int, Any]] = []
    client.attach(lambda data: delivered.append((threading.get_ident(), data)), lambda reason: None)
    ready: Any = client._ready
    woke: list[int] = []
    disarmed = threading.Event()
    epoll = ready._epoll

    # The connection's epoll (the watchers', not a reading caller's own poll), noting when a
    # caller disarms the watchers' registration and which threads its arrivals wake. (The
    # epoll, not _Readiness.wait: mypyc compiles tether.sync.reading, whose methods cannot be
    # replaced on an instance.)
    class Recording:
        def modify(self, fd: int, events: int) -> None:
            epoll.modify(fd, events)
            if events == reading._DISARMED:
                disarmed.set()

        def poll(self, *args: Any) -> Any:
            events = epoll.poll(*args)
            if events:
                woke.append(threading.get_ident())
            return events

        def close(self) -> None:
            epoll.close()

    ready._epoll = Recording()
    server.send(b"first")  # read by the connection's watcher, which then waits in watching()
    until(lambda: len(delivered) == 1, "the watcher to read")
    assert delivered[0][0] != threading.get_ident() and client._watchers == 1
    del delivered[:], woke[:]  # (the watcher may have begun waiting for it on the recording epoll)
    for i in range(20):
        disarmed.clear()

        def send_once_the_caller_waits(i: int = i) -> None:
            assert disarmed.wait(5)
            server.send(b"message %d" % i)

        sender = threading.Thread(target=send_once_the_caller_waits)
        sender.start()
        until(lambda i=i: client.read_here(5.0, lambda: len(delivered) > i) and len(delivered) > i, "a message")
        sender.join(5)
    assert [data for _, data in delivered] == [b"message %d" % i for i in range(20)]
    assert {thread for thread, _ in delivered} == {threading.get_ident()}
    assert woke == []


def test_a_message_kept_by_the_thread_that_read_it_runs_there_while_another_reads_on(
    pair: tuple[Connection, Connection],
) -> None:
    client, server = pair
    client.attach(lambda data: None, lambda reason: None)
    idle_workers(2)
    read_on: dict[bytes, int] = {}
    ran_on: list[int] = []
    kept: list[bool] = []
    quick_arrived = threading.Event()

    def block() -> None:
        ran_on.append(threading.get_ident())
        client.send(b"quick")
        quick_arrived.wait(10)  # ... which another thread reads meanwhile

    def on_message(data: Any) -> None:
        read_on[data] = threading.get_ident()
        if data == b"block":
            kept.append(server.run_here(block))
        else:
            quick_arrived.set()

    server.attach(on_message, lambda reason: None)
    threading.Thread(target=server.run, daemon=True).start()
    client.send(b"block")
    until(lambda: len(ran_on) == 1 and quick_arrived.is_set(), "both messages")
    assert kept == [True]
    assert ran_on == [read_on[b"block"]]  # the message ran on the thread that read it
    assert read_on[b"quick"] != read_on[b"block"]  # while another thread read on


def test_run_here_is_refused_to_a_thread_that_does_not_watch(pair: tuple[Connection, Connection]) -> None:
    _, server = pair
    server.attach(lambda data: None, lambda reason: None)
    threading.Thread(target=server.run, daemon=True).start()
    assert not server.run_here(lambda: None)  # (this thread is no watcher of it)


class Root:
    def __init__(self) -> None:
        self.ran_on: list[int] = []
        self.client: Any = None  # the client's connection, to see who reads it
        self.caller = 0

    def echo(self, x: Any) -> Any:
        self.ran_on.append(threading.get_ident())
        return x

    def run_callbacks(self, f: Any, n: int) -> int:
        return sum(f(i) for i in range(n))

    def answer_when_the_caller_reads(self, x: Any) -> Any:
        # The answer leaves once the calling thread reads the client's connection itself.
        until(lambda: self.client._receiver == self.caller, "the caller to read")
        return x


class Routes:
    """Which thread routed what, on one session (wraps its ``route``)."""

    def __init__(self, session: Any) -> None:
        self.seen: list[tuple[int, str]] = []
        route = session.route

        def recording(events: list[Any]) -> Any:
            for event in events:
                if type(event) is AnswerReceived:
                    self.seen.append((threading.get_ident(), "answer"))
                elif type(event) is Incoming:
                    self.seen.append((threading.get_ident(), event.message.selector))
            return route(events)

        session.route = recording

    def threads(self, kind: str) -> list[int]:
        return [thread for thread, seen in self.seen if seen == kind]


@pytest.fixture
def served() -> Iterator[tuple[Root, Routes, tether.Peer]]:
    """A threading server whose session's routing is recorded, and a client connected to it,
    both without keepalive pings (nothing arrives but what the test sends)."""
    root = Root()
    routes: list[Routes] = []

    def factory(peer: tether.Peer) -> Root:
        routes.append(Routes(peer.session))
        return root

    with tether.serve(factory, port=0, keepalive=None) as server, tether.connect(server.url, keepalive=None) as peer:
        root.client = peer.session.transport
        root.caller = threading.get_ident()
        yield root, routes[0], peer


def test_a_sync_calls_answer_is_read_on_the_calling_thread(served: tuple[Root, Routes, tether.Peer]) -> None:
    _, _, peer = served
    client = Routes(peer.session)
    assert peer.root.answer_when_the_caller_reads(7) == 7
    assert client.threads("answer") == [threading.get_ident()]  # no other thread woke it


def test_a_plain_message_runs_on_the_thread_that_read_it(served: tuple[Root, Routes, tether.Peer]) -> None:
    root, routes, peer = served
    idle_workers(4)  # (more than the watchers and the runner a connection takes turns with)
    for i in range(30):
        assert peer.root.echo(i) == i
    assert routes.threads("echo") == root.ran_on  # each ran where it was read: no hand-off


def test_a_spare_watcher_goes_back_to_the_pool_when_the_connection_idles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reading, "_SPARE_FOR", 0.05)
    root = Root()
    transports: list[Any] = []

    def factory(peer: tether.Peer) -> Root:
        transports.append(peer.session.transport)
        return root

    with tether.serve(factory, port=0) as server, tether.connect(server.url) as peer:
        idle_workers(4)
        for _ in range(3):
            for i in range(10):
                assert peer.root.echo(i) == i
            # Used, the connection took a worker to watch beside its own thread; idle, it lets
            # the worker go (the count never drops to none: the connection is still read).
            until(lambda: transports[0]._watchers == 1, "the spare watcher to leave")
        assert peer.root.echo("still read") == "still read"


def test_hand_off_gives_a_job_only_to_a_worker_waiting_for_one() -> None:
    pool = WorkerPool(idle_timeout=5, eager=1)
    assert not pool.hand_off(lambda: None)  # no worker at all yet
    first: list[int] = []
    done = threading.Event()
    pool.submit(lambda: (first.append(threading.get_ident()), done.set()))
    assert done.wait(5)
    until(lambda: pool._idle == 1, "the worker to wait for a job again")
    handed: list[int] = []
    ran = threading.Event()
    assert pool.hand_off(lambda: (handed.append(threading.get_ident()), ran.set()))
    assert ran.wait(5)
    assert handed == first  # the waiting worker ran it; none was started
    assert pool.threads == 1


def test_without_epoll_every_waiting_thread_polls_and_calls_and_callbacks_still_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where there is no epoll (not Linux), the same scheme runs on a poll per waiting thread."""
    monkeypatch.delattr(select, "epoll")
    root = Root()
    with tether.serve(root, port=0) as server, tether.connect(server.url) as peer:
        assert peer.session.transport._ready._epoll is None
        for i in range(30):
            assert peer.root.echo(i) == i
        callbacks = [threading.Thread(target=lambda: peer.root.run_callbacks(lambda i: i, 20)) for _ in range(4)]
        for thread in callbacks:
            thread.start()
        for thread in callbacks:
            thread.join(30)
        assert peer.root.run_callbacks(lambda i: i, 20) == 190
