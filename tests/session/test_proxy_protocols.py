"""Proxies: the protocols the equivalence suite does not cover: iterators, inspection, help,
names that collide with the proxy's own, context managers with exceptions, and the async face
(await, async with, async for over a remote async generator)."""

from __future__ import annotations

import asyncio
import inspect
import os
import pydoc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import tether
from tether.testing import async_pair, pair


def scale(x: int, factor: float = 2.0, *, label: str = "x") -> float:
    """Multiply x by factor."""
    return x * factor


class Suppressor:
    """Swallows ValueError raised inside its with block, and says what it saw."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __enter__(self) -> Suppressor:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self.seen.append("none" if exc_type is None else exc_type.__name__)
        return exc_type is not None and issubclass(exc_type, ValueError)


class Where(os.PathLike[str]):
    def __fspath__(self) -> str:
        return "/tmp/somewhere"


class Collide:
    _Proxy__state = "a remote attribute named like the proxy's slot"
    _tether_reference_of = "another one"


class AsyncThings:
    async def __aenter__(self) -> str:
        return "entered"

    async def __aexit__(self, *exc: Any) -> None:
        return None


async def countdown(n: int) -> AsyncIterator[int]:
    for i in range(n, 0, -1):
        await asyncio.sleep(0)
        yield i


class Root:
    """The root of these tests."""

    scale = staticmethod(scale)

    def iterator(self) -> Iterator[int]:
        return iter([1, 2])

    def suppressor(self) -> Suppressor:
        return Suppressor()

    def where(self) -> Where:
        return Where()

    def collide(self) -> Collide:
        return Collide()

    def function(self) -> Any:
        return tether.by_reference(scale)

    async def later(self, value: int) -> Any:
        return asyncio.ensure_future(asyncio.sleep(0.01, result=value))  # a task: by reference

    def things(self) -> AsyncThings:
        return AsyncThings()

    def countdown(self, n: int) -> Any:
        return countdown(n)


@pytest.fixture(scope="module")
def root() -> Iterator[Any]:
    with pair(Root(), trusted=True) as (client, _):
        yield client.root


def test_next_on_a_remote_iterator_ends_with_stop_iteration(root: Any) -> None:
    it = root.iterator()
    assert next(it) == 1 and next(it) == 2
    with pytest.raises(StopIteration):
        next(it)


def test_dir_getmembers_and_doc(root: Any) -> None:
    names = dir(root)
    assert "iterator" in names and "suppressor" in names
    members = dict(inspect.getmembers(root))
    assert "iterator" in members
    assert root.__doc__ == "The root of these tests."


def test_help_shows_a_remote_functions_signature_and_doc(root: Any) -> None:
    f = root.function()
    assert tether.is_proxy(f) and callable(f)
    assert str(inspect.signature(f)) == "(x: int, factor: float = 2.0, *, label: str = 'x') -> float"
    text = pydoc.render_doc(f, renderer=pydoc.plaintext)
    assert "scale(x: int, factor: float = 2.0" in text and "Multiply x by factor." in text


def test_tether_help_renders_remotely(root: Any, capsys: pytest.CaptureFixture[str]) -> None:
    tether.help(root)
    out = capsys.readouterr().out
    assert "class Root" in out and "The root of these tests." in out


def test_remote_names_that_collide_with_the_proxys_own_are_forwarded(root: Any) -> None:
    c = root.collide()
    assert c._Proxy__state == "a remote attribute named like the proxy's slot"
    assert c._tether_reference_of == "another one"


def test_with_block_passes_the_exception_to_the_remote_exit(root: Any) -> None:
    s = root.suppressor()
    with s:
        raise ValueError("swallowed remotely")
    with pytest.raises(KeyError):
        with s:
            raise KeyError("not swallowed")
    with s:
        pass
    assert list(s.seen) == ["ValueError", "KeyError", "none"]


def test_fspath(root: Any) -> None:
    assert os.fspath(root.where()) == "/tmp/somewhere"


async def test_async_face_await_async_with_async_for() -> None:
    async with async_pair(Root()) as (client, _):
        r = client.root
        pending = await r.later(42)
        assert tether.is_proxy(pending) and inspect.isawaitable(pending)
        assert await pending == 42
        async with await r.things() as entered:
            assert entered == "entered"
        assert [i async for i in await r.countdown(3)] == [3, 2, 1]
        assert not inspect.isawaitable(await r.suppressor())
