"""The threading runtime over in-memory transports: semantics without sockets."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

import pytest

import tether
from tether.testing import pair


class CustomError(Exception):
    pass


class Service:
    """The server root used by these tests."""

    label = "service"

    def __init__(self) -> None:
        self.items = [1, 2, 3]
        self.table = {"a": 1}
        self._secret = "hidden"

    def add(self, a: int, b: int) -> int:
        return a + b

    def scale(self, x: int, by: int = 1) -> int:
        return x * by

    def echo(self, x: Any) -> Any:
        return x

    def fail(self, kind: str) -> None:
        if kind == "key":
            raise KeyError("missing")
        raise CustomError("custom", 42)

    def make(self) -> Any:
        return Counter()

    def numbers(self, n: int) -> Any:
        return NumberSource(n)

    def bounce(self, n: int, other: Any) -> int:
        return 0 if n == 0 else 1 + other.bounce(n - 1, self)

    def apply(self, f: Any, *args: Any) -> Any:
        return f(*args)

    def sleep(self, seconds: float) -> str:
        time.sleep(seconds)
        return "slept"

    def _private(self) -> str:
        return "private"


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def bump(self) -> int:
        self.n += 1
        return self.n


class NumberSource:
    """An iterable that counts how many items were pulled from it."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.pulled = 0

    def __iter__(self) -> Any:
        for i in range(self.n):
            self.pulled += 1
            yield i


class Bouncer:
    def bounce(self, n: int, other: Any) -> int:
        return 0 if n == 0 else 1 + other.bounce(n - 1, self)


@pytest.fixture
def peers() -> Any:
    with pair(Service(), Bouncer()) as (client, server):
        yield client, server


def test_method_call_costs_exactly_one_message(peers: Any) -> None:
    client, _ = peers
    root = client.root
    before = client.stats()["frames_sent"]
    assert root.add(3, 4) == 7
    assert client.stats()["frames_sent"] - before == 1


def test_keyword_arguments_and_defaults(peers: Any) -> None:
    root = peers[0].root
    assert root.scale(3) == 3
    assert root.scale(3, by=5) == 15


def test_attributes_get_set_delete_where_the_policy_allows() -> None:
    with pair(Service(), policy=tether.AccessPolicy(settable=True)) as (client, _):
        _get_set_delete(client.root)


def test_setting_an_attribute_is_refused_by_default(peers: Any) -> None:
    root = peers[0].root
    with pytest.raises(tether.AccessDenied, match="may not set attribute 'extra'"):
        root.extra = 5
    with pytest.raises(tether.AccessDenied, match="may not set attribute 'add'"):
        root.add = lambda a, b: 0  # one client must not rewrite what every client shares
    assert root.add(1, 2) == 3


def _get_set_delete(root: Any) -> None:
    assert root.label == "service"
    root.extra = 5
    assert root.extra == 5
    del root.extra
    with pytest.raises(AttributeError):
        root.extra  # noqa: B018


def test_literals_travel_by_value(peers: Any) -> None:
    root = peers[0].root
    value = {"a": [1, (2, 3)], "b": {4}, "c": frozenset({5}), "d": b"x", "e": 1.5, "f": None}
    result = root.echo(value)
    assert result == value and result is not value


def test_a_reference_coming_home_is_the_original_object(peers: Any) -> None:
    root = peers[0].root
    thing = object()
    assert root.echo(thing) is thing
    assert root.echo([thing, thing]) == [thing, thing]


def test_one_proxy_per_remote_object(peers: Any) -> None:
    root = peers[0].root
    counter = root.make()
    assert root.echo(counter) is counter
    assert tether.is_proxy(counter)
    assert counter.bump() == 1 and counter.bump() == 2


def test_common_dunders_are_forwarded(peers: Any) -> None:
    root = peers[0].root
    items = root.items  # a list attribute is a literal: comes by value
    assert items == [1, 2, 3]
    counter = root.make()
    assert str(counter).startswith("<")
    assert "Counter object" in repr(counter)
    assert bool(counter) is True


def test_errors_travel_as_the_same_builtin_type(peers: Any) -> None:
    root = peers[0].root
    with pytest.raises(KeyError) as info:
        root.fail("key")
    assert info.value.args == ("missing",)
    assert "raise KeyError" in info.value.remote_traceback  # type: ignore[attr-defined]


def test_unknown_exception_types_become_remote_error(peers: Any) -> None:
    root = peers[0].root
    with pytest.raises(tether.RemoteError) as info:
        root.fail("custom")
    err = info.value
    assert err.remote_type.endswith("CustomError")
    assert err.remote_args == ("custom", 42)
    assert "CustomError" in (err.remote_traceback or "")


def test_registered_exception_types_are_recreated(peers: Any) -> None:
    tether.register_exception(CustomError)
    with pytest.raises(CustomError) as info:
        peers[0].root.fail("custom")
    assert info.value.args == ("custom", 42)


