"""The native objects the browser tests talk to, and the Python the pages run."""

from __future__ import annotations

import threading
import time
from typing import Any


class Hub:
    """Shared by every connection: passes references from one page to another."""

    def __init__(self) -> None:
        self._objects: dict[str, Any] = {}
        self._changed = threading.Condition()

    def put(self, name: str, obj: Any) -> None:
        with self._changed:
            self._objects[name] = obj
            self._changed.notify_all()

    def get(self, name: str, timeout: float = 10.0) -> Any:
        with self._changed:
            if not self._changed.wait_for(lambda: name in self._objects, timeout):
                raise KeyError(f"nothing registered as {name!r} within {timeout} s")
            return self._objects[name]


class Native:
    """The native root each connection gets. Plain methods run on worker threads, so they
    may block on calls back into the page."""

    def __init__(self, hub: Hub, peer: Any) -> None:
        self.hub = hub
        self.peer = peer

    def add(self, a: Any, b: Any) -> Any:
        return a + b

    def div(self, a: float, b: float) -> float:
        return a / b

    def echo(self, value: Any) -> Any:
        return value

    def value(self) -> int:
        return 99

    def numbers(self, n: int) -> Any:
        return (i * i for i in range(n))  # a generator travels by reference

    def visit(self, obj: Any) -> Any:
        return obj.value() + 1  # a nested call into the page from a worker thread

    def ping(self, other: Any, depth: int) -> int:
        return 0 if depth == 0 else other.pong(self, depth - 1) + 1

    def ping_sync(self, other: Any, depth: int) -> int:
        return 0 if depth == 0 else other.pong_sync(self, depth - 1) + 1

    def register(self, name: str, obj: Any) -> None:
        self.hub.put(name, obj)

    def lookup(self, name: str) -> Any:
        return self.hub.get(name)

    def sleep(self, seconds: float) -> str:
        time.sleep(seconds)
        return "slept"


# Run in a page (runPythonAsync) after boot: a root for the page side, connected to the server.
PAGE_SETUP = """
import asyncio, json, sys
import tether, tether.aio

class Counter:
    def __init__(self):
        self.n = 0
    def increment(self, by=1):
        self.n += by
        return self.n
    def value(self):
        return self.n

class PageRoot:
    def __init__(self):
        self.counter = Counter()
    def add(self, a, b):
        return a + b
    def value(self):
        return 41
    def fail(self):
        raise KeyError("no such thing in the page")
    async def avisit(self, native):
        return await native.value() + 1          # async face inside a handler
    def visit(self, native):
        return native.value() + 1                # sync face (JSPI) inside a handler
    async def pong(self, other, depth):
        return 0 if depth == 0 else await other.ping(self, depth - 1) + 1
    def pong_sync(self, other, depth):
        return 0 if depth == 0 else other.ping_sync(self, depth - 1) + 1
    async def sleep(self, seconds):
        await asyncio.sleep(seconds)
        return "woke"

root = PageRoot()
peer = await tether.aio.connect(root=root)
json.dumps(type(peer.session).__name__)
"""
