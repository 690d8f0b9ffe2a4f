"""Live serialization: objects by value, classes by name or on demand, functions by value."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import json
import pathlib
from typing import Any

import pytest

import tether
from tether.testing import pair


@dataclasses.dataclass
class Point:
    x: int
    y: int

    def norm2(self) -> int:
        return self.x * self.x + self.y * self.y


@dataclasses.dataclass(frozen=True)
class Frozen:
    name: str


class Color(enum.Enum):
    RED = 1
    GREEN = 2


Pair = collections.namedtuple("Pair", "left right")


@tether.by_value_class
class Marked:
    def __init__(self, a: int) -> None:
        self.a = a
        self.items: list[int] = []


class Money:
    def __init__(self, cents: int, currency: str) -> None:
        self.cents, self.currency = cents, currency

    def __tether_reduce__(self) -> tuple[int, str]:
        return (self.cents, self.currency)

    @classmethod
    def __tether_rebuild__(cls, state: tuple[int, str]) -> Money:
        return cls(*state)


class Plain:
    """Travels by reference unless told otherwise."""

    def __init__(self) -> None:
        self.value = 5


# What arrives by value from a peer must be allowed here: classes this side sent that peer,
# built-in value types, and what the application registered (Marked is, by its decorator).
tether.register(Point, Frozen, Color, Pair, Money, Plain)


class Echo:
    def echo(self, x: Any) -> Any:
        return x

    def kind(self, x: Any) -> str:
        return f"{type(x).__module__}.{type(x).__qualname__}"

    def proxied(self, x: Any) -> bool:
        return tether.is_proxy(x)

    def call(self, f: Any, *args: Any) -> Any:
        return f(*args)

    def area(self, shape: Any) -> Any:
        return shape.area()


@pytest.fixture
def peers() -> Any:
    with pair(Echo()) as (client, server):
        yield client, server


def test_dataclasses_travel_by_value(peers: Any) -> None:
    root = peers[0].root
    p = Point(3, 4)
    q = root.echo(p)
    assert q == p and q is not p and type(q) is Point and q.norm2() == 25
    assert root.proxied(p) is False and root.kind(p).endswith("Point")
    assert root.echo(Frozen("f")) == Frozen("f")


@pytest.mark.parametrize(
    "value",
    [
        Color.GREEN,
        Pair(1, "b"),
        datetime.datetime(2026, 11, 24, 12, 30, 5, 123456),
        datetime.datetime(2026, 11, 24, 12, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
        datetime.date(2026, 1, 2),
        datetime.time(23, 59, 1),
        datetime.timedelta(days=2, seconds=5, microseconds=7),
        decimal.Decimal("3.14159265358979323846"),
        pathlib.PurePosixPath("/tmp/a b/c"),
        ValueError("bad", 3),
    ],
    ids=lambda v: type(v).__name__,
)
def test_standard_types_travel_by_value(peers: Any, value: Any) -> None:
    result = peers[0].root.echo(value)
    assert type(result) is type(value)
    if isinstance(value, BaseException):
        assert result.args == value.args
    else:
        assert result == value


def test_marked_classes_and_the_reduce_protocol(peers: Any) -> None:
    root = peers[0].root
    m = Marked(7)
    m.items.append(1)
    back = root.echo(m)
    assert type(back) is Marked and back.a == 7 and back.items == [1] and back is not m
    money = root.echo(Money(250, "EUR"))
    assert (money.cents, money.currency) == (250, "EUR")


def test_per_call_overrides(peers: Any) -> None:
    root = peers[0].root
    assert root.proxied(Plain()) is True
    assert root.proxied(tether.by_value(Plain())) is False
    assert root.echo(tether.by_value(Plain())).value == 5
    assert root.proxied(tether.by_reference(Point(1, 2))) is True
    shared: dict[str, int] = {"n": 1}
    proxy = root.echo(tether.by_reference(shared))
    assert proxy is shared  # a reference coming home is the original


def test_a_connection_policy_by_class() -> None:
    with pair(Echo(), passing={Point: "reference", Plain: "value"}) as (client, _):
        assert client.root.proxied(Point(1, 2)) is True
        assert client.root.proxied(Plain()) is False
    with pytest.raises(ValueError, match="'value' or 'reference'"):
        with pair(Echo(), passing={Point: "copy"}):
            pass


def test_shared_and_cyclic_structures_within_one_message(peers: Any) -> None:
    root = peers[0].root
    p = Point(1, 2)
    a, b = root.echo([p, p])
    assert a is b
    m = Marked(1)
    m.items.append(m)  # type: ignore[arg-type]
    back = root.echo(m)
    assert back.items[0] is back


def test_classes_and_functions_travel_by_name(peers: Any) -> None:
    root = peers[0].root
    assert root.echo(Point) is Point
    assert root.echo(int) is int
    with pytest.raises(tether.EncodeError, match=r"function json\.dumps cannot be sent to an untrusted peer"):
        root.echo(json.dumps)  # the standard library's functions do not go by reference to a stranger
    with pair(Echo(), trusted=True) as (client, _):
        assert client.root.echo(json.dumps) is json.dumps


def test_modules_travel_by_name_between_trusted_peers_only(peers: Any) -> None:
    with pytest.raises(tether.ProtocolError, match="json cannot be named by an untrusted peer"):
        peers[0].root.echo(json)  # by name only (no fallback reference to our module), refused there
    with pair(Echo(), trusted=True) as (client, _):
        assert client.root.echo(json) is json


def make_shape_class() -> type:
    """A class no other module can import: its instances need the class sent on demand."""

    @dataclasses.dataclass
    class Square:
        side: float

        def area(self) -> float:
            return round(self.side * self.side, 3)

    return Square


def test_a_class_the_receiver_lacks_is_refused_without_accept_code(peers: Any) -> None:
    Square = make_shape_class()
    with pytest.raises(tether.ProtocolError, match=r"Square cannot be received.*accept_code=True"):
        peers[0].root.area(Square(2.0))
    assert peers[0].root.echo(1) == 1  # the connection goes on


def test_a_class_is_sent_on_demand_once_per_connection() -> None:
    Square = tether.register(make_shape_class())  # its source may go to the peer that asks
    with pair(Echo(), accept_code=True) as (client, _server):
        root = client.root
        before = client.stats()["bytes_sent"]
        assert root.area(Square(3.0)) == 9.0
        first = client.stats()["bytes_sent"] - before
        before = client.stats()["bytes_sent"]
        assert root.area(Square(1.5)) == 2.25
        second = client.stats()["bytes_sent"] - before
        assert second < first / 3, (first, second)  # no class bytes the second time
        back = root.echo(Square(2.0))
        assert type(back) is Square  # our class came home as our class


def test_functions_travel_by_value_with_closures_and_defaults() -> None:
    offset = 10

    def shifted(x: int, scale: int = 2) -> int:
        return x * scale + offset + len(json.dumps([x]))

    with pair(Echo(), accept_code=True) as (client, _):
        root = client.root
        assert root.call(tether.by_value(shifted), 1) == shifted(1)
        assert root.call(tether.by_value(lambda n: n + offset), 1) == 11
        assert root.proxied(tether.by_value(shifted)) is False


def test_functions_by_value_need_accept_code(peers: Any) -> None:
    def f() -> int:
        return 1

    with pytest.raises(tether.ProtocolError, match=r"function .*f was sent by value.*accept_code=True"):
        peers[0].root.call(tether.by_value(f))


def test_code_without_source_cannot_travel(peers: Any) -> None:
    namespace: dict[str, Any] = {}
    exec("def made(): return 1", namespace)
    with pytest.raises(tether.EncodeError, match="no source"):
        peers[0].root.call(tether.by_value(namespace["made"]))


def test_all_missing_classes_of_a_message_come_in_one_round_trip() -> None:
    @dataclasses.dataclass
    class Line:
        text: str

    @dataclasses.dataclass
    class Page:
        lines: list[Line]

    tether.register(Line, Page)

    with pair(Echo(), accept_code=True) as (client, _server):
        before = client.stats()
        back = client.root.echo(Page([Line("a"), Line("b")]))
        after = client.stats()
        assert back == Page([Line("a"), Line("b")])
        # the call, then one get_classes answer (Page and Line together); nothing more
        assert after["frames_sent"] - before["frames_sent"] == 2
        assert after["frames_received"] - before["frames_received"] == 2
