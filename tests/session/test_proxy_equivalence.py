"""Behavioural equivalence: the same tests run against local objects and against proxies to
remote ones (passed by reference), with the standard library consuming them."""

from __future__ import annotations

import bisect
import collections
import copy
import heapq
import math
import operator
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tether
from tether.testing import pair


class Bag:
    """A user-defined container."""

    def __init__(self, *items: Any) -> None:
        self.items = list(items)

    def add(self, item: Any) -> None:
        self.items.append(item)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: Any) -> Any:
        return self.items[index]

    def __contains__(self, item: Any) -> bool:
        return item in self.items

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other)  # type: ignore[call-overload]

    __hash__ = None  # type: ignore[assignment]


class Number:
    """A user-defined integer-like value."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value

    def __int__(self) -> int:
        return self.value

    def __float__(self) -> float:
        return float(self.value)

    def __complex__(self) -> complex:
        return complex(self.value)

    def __add__(self, other: Any) -> int:
        return self.value + int(other)

    def __radd__(self, other: Any) -> int:
        return int(other) + self.value

    def __mul__(self, other: Any) -> int:
        return self.value * int(other)

    def __pow__(self, other: Any, modulo: Any = None) -> int:
        return pow(self.value, int(other), modulo)

    def __divmod__(self, other: Any) -> tuple[int, int]:
        return divmod(self.value, int(other))

    def __neg__(self) -> int:
        return -self.value

    def __abs__(self) -> int:
        return abs(self.value)

    def __invert__(self) -> int:
        return ~self.value

    def __round__(self, ndigits: Any = None) -> int:
        return round(self.value, ndigits)

    def __trunc__(self) -> int:
        return self.value

    def __floor__(self) -> int:
        return self.value

    def __ceil__(self) -> int:
        return self.value

    def __eq__(self, other: object) -> bool:
        return self.value == int(other)  # type: ignore[call-overload]

    def __lt__(self, other: Any) -> bool:
        return self.value < int(other)

    def __hash__(self) -> int:
        return hash(self.value)

    def __bool__(self) -> bool:
        return self.value != 0

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Context:
    def __init__(self) -> None:
        self.log: list[str] = []

    def __enter__(self) -> str:
        self.log.append("enter")
        return "inside"

    def __exit__(self, *exc: Any) -> bool:
        self.log.append("exit")
        return False


class Factory:
    """The server root: makes fresh objects and hands them out by reference."""

    def make(self, kind: str) -> Any:
        return tether.by_reference(MAKERS[kind]())


MAKERS: dict[str, Callable[[], Any]] = {
    "list": lambda: [3, 1, 2],
    "dict": lambda: {"a": 1, "b": 2},
    "set": lambda: {1, 2, 3},
    "str": lambda: collections.UserString("hello"),
    "bag": lambda: Bag(1, 2, 3),
    "number": lambda: Number(7),
    "context": Context,
}


@pytest.fixture(scope="module")
def remote() -> Iterator[Any]:
    with pair(Factory()) as (client, _):
        yield client.root


@pytest.fixture(params=["local", "remote"])
def make(request: pytest.FixtureRequest, remote: Any) -> Callable[[str], Any]:
    if request.param == "local":
        return lambda kind: MAKERS[kind]()

    def make_remote(kind: str) -> Any:
        obj = remote.make(kind)
        assert tether.is_proxy(obj)
        return obj

    return make_remote


def test_list_reading(make: Callable[[str], Any]) -> None:
    lst = make("list")
    assert len(lst) == 3 and lst[0] == 3 and lst[-1] == 2 and lst[0:2] == [3, 1]
    assert 1 in lst and 9 not in lst
    assert list(lst) == [3, 1, 2] and list(reversed(lst)) == [2, 1, 3]
    assert lst == [3, 1, 2] and lst != [] and lst < [4] and lst >= [3]
    assert lst.index(2) == 2 and lst.count(1) == 1
    assert lst + [4] == [3, 1, 2, 4] and [0] + lst == [0, 3, 1, 2] and lst * 2 == [3, 1, 2] * 2
    with pytest.raises(IndexError):
        lst[10]
    with pytest.raises(TypeError):
        hash(lst)


def test_list_mutation(make: Callable[[str], Any]) -> None:
    lst = make("list")
    lst.append(4)
    lst[0] = 9
    del lst[1]
    lst[1:2] = [7, 8]
    assert list(lst) == [9, 7, 8, 4]
    alias = lst
    lst += [5]
    assert lst is alias and list(alias) == [9, 7, 8, 4, 5]
    assert lst.pop() == 5
    lst.sort()
    assert list(lst) == [4, 7, 8, 9]


def test_standard_library_consumes_lists(make: Callable[[str], Any]) -> None:
    lst = make("list")
    assert sorted(lst) == [1, 2, 3] and sum(lst) == 6 and min(lst) == 1 and max(lst) == 3
    assert list(zip(lst, "abc", strict=True)) == [(3, "a"), (1, "b"), (2, "c")]
    assert list(enumerate(lst)) == [(0, 3), (1, 1), (2, 2)]
    assert collections.Counter(lst) == {3: 1, 1: 1, 2: 1}
    assert operator.itemgetter(1)(lst) == 1 and operator.contains(lst, 3)
    assert heapq.nlargest(2, lst) == [3, 2] and list(heapq.merge(sorted(lst), [0])) == [0, 1, 2, 3]
    assert copy.copy(lst) == [3, 1, 2] and copy.deepcopy(lst) == [3, 1, 2]
    assert f"{lst}" == "[3, 1, 2]" and "%s" % (lst,) == "[3, 1, 2]" and str(lst) == "[3, 1, 2]"
    lst.sort()
    assert bisect.bisect_left(lst, 2) == 1 and bisect.bisect_right(lst, 3) == 3


def test_dict(make: Callable[[str], Any]) -> None:
    d = make("dict")
    assert len(d) == 2 and d["a"] == 1 and d.get("z", 0) == 0 and "a" in d
    assert sorted(d) == ["a", "b"] and sorted(d.keys()) == ["a", "b"]
    assert sorted(d.values()) == [1, 2] and sorted(d.items()) == [("a", 1), ("b", 2)]
    with pytest.raises(KeyError):
        d["z"]
    d["c"] = 3
    del d["a"]
    d.update({"d": 4})
    assert d.pop("d") == 4
    assert dict(d) == {"b": 2, "c": 3} and {**d} == {"b": 2, "c": 3}
    assert d == {"b": 2, "c": 3} and d | {"z": 0} == {"b": 2, "c": 3, "z": 0}
    assert collections.Counter(d) == {"b": 2, "c": 3}
    assert copy.copy(d) == {"b": 2, "c": 3}


def test_set(make: Callable[[str], Any]) -> None:
    s = make("set")
    assert len(s) == 3 and 2 in s and sorted(s) == [1, 2, 3] and min(s) == 1
    assert s | {9} == {1, 2, 3, 9} and {9} | s == {1, 2, 3, 9}
    assert s & {1, 5} == {1} and s - {1} == {2, 3} and s ^ {3, 4} == {1, 2, 4}
    assert s <= {1, 2, 3, 4} and s > {1} and s == {1, 2, 3}
    s.add(4)
    s.discard(1)
    assert s == {2, 3, 4} and s.isdisjoint({7})


def test_str_like(make: Callable[[str], Any]) -> None:
    s = make("str")
    assert len(s) == 5 and s[1:3] == "el" and "ell" in s and s.upper() == "HELLO"
    assert s + "!" == "hello!" and "oh " + s == "oh hello" and s * 2 == "hellohello"
    assert str(s) == "hello" and f"<{s}>" == "<hello>" and sorted(s) == sorted("hello")
    assert s.split("l") == ["he", "", "o"] and s.startswith("he")
    assert s == "hello" and hash(s) == hash("hello")


def test_user_container(make: Callable[[str], Any]) -> None:
    bag = make("bag")
    bag.add(4)
    assert len(bag) == 4 and bag[0] == 1 and bag[-1] == 4 and 3 in bag
    assert list(bag) == [1, 2, 3, 4] and sum(bag) == 10 and bag == Bag(1, 2, 3, 4)
    assert operator.length_hint(bag) == 4
    with pytest.raises(TypeError):
        hash(bag)


def test_integer_like(make: Callable[[str], Any]) -> None:
    n = make("number")
    assert [10, 20, 30, 40, 50, 60, 70, 80][n] == 80
    assert list(range(10))[n:] == [7, 8, 9] and operator.index(n) == 7 and hex(n) == "0x7"
    assert int(n) == 7 and float(n) == 7.0 and complex(n) == 7 + 0j
    assert n + 1 == 8 and 1 + n == 8 and n * 3 == 21 and pow(n, 2, 5) == 4 and divmod(n, 2) == (3, 1)
    assert -n == -7 and abs(n) == 7 and ~n == -8
    assert round(n) == 7 and math.trunc(n) == 7 and math.floor(n) == 7 and math.ceil(n) == 7
    assert n == 7 and n < 8 and bool(n) and hash(n) == hash(7)
    assert f"{n:03d}" == "007" and format(n, "x") == "7"


def test_with_block(make: Callable[[str], Any]) -> None:
    ctx = make("context")
    with ctx as value:
        assert value == "inside"
    assert list(ctx.log) == ["enter", "exit"]


def test_isinstance_believes_builtin_classes_from_any_peer(remote: Any) -> None:
    assert not isinstance(remote.make("bag"), Bag)  # an untrusted peer's claim is not believed


def test_isinstance_uses_the_remote_class_of_a_trusted_peer() -> None:
    with pair(Factory(), trusted=True) as (client, _):
        bag = client.root.make("bag")
        assert isinstance(bag, Bag) and not isinstance(bag, Number)


def test_isinstance_checks(remote: Any) -> None:
    assert isinstance(remote.make("list"), list)
    assert isinstance(remote.make("dict"), collections.abc.Mapping)
