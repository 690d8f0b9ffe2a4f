"""The service of the load and soak benchmark (``benchmarks/load.py``).

Served two ways, each in a process of its own:

* ``python -m tether serve load_service:make_root --port 0`` (the threading server of the CLI;
  ``benchmarks/`` is on ``PYTHONPATH``);
* ``python benchmarks/load_service.py`` (``tether.aio.serve(make_root, "127.0.0.1", 0)`` with
  its default options: plain methods run on worker threads). It prints the same
  ``tether: serving ... on ws://...`` line as the CLI, and exits when its stdin closes.

``make_root`` is a factory: every connection gets a root of its own, so a peer that is not let
go when its connection ends shows in :meth:`LoadRoot.census` (``roots``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import threading
import weakref
from typing import Any

_roots: weakref.WeakSet[LoadRoot] = weakref.WeakSet()
_counters: weakref.WeakSet[Counter] = weakref.WeakSet()


class Counter:
    """A small object that travels by reference (the client gets a proxy, then drops it)."""

    def __init__(self, start: int) -> None:
        self.value = start
        _counters.add(self)

    def increment(self) -> int:
        self.value += 1
        return self.value


class LoadRoot:
    """The root object of one connection."""

    def __init__(self, peer: Any = None) -> None:
        self.peer = peer
        _roots.add(self)

    def add(self, a: int, b: int) -> int:
        return a + b

    def echo(self, x: Any) -> Any:
        return x

    def counter(self, start: int) -> Counter:
        return Counter(start)

    def census(self) -> dict[str, int]:
        """What the server process holds now: live roots (one per connection not yet let go),
        live counters, objects tracked by the garbage collector (after a collection), memory
        blocks allocated by Python's allocator (every object, containers' storage included),
        threads."""
        gc.collect()
        return {
            "roots": len(_roots),
            "counters": len(_counters),
            "gc_objects": len(gc.get_objects()),
            "blocks": sys.getallocatedblocks(),
            "threads": threading.active_count(),
            "pid": os.getpid(),
        }


def make_root(peer: Any) -> LoadRoot:
    return LoadRoot(peer)


def serve_aio() -> None:
    """Serve :func:`make_root` with ``tether.aio.serve`` until stdin closes or SIGTERM."""
    import signal

    import tether.aio

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, done.set)
        loop.add_signal_handler(signal.SIGINT, done.set)

        def watch_stdin() -> None:
            with contextlib.suppress(OSError):
                while os.read(0, 4096):
                    pass
            loop.call_soon_threadsafe(done.set)

        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
        async with tether.aio.serve(make_root, "127.0.0.1", 0) as server:
            print(f"tether: serving load_service:make_root (tether.aio.serve) on {server.url}", flush=True)
            await done.wait()

    asyncio.run(main())


if __name__ == "__main__":
    # Run as a script this module is ``__main__``: serve the importable ``load_service`` module's
    # factory instead, so that both servers run the same code.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import load_service

    load_service.serve_aio()
