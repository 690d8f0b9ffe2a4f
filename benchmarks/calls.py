"""The calls section: round trips per second against raw TCP, raw websockets, RPyC 6 and Pyro5.

The measurement functions open their own connection, warm up, time ``n`` operations and return
operations per second; :func:`build_measurements` makes the rows of the table, :data:`TARGETS`
the targets. See ``run.py`` for what is measured and how to read the ratios.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from harness import WARMUP, Measurement, Target, runner
from harness import rate as _rate

KINDS = ["tcp-echo", "ws-echo", "tether-threading", "tether-aio"]  # and "rpyc", "pyro5" when importable
PAYLOAD = bytes(range(32))  # the 32 bytes of the raw measurements (a binary frame for websockets)
BATCH = 1000  # frames per pipelined batch, calls per gathered batch

HAVE_MSGPACK = importlib.util.find_spec("msgpack") is not None


def _batches(n: int) -> int:
    return max(1, n // BATCH)


def raw_tcp_echo(address: str, n: int) -> float:
    """32 bytes sent and their echo read back, one at a time, over a plain blocking socket
    (TCP_NODELAY): the floor under every row."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        buffer = memoryview(bytearray(len(PAYLOAD)))
        size = len(PAYLOAD)
        sendall, recv_into = sock.sendall, sock.recv_into

        def echo() -> None:
            sendall(PAYLOAD)
            got = 0
            while got < size:
                received = recv_into(buffer[got:])
                if not received:
                    raise ConnectionError("the TCP echo server closed the connection")
                got += received

        for _ in range(WARMUP):
            echo()
        started = time.perf_counter()
        for _ in range(n):
            echo()
        return _rate(n, started)


def raw_sync_echo(url: str, n: int) -> float:
    from websockets.sync.client import connect

    with connect(url, compression=None) as ws:
        for _ in range(WARMUP):
            ws.send(PAYLOAD)
            ws.recv()
        started = time.perf_counter()
        for _ in range(n):
            ws.send(PAYLOAD)
            ws.recv()
        return _rate(n, started)


async def raw_async_echo(url: str, n: int) -> float:
    from websockets.asyncio.client import connect

    async with connect(url, compression=None) as ws:
        for _ in range(WARMUP):
            await ws.send(PAYLOAD)
            await ws.recv()
        started = time.perf_counter()
        for _ in range(n):
            await ws.send(PAYLOAD)
            await ws.recv()
        return _rate(n, started)


async def raw_pipelined(url: str, n: int) -> float:
    from websockets.asyncio.client import connect

    async with connect(url, compression=None) as ws:

        async def batch() -> None:
            for _ in range(BATCH):
                await ws.send(PAYLOAD)
            for _ in range(BATCH):
                await ws.recv()

        await batch()
        batches = _batches(n)
        started = time.perf_counter()
        for _ in range(batches):
            await batch()
        return _rate(batches * BATCH, started)


def tether_sync_calls(url: str, n: int) -> float:
    import tether

    with tether.connect(url) as peer:
        root = peer.root
        assert root.echo(1) == 1
        for _ in range(WARMUP):
            root.echo(1)
        started = time.perf_counter()
        for _ in range(n):
            root.echo(1)
        return _rate(n, started)


async def tether_async_calls(url: str, n: int) -> float:
    import tether.aio

    async with tether.aio.connect(url) as peer:
        root = peer.root
        assert await root.echo(1) == 1
        for _ in range(WARMUP):
            await root.echo(1)
        started = time.perf_counter()
        for _ in range(n):
            await root.echo(1)
        return _rate(n, started)


async def tether_gathered(url: str, n: int) -> float:
    import tether.aio

    async with tether.aio.connect(url) as peer:
        root = peer.root
        expected = list(range(BATCH))

        async def batch() -> None:
            results = await asyncio.gather(*[root.echo(i) for i in range(BATCH)])
            if results != expected:
                raise AssertionError("gathered echoes came back wrong")

        await batch()
        batches = _batches(n)
        started = time.perf_counter()
        for _ in range(batches):
            await batch()
        return _rate(batches * BATCH, started)


def _callback(i: int) -> int:
    return i


def tether_callbacks(url: str, n: int) -> float:
    import tether

    with tether.connect(url) as peer:
        root = peer.root
        root.run_callbacks(_callback, WARMUP)
        started = time.perf_counter()
        done = root.run_callbacks(_callback, n)
        rate = _rate(n, started)
        assert done == n
        return rate


async def tether_aio_callbacks(url: str, n: int) -> float:
    import tether.aio

    async with tether.aio.connect(url, run_sync_in_threads=False) as peer:
        root = peer.root
        await root.arun_callbacks(_callback, WARMUP)
        started = time.perf_counter()
        done = await root.arun_callbacks(_callback, n)
        rate = _rate(n, started)
        assert done == n
        return rate


@contextlib.contextmanager
def rpyc_connection(address: str) -> Iterator[Any]:
    import rpyc

    host, port = address.rsplit(":", 1)
    conn = rpyc.connect(host, int(port))
    try:
        yield conn
    finally:
        conn.close()


def rpyc_uncached(address: str, n: int) -> float:
    with rpyc_connection(address) as conn:
        assert conn.root.echo(1) == 1
        for _ in range(WARMUP):
            conn.root.echo(1)
        started = time.perf_counter()
        for _ in range(n):
            conn.root.echo(1)
        return _rate(n, started)


def rpyc_cached(address: str, n: int) -> float:
    with rpyc_connection(address) as conn:
        echo = conn.root.echo
        for _ in range(WARMUP):
            echo(1)
        started = time.perf_counter()
        for _ in range(n):
            echo(1)
        return _rate(n, started)