def test_tracebacks_can_be_turned_off() -> None:
    with pair(Service(), send_tracebacks=False) as (client, _):
        with pytest.raises(KeyError) as info:
            client.root.fail("key")
        assert info.value.remote_traceback is None  # type: ignore[attr-defined]


def test_private_names_are_refused_unless_trusted(peers: Any) -> None:
    root = peers[0].root
    with pytest.raises(tether.AccessDenied, match="'_private' is private"):
        root._private()
    with pytest.raises(tether.AccessDenied):
        root._secret  # noqa: B018
    with pytest.raises(tether.AccessDenied):
        root.__dict__  # noqa: B018
    with pytest.raises(tether.AccessDenied):
        root.make().__init__  # noqa: B018
    with pair(Service(), trusted=True) as (client, _):
        assert client.root._private() == "private"
        assert client.root._secret == "hidden"


def test_server_calls_back_a_client_function(peers: Any) -> None:
    root = peers[0].root
    seen = []
    assert root.apply(lambda x: seen.append(x) or x * 2, 21) == 42
    assert seen == [21]


def test_nested_calls_500_hops_deep() -> None:
    with pair(Service(), Bouncer()) as (client, _):
        assert client.root.bounce(500, Bouncer()) == 500


def test_server_reaches_the_client_root_through_its_peer() -> None:
    seen = []

    class ClientRoot:
        def hello(self, x: str) -> str:
            seen.append(x)
            return "hi " + x

    def factory(peer: Any) -> Any:
        class Root:
            def greet(self) -> str:
                return str(peer.root.hello("server"))

        return Root()

    with pair(factory, ClientRoot()) as (client, _):
        assert client.root.greet() == "hi server"
    assert seen == ["server"]


def test_blocking_handlers_do_not_block_other_calls(peers: Any) -> None:
    root = peers[0].root
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(root.sleep(0.5))) for _ in range(20)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    started = time.perf_counter()
    assert root.add(1, 1) == 2
    assert time.perf_counter() - started < 0.4
    for t in threads:
        t.join(5)
    assert results == ["slept"] * 20


def test_iteration_fetches_in_batches_and_stops_early(peers: Any) -> None:
    client = peers[0]
    source = client.root.numbers(100_000)
    before = client.stats()["frames_sent"]
    assert sum(source) == sum(range(100_000))
    assert client.stats()["frames_sent"] - before < 40
    source = client.root.numbers(100_000)
    for i, _ in enumerate(source):
        if i == 3:
            break
    assert source.pulled == 16  # the first batch only


def test_released_proxies_free_the_exporters_objects(peers: Any) -> None:
    client, server = peers
    root = client.root
    baseline = client.stats()["exposed"]
    for _ in range(2_000):
        root.echo(Counter())  # a fresh by-reference object each call
    deadline = time.monotonic() + 5
    while client.stats()["exposed"] != baseline and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.02)
    assert client.stats()["exposed"] == baseline
    assert server.stats()["proxies"] <= 1  # only the client's root, if fetched


def test_closing_fails_pending_calls_and_later_use() -> None:
    with pair(Service()) as (client, server):
        root = client.root
        errors: list[BaseException] = []

        def call() -> None:
            try:
                root.sleep(5)
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=call)
        t.start()
        time.sleep(0.1)
        started = time.perf_counter()
        server.close()
        t.join(2)
        assert time.perf_counter() - started < 1
        assert len(errors) == 1 and isinstance(errors[0], tether.ConnectionLost)
        with pytest.raises(tether.ConnectionLost):
            root.add(1, 2)
        assert client.stats()["pending"] == 0



class _Breaking:
    """A memory transport whose sends start failing (the network went away under it) while
    its receiving side stays open: only the failed send tells the session."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.broken = False

    def send(self, data: bytes) -> None:
        if self.broken:
            raise OSError("network is unreachable")
        self.inner.send(data)

    def recv(self) -> bytes | str:
        return self.inner.recv()  # type: ignore[no-any-return]

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.inner.close(code, reason)


def test_a_failed_send_fails_every_waiting_caller_and_closes_the_session() -> None:
    from tether.sync.session import Peer, Session, open_session
    from tether.testing import memory_pair

    a, b = memory_pair()
    gate = threading.Event()
    server = Session(b, client=False, url="memory server")
    server.protocol.root = type("Slow", (), {"wait": lambda self: gate.wait(10)})()
    Peer(server)
    server.start()
    transport = _Breaking(a)
    client = open_session(transport, url="memory client")
    errors: list[BaseException] = []

    def wait_long() -> None:
        try:
            client.root.wait()
        except BaseException as exc:
            errors.append(exc)

    waiting = threading.Thread(target=wait_long)
    waiting.start()
    deadline = time.monotonic() + 5
    while client.stats()["pending"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    transport.broken = True
    started = time.monotonic()
    with pytest.raises(tether.ConnectionLost, match="network is unreachable"):
        client.root.wait()
    waiting.join(5)
    assert time.monotonic() - started < 2
    assert len(errors) == 1 and isinstance(errors[0], tether.ConnectionLost)
    assert client.closed
    gate.set()
    server.close()
