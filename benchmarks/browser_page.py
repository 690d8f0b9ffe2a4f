"""The page side of the browser section: it runs inside Pyodide, in the benchmark's page.

``browser.py`` writes this file into the page's ``site-packages`` as ``tether_bench_page`` and
runs ``await tether_bench_page.<function>(url, n)`` through ``pyodide.runPythonAsync``; every
function opens its own connection, warms up, times ``n`` operations and returns operations
per second, like the measurement functions of the other sections. ``js`` and ``pyodide`` exist
only in the page, so they are imported inside the functions.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

WARMUP = 50  # untimed operations at the start of every round (as in harness.py)
PAYLOAD = bytes(range(32))  # the 32-byte binary frame of the raw echo (as in calls.py)


def _rate(ops: int, started: float) -> float:
    return ops / (time.perf_counter() - started)


class RawSocket:
    """The browser ``WebSocket`` from Python, the plain asyncio way (the browser recipe's
    section 6): a ``message`` listener copies each frame out, queues it and resolves the future
    that ``await recv()`` waits on. Open it with ``await RawSocket.open(url)``.

    ``lean``: that future is a plain ``asyncio.Future`` rather than ``loop.create_future()``,
    whose extra done callback (Pyodide's count of work in progress) costs one more event-loop
    callback per message."""

    def __init__(self, url: str, lean: bool = False) -> None:
        import js
        from pyodide.ffi import create_proxy

        self.loop = asyncio.get_running_loop()
        self.lean = lean
        self.inbox: deque[bytes] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.opened = self.loop.create_future()
        self.ws = js.WebSocket.new(url)
        self.ws.binaryType = "arraybuffer"
        self.listeners = [("open", create_proxy(self._on_open)), ("message", create_proxy(self._on_message))]
        for kind, proxy in self.listeners:
            self.ws.addEventListener(kind, proxy)

    @classmethod
    async def open(cls, url: str, lean: bool = False) -> RawSocket:
        sock = cls(url, lean)
        await asyncio.wait_for(sock.opened, 10.0)
        return sock

    def _on_open(self, event: Any) -> None:
        if not self.opened.done():
            self.opened.set_result(None)

    def _on_message(self, event: Any) -> None:
        self.inbox.append(event.data.to_bytes())
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def send(self, data: bytes) -> None:
        from pyodide.ffi import to_js

        self.ws.send(to_js(data))

    async def recv(self) -> bytes:
        while not self.inbox:
            self.waiter = asyncio.Future(loop=self.loop) if self.lean else self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.inbox.popleft()

    def close(self) -> None:
        self.ws.close()
        for kind, proxy in self.listeners:
            self.ws.removeEventListener(kind, proxy)
            proxy.destroy()


async def raw_echo(url: str, n: int, lean: bool = False) -> float:
    """Sequential round trips: send 32 bytes, await the echo."""
    sock = await RawSocket.open(url, lean)
    try:
        for _ in range(WARMUP):
            sock.send(PAYLOAD)
            await sock.recv()
        started = time.perf_counter()
        for _ in range(n):
            sock.send(PAYLOAD)
            await sock.recv()
        return _rate(n, started)
    finally:
        sock.close()


async def raw_pipelined(url: str, n: int, batch: int) -> float:
    """Frames per second: send ``batch`` frames, then read the ``batch`` echoes."""
    sock = await RawSocket.open(url)
    try:

        async def one_batch() -> None:
            for _ in range(batch):
                sock.send(PAYLOAD)
            for _ in range(batch):
                if await sock.recv() != PAYLOAD:
                    raise AssertionError("an echo came back wrong")

        await one_batch()
        batches = max(1, n // batch)
        started = time.perf_counter()
        for _ in range(batches):
            await one_batch()
        return _rate(batches * batch, started)
    finally:
        sock.close()


async def tether_calls(url: str, n: int) -> float:
    """Sequential ``await root.echo(1)`` (the async face)."""
    import tether.aio

    async with tether.aio.connect(url) as peer:
        root = peer.root
        if await root.echo(1) != 1:
            raise AssertionError("echo(1) answered wrong")
        for _ in range(WARMUP):
            await root.echo(1)
        started = time.perf_counter()
        for _ in range(n):
            await root.echo(1)
        return _rate(n, started)


async def tether_gathered(url: str, n: int, batch: int) -> float:
    """Calls per second of ``asyncio.gather`` over ``batch`` calls at once."""
    import tether.aio

    async with tether.aio.connect(url) as peer:
        root = peer.root
        expected = list(range(batch))

        async def one_batch() -> None:
            if list(await asyncio.gather(*[root.echo(i) for i in range(batch)])) != expected:
                raise AssertionError("gathered echoes came back wrong")

        await one_batch()
        batches = max(1, n // batch)
        started = time.perf_counter()
        for _ in range(batches):
            await one_batch()
        return _rate(batches * batch, started)


def _blocking_calls(root: Any, n: int) -> float:
    """Plain code: each ``root.echo(1)`` blocks for its answer (JSPI, the sync face)."""
    if root.echo(1) != 1:
        raise AssertionError("echo(1) answered wrong")
    for _ in range(WARMUP):
        root.echo(1)
    started = time.perf_counter()
    for _ in range(n):
        root.echo(1)
    return _rate(n, started)


async def tether_jspi(url: str, n: int) -> float:
    """Sequential ``root.echo(1)`` from a plain ``def`` (entered through runPythonAsync)."""
    import tether.aio
    from tether.browser import can_block

    async with tether.aio.connect(url) as peer:
        if not can_block():
            raise RuntimeError("JSPI cannot block here (pyodide.ffi.can_run_sync() is false)")
        return _blocking_calls(peer.root, n)


async def loop_callbacks(tether_url: str, echo_url: str, n: int = 200) -> dict[str, float]:
    """Diagnostic: event-loop callbacks (``WebLoop.call_later``, which ``call_soon`` uses) per
    sequential round trip: Tether's ``await root.echo(1)``, its sync face (when JSPI can block)
    and the raw echo."""
    import tether.aio
    from tether.browser import can_block

    loop = asyncio.get_running_loop()
    loop_class = type(loop)
    original = loop_class.call_later
    count = [0]

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return original(self, *args, **kwargs)

    def counted(operation: Any) -> float:
        """Callbacks per call of ``operation()`` (a plain function: it blocks)."""
        for _ in range(WARMUP):
            operation()
        count[0] = 0
        loop_class.call_later = counting  # type: ignore[method-assign]
        try:
            for _ in range(n):
                operation()
        finally:
            loop_class.call_later = original  # type: ignore[method-assign]
        return count[0] / n

    async def acounted(operation: Any) -> float:
        """Callbacks per ``await operation()``."""
        for _ in range(WARMUP):
            await operation()
        count[0] = 0
        loop_class.call_later = counting  # type: ignore[method-assign]
        try:
            for _ in range(n):
                await operation()
        finally:
            loop_class.call_later = original  # type: ignore[method-assign]
        return count[0] / n

    result: dict[str, float] = {}
    async with tether.aio.connect(tether_url) as peer:
        root = peer.root
        result["tether"] = await acounted(lambda: root.echo(1))
        if can_block():

            def blocking_echo() -> Any:
                return root.echo(1)  # plain code: blocks (JSPI)

            result["jspi"] = counted(blocking_echo)
    sock = await RawSocket.open(echo_url)
    try:

        async def echo() -> bytes:
            sock.send(PAYLOAD)
            return await sock.recv()

        result["raw"] = await acounted(echo)
    finally:
        sock.close()
    return result


async def round_trip_split(tether_urls: dict[str, str], echo_url: str, n: int = 300) -> dict[str, list[float]]:
    """Diagnostic: where a sequential round trip's time goes, in microseconds (means over ``n``
    round trips; the page's clock ticks in 100 µs steps, so only means say anything): the
    page's send side (from the call to the frame handed to ``WebSocket.send``), the wire and
    the server (until the answer's ``message`` event), and the page's receive side (until the
    caller has the answer). For the raw echo and for ``await root.echo(1)`` against each of
    ``tether_urls`` (label -> Tether endpoint)."""
    import tether.aio
    from tether.browser.transport import BrowserTransport

    marks: dict[str, float] = {}

    def means(rows: list[tuple[float, float, float]]) -> list[float]:
        return [round(sum(row[i] for row in rows) / len(rows) * 1e6, 1) for i in range(3)]

    result: dict[str, list[float]] = {}
    send, on_message = BrowserTransport.send_nowait, BrowserTransport._on_message

    def timed_send(self: Any, data: bytes) -> None:
        send(self, data)
        marks["sent"] = time.perf_counter()

    def timed_message(self: Any, event: Any) -> None:
        marks["came"] = time.perf_counter()
        on_message(self, event)

    BrowserTransport.send_nowait = timed_send  # type: ignore[method-assign]
    BrowserTransport._on_message = timed_message  # type: ignore[method-assign]
    try:
        for label, url in tether_urls.items():
            async with tether.aio.connect(url) as peer:
                root = peer.root
                for _ in range(WARMUP):
                    await root.echo(1)
                rows = []
                for _ in range(n):
                    started = time.perf_counter()
                    await root.echo(1)
                    rows.append((marks["sent"] - started, marks["came"] - marks["sent"], time.perf_counter() - marks["came"]))
                result[label] = means(rows)
    finally:
        BrowserTransport.send_nowait = send  # type: ignore[method-assign]
        BrowserTransport._on_message = on_message  # type: ignore[method-assign]
    raw_message = RawSocket._on_message

    def timed_raw_message(self: Any, event: Any) -> None:
        marks["came"] = time.perf_counter()
        raw_message(self, event)

    RawSocket._on_message = timed_raw_message  # type: ignore[method-assign]
    try:
        sock = await RawSocket.open(echo_url)
    finally:
        RawSocket._on_message = raw_message  # type: ignore[method-assign]
    try:
        for _ in range(WARMUP):
            sock.send(PAYLOAD)
            await sock.recv()
        rows = []
        for _ in range(n):
            started = time.perf_counter()
            sock.send(PAYLOAD)
            sent = time.perf_counter()
            await sock.recv()
            rows.append((sent - started, marks["came"] - sent, time.perf_counter() - marks["came"]))
        result["raw"] = means(rows)
    finally:
        sock.close()
    return result