def rpyc_callbacks(address: str, n: int) -> float:
    with rpyc_connection(address) as conn:
        conn.root.run_callbacks(_callback, WARMUP)
        started = time.perf_counter()
        done = conn.root.run_callbacks(_callback, n)
        rate = _rate(n, started)
        assert done == n
        return rate


def pyro5_calls(uri: str, n: int, serializer: str) -> float:
    import Pyro5.api

    with Pyro5.api.Proxy(uri) as proxy:
        proxy._pyroSerializer = serializer
        assert proxy.echo(1) == 1
        for _ in range(WARMUP):
            proxy.echo(1)
        started = time.perf_counter()
        for _ in range(n):
            proxy.echo(1)
        return _rate(n, started)


COLUMNS = ["x TCP", "x raw", "x RPyC"]
RAW_TCP, RPYC_ECHO, RPYC_CB = "raw-tcp", "rpyc-cached", "rpyc-cb"


def build_measurements(addresses: dict[str, str]) -> list[Measurement]:
    """The rows of the table, in order, for the servers that are running."""
    tcp, ws = addresses["tcp-echo"], addresses["ws-echo"]
    thr, aio = addresses["tether-threading"], addresses["tether-aio"]
    specs: list[tuple[str, str, Callable[[str, int], Any], str, str]] = [
        # key, label, function, server address, raw baseline ("-cb" rows compare with RPyC callbacks)
        (RAW_TCP, "raw TCP: blocking echo, 32 B", raw_tcp_echo, tcp, "raw-sync"),
        ("raw-sync", "raw websockets: sync echo, 32 B", raw_sync_echo, ws, "raw-sync"),
        ("raw-async", "raw websockets: asyncio echo, 32 B", raw_async_echo, ws, "raw-async"),
        ("raw-pipe", "raw websockets: pipelined frames (1000)", raw_pipelined, ws, "raw-pipe"),
        ("t-sync", "tether: sync echo(1) [thread srv]", tether_sync_calls, thr, "raw-sync"),
        ("t-async-thr", "tether: async echo(1) [thread srv]", tether_async_calls, thr, "raw-async"),
        ("t-async-aio", "tether: async echo(1) [aio srv]", tether_async_calls, aio, "raw-async"),
        ("t-gather-thr", "tether: gathered 1000 [thread srv]", tether_gathered, thr, "raw-pipe"),
        ("t-gather-aio", "tether: gathered 1000 [aio srv]", tether_gathered, aio, "raw-pipe"),
        ("t-cb", "tether: callbacks, sync client [thread srv]", tether_callbacks, thr, "raw-sync"),
        ("t-aio-cb", "tether: callbacks, aio client [aio srv]", tether_aio_callbacks, aio, "raw-async"),
    ]
    if "rpyc" in addresses:
        rp = addresses["rpyc"]
        specs += [
            (RPYC_ECHO, "rpyc: m = conn.root.echo; m(1)", rpyc_cached, rp, "raw-sync"),
            ("rpyc-uncached", "rpyc: conn.root.echo(1) (2 round trips)", rpyc_uncached, rp, "raw-sync"),
            (RPYC_CB, "rpyc: callbacks", rpyc_callbacks, rp, "raw-sync"),
        ]
    if "pyro5" in addresses:
        uri = addresses["pyro5"]
        for name in (["msgpack"] if HAVE_MSGPACK else []) + ["serpent"]:
            pyro = functools.partial(pyro5_calls, serializer=name)
            specs.append((f"pyro5-{name}", f"pyro5: proxy.echo(1), {name}", pyro, uri, "raw-sync"))
    return [
        Measurement(
            key,
            label,
            runner(fn, address),
            {"x TCP": RAW_TCP, "x raw": raw, "x RPyC": RPYC_CB if key.endswith("-cb") else RPYC_ECHO},
        )
        for key, label, fn, address, raw in specs
    ]


# Issue 11's targets: faster than every peer per round trip, and close to the wire.
TARGETS = [
    Target("sync call >= 1.0x RPyC's cached m(1)", "t-sync", RPYC_ECHO, 1.0),
    Target("sync call >= 1.0x Pyro5 with msgpack", "t-sync", "pyro5-msgpack", 1.0),
    Target("sync call >= 0.5x raw TCP echo", "t-sync", RAW_TCP, 0.5),
    Target("sequential async >= 0.9x raw asyncio websockets echo [thread srv]", "t-async-thr", "raw-async", 0.9),
    Target("sequential async >= 0.9x raw asyncio websockets echo [aio srv]", "t-async-aio", "raw-async", 0.9),
    Target("gathered >= 0.6x raw pipelined frames [thread srv]", "t-gather-thr", "raw-pipe", 0.6),
    Target("gathered >= 0.6x raw pipelined frames [aio srv]", "t-gather-aio", "raw-pipe", 0.6),
    Target("callbacks >= 1.0x RPyC's callbacks [sync client, thread srv]", "t-cb", RPYC_CB, 1.0),
    Target("callbacks >= 1.0x RPyC's callbacks [aio client, aio srv]", "t-aio-cb", RPYC_CB, 1.0),
]


def print_legend() -> None:
    print("spread: (fastest - slowest round) / median, the noise of the row.")
    print("x TCP: median / median of the raw TCP echo (a blocking socket, 32 B each way): the floor")
    print("  under every row (gathered and pipelined rows overlap round trips, so they exceed it).")
    print("x raw: median / median of the matching raw websockets row (sync echo for sync clients,")
    print("  asyncio echo for sequential asyncio clients, pipelined frames for gathered calls).")
    print("x RPyC: median / RPyC's cached m(1), one round trip (callbacks: / RPyC's callbacks);")
    print("  > 1 is faster.")
