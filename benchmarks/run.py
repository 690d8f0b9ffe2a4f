"""Tether benchmark: round trips per second against raw websockets, RPyC 6 and Pyro5.

Run it with ``make bench`` (``.venv/bin/python benchmarks/run.py``); ``--rounds`` and
``--seconds`` change how long it runs (defaults: 9 rounds of about 0.3 s per measurement,
about a minute in all); ``--cpu N`` pins the client and the servers to one CPU, which makes
the numbers steadier on a busy machine but removes all parallelism between the processes.

What is measured. Every server runs in its own process (started by this script, which runs
itself as ``run.py --serve KIND``), so that the client and the server never share a GIL; the
client is this process. Everything talks over 127.0.0.1. It needs a POSIX system (pipes that
``select`` can wait on, SIGALRM to abort a hung round).

* raw websockets: a ``websockets`` asyncio echo server. A 32-byte binary frame is sent and its
  echo read back, one at a time, by a ``websockets.sync`` client and by an asyncio client;
  and pipelined: an asyncio client sends 1,000 frames, then reads the 1,000 echoes (frames/s).
* Tether: ``peer.root.echo(1)`` from the sync client against ``tether.serve`` (the threading
  server); ``await peer.root.echo(1)`` from ``tether.aio.connect`` against the threading server
  and against ``tether.aio.serve(..., run_sync_in_threads=False)``; 1,000 calls gathered at once
  (``asyncio.gather``) against both servers; callbacks: the client passes a local function
  ``f`` to ``root.run_callbacks(f, n)`` and the server calls ``f(i)`` ``n`` times (one round
  trip each, server to client), timed by the client as ``n`` calls per second.
* RPyC 6 (``rpyc.ThreadedServer``): ``conn.root.echo(1)`` (uncached: a getattr and a call, two
  round trips), ``echo = conn.root.echo; echo(1)`` (cached bound method, one round trip) and
  callbacks (``conn.root.run_callbacks(f, n)``).
* Pyro5: ``proxy.echo(1)`` with the serpent serializer, and msgpack when it is installed.

Measurements are interleaved: each round runs every measurement once (in a rotating order),
so a burst of load on this shared machine hits all of them alike. A round opens its own
connection, warms up, and times a fixed number of operations chosen from a calibration run;
the table shows the median round, the best one and the spread (fastest minus slowest round,
over the median: the noise of the row).

How to read the ratios. ``x raw`` divides a row's median by the raw websockets row that does
the same network work with the same kind of client: rows of sync clients (Tether's sync face,
RPyC, Pyro5) by the raw sync echo, sequential rows of asyncio clients by the raw asyncio echo,
gathered calls by the pipelined frames. It is the share of the bare transport that survives the RPC layer (1.00 would be
free RPC). ``x RPyC`` divides by RPyC's ``conn.root.echo(1)`` (or, for callbacks, by RPyC's
callbacks): above 1.00 is faster than RPyC. Only compare numbers from one run: the machine is
shared and absolute numbers move between runs; ratios within a run are what the targets check.

The script exits 0 whether the targets pass or not (it is a benchmark, not a test). It exits
non-zero if a server fails to start or a measurement fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import importlib.metadata
import importlib.util
import inspect
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PAYLOAD = bytes(range(32))  # the 32-byte binary frame of the raw websockets measurements
BATCH = 1000  # frames per pipelined batch, calls per gathered batch
WARMUP = 50  # untimed operations at the start of every round
CALIBRATION_OPS = BATCH  # operations of the calibration run that sizes the rounds (at least one batch)
MAX_OPS = 300_000  # no round does more operations than this
SERVER_START_TIMEOUT = 30.0  # seconds for all servers to announce their address
ROUND_TIMEOUT = 60.0  # seconds after which a hung round is aborted
READY = "READY"  # a server process prints "READY <address>" once it listens

HAVE_RPYC = importlib.util.find_spec("rpyc") is not None
HAVE_PYRO5 = importlib.util.find_spec("Pyro5") is not None
HAVE_MSGPACK = importlib.util.find_spec("msgpack") is not None


# ---------------------------------------------------------------------------------------------
# Server side: what ``run.py --serve KIND`` runs in a child process
# ---------------------------------------------------------------------------------------------


class BenchRoot:
    """The root object of both Tether servers (one per connection, made by :func:`make_root`)."""

    def __init__(self, peer: Any = None) -> None:
        self.peer = peer

    def echo(self, x: Any) -> Any:
        return x

    def run_callbacks(self, f: Any, n: int) -> int:
        """Call the client's function ``f`` ``n`` times (threading server)."""
        for i in range(n):
            f(i)
        return n

    async def arun_callbacks(self, f: Any, n: int) -> int:
        """Call the client's function ``f`` ``n`` times (asyncio server)."""
        for i in range(n):
            await f(i)
        return n


def make_root(peer: Any) -> BenchRoot:
    return BenchRoot(peer)


def announce(address: str) -> None:
    print(f"{READY} {address}", flush=True)


def serve_ws_echo() -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with serve(echo, HOST, 0, compression=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            announce(f"ws://{HOST}:{port}")
            await server.serve_forever()

    asyncio.run(main())


def serve_tether_threading() -> None:
    import tether

    server = tether.serve(make_root, host=HOST, port=0)
    announce(server.url)
    server.serve_forever()


def serve_tether_aio() -> None:
    import tether.aio

    async def main() -> None:
        async with tether.aio.serve(make_root, host=HOST, port=0, run_sync_in_threads=False) as server:
            announce(server.url)
            await server.serve_forever()

    asyncio.run(main())


def serve_rpyc() -> None:
    import rpyc
    from rpyc.utils.server import ThreadedServer

    class BenchService(rpyc.Service):
        def exposed_echo(self, x: Any) -> Any:
            return x

        def exposed_run_callbacks(self, f: Any, n: int) -> int:
            for i in range(n):
                f(i)
            return n

    server = ThreadedServer(BenchService, hostname=HOST, port=0)
    announce(f"{HOST}:{server.port}")
    server.start()


def serve_pyro5() -> None:
    import Pyro5.api

    @Pyro5.api.expose
    class PyroEcho:
        def echo(self, x: Any) -> Any:
            return x

    daemon = Pyro5.api.Daemon(host=HOST, port=0)
    uri = daemon.register(PyroEcho(), "bench")
    announce(str(uri))
    daemon.requestLoop()


SERVERS: dict[str, Callable[[], None]] = {
    "ws-echo": serve_ws_echo,
    "tether-threading": serve_tether_threading,
    "tether-aio": serve_tether_aio,
    "rpyc": serve_rpyc,
    "pyro5": serve_pyro5,
}


def run_server(kind: str) -> None:
    """Serve ``kind`` until killed, or until stdin closes (so a dead parent leaves no orphan)."""

    def exit_on_stdin_eof() -> None:
        with contextlib.suppress(OSError):
            while os.read(0, 4096):  # unbuffered: no lock left held at interpreter shutdown
                pass
        os._exit(0)

    threading.Thread(target=exit_on_stdin_eof, name="stdin-watch", daemon=True).start()
    SERVERS[kind]()


# ---------------------------------------------------------------------------------------------
# Server processes, seen from the client
# ---------------------------------------------------------------------------------------------


class ServerStartError(RuntimeError):
    pass


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server process we started: close its stdin, then terminate, then kill."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    for stop in (None, proc.terminate, proc.kill):
        if stop is not None:
            with contextlib.suppress(OSError):
                stop()
        try:
            proc.wait(timeout=3)
            return
        except subprocess.TimeoutExpired:
            continue


def _forward_output(name: str, proc: subprocess.Popen[bytes]) -> None:
    """Drain a server's stdout after its READY line (to stderr), so the pipe never fills."""
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stderr.write(f"[{name} server] {line.decode(errors='replace')}")


def start_servers(stack: contextlib.ExitStack, kinds: list[str]) -> dict[str, tuple[str, int]]:
    """Start one process per server kind; return kind -> (address, pid). Raise if one fails."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for kind in kinds:
        proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        stack.callback(stop_process, proc)
        procs[kind] = proc
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    addresses: dict[str, tuple[str, int]] = {}
    for kind, proc in procs.items():
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        line = proc.stdout.readline().decode(errors="replace").strip() if ready else ""
        if not line.startswith(READY + " "):
            try:
                state = f"exited with code {proc.wait(timeout=1)}"
            except subprocess.TimeoutExpired:
                state = "timed out" if not ready else "still running"
            raise ServerStartError(f"the {kind} server did not start ({state}); it printed {line!r}")
        addresses[kind] = (line.split(" ", 1)[1], proc.pid)
        threading.Thread(target=_forward_output, args=(kind, proc), daemon=True).start()
    return addresses


def thread_count(pid: int) -> int | None:
    """Threads of a process (Linux only), to show what a server has spawned."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


@contextlib.contextmanager
def round_deadline(seconds: float) -> Iterator[None]:
    """Abort the block with TimeoutError after ``seconds`` (SIGALRM interrupts blocked calls)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"the round did not finish within {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------------------------------------
# Measurements: each opens its own connection, warms up, times ``n`` operations and returns
# operations per second
# ---------------------------------------------------------------------------------------------


def _rate(ops: int, started: float) -> float:
    return ops / (time.perf_counter() - started)


def _batches(n: int) -> int:
    return max(1, n // BATCH)


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


# ---------------------------------------------------------------------------------------------
# The benchmark table
# ---------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    """One row: ``run(n)`` returns operations per second over ``n`` timed operations."""

    key: str
    label: str
    run: Callable[[int], float]
    raw: str | None = None  # key of the raw websockets row it is compared with
    rival: str | None = None  # key of the RPyC row it is compared with
    ops: int = 0  # operations per round, from the calibration run
    samples: list[float] = field(default_factory=list)
    error: str | None = None

    def calibrate(self, seconds: float) -> None:
        """Size the rounds so that each takes about ``seconds``."""
        rate = self.run(CALIBRATION_OPS)
        self.ops = max(CALIBRATION_OPS, min(MAX_OPS, int(rate * seconds)))

    def sample(self) -> None:
        """Run one round."""
        self.samples.append(self.run(self.ops))

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def best(self) -> float | None:
        return max(self.samples) if self.samples else None

    @property
    def spread(self) -> float | None:
        """(fastest - slowest round) / median: how noisy this row was."""
        median = self.median
        return (max(self.samples) - min(self.samples)) / median if median else None


def _runner(fn: Callable[[str, int], Any], address: str) -> Callable[[int], float]:
    """``run(n)`` for a measurement function; an async one runs on a fresh event loop."""
    if inspect.iscoroutinefunction(fn):
        return lambda n: float(asyncio.run(fn(address, n)))
    return lambda n: float(fn(address, n))


RPYC_ECHO, RPYC_CB = "rpyc-uncached", "rpyc-cb"


def build_measurements(addresses: dict[str, str]) -> list[Measurement]:
    """The rows of the table, in order, for the servers that are running."""
    ws, thr, aio = addresses["ws-echo"], addresses["tether-threading"], addresses["tether-aio"]
    specs: list[tuple[str, str, Callable[[str, int], Any], str, str]] = [
        # key, label, function, server address, raw baseline ("-cb" rows compare with RPyC callbacks)
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
            (RPYC_ECHO, "rpyc: conn.root.echo(1)", rpyc_uncached, rp, "raw-sync"),
            ("rpyc-cached", "rpyc: cached echo(1)", rpyc_cached, rp, "raw-sync"),
            (RPYC_CB, "rpyc: callbacks", rpyc_callbacks, rp, "raw-sync"),
        ]
    if "pyro5" in addresses:
        uri = addresses["pyro5"]
        for name in ["serpent"] + (["msgpack"] if HAVE_MSGPACK else []):
            pyro = functools.partial(pyro5_calls, serializer=name)
            specs.append((f"pyro5-{name}", f"pyro5: proxy.echo(1), {name}", pyro, uri, "raw-sync"))
    return [
        Measurement(key, label, _runner(fn, address), raw, RPYC_CB if key.endswith("-cb") else RPYC_ECHO)
        for key, label, fn, address, raw in specs
    ]


def attempt(row: Measurement, action: Callable[[], None]) -> None:
    """Run one step of a measurement; a failure marks the row (it is left out from then on)."""
    try:
        with round_deadline(ROUND_TIMEOUT):
            action()
    except Exception as exc:
        row.error = f"{type(exc).__name__}: {exc}"
        print(f"  {row.key} failed: {row.error}", file=sys.stderr, flush=True)


def run_rounds(rows: list[Measurement], rounds: int, seconds: float) -> None:
    """Calibrate every row, then run ``rounds`` interleaved rounds, rotating the order."""
    print(f"calibrating {len(rows)} measurements...", file=sys.stderr, flush=True)
    for row in rows:
        attempt(row, functools.partial(row.calibrate, seconds))
    for r in range(rounds):
        print(f"round {r + 1}/{rounds}...", file=sys.stderr, flush=True)
        shift = r % len(rows)
        for row in rows[shift:] + rows[:shift]:
            if row.error is None:
                attempt(row, row.sample)


def _fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _ratio(row: Measurement, other_key: str | None, by_key: dict[str, Measurement]) -> float | None:
    other = by_key.get(other_key) if other_key else None
    if other is None or row.median is None or other.median is None:
        return None
    return row.median / other.median


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def source_revision(module_file: str) -> str:
    """Where the measured ``tether`` came from: the commit, and whether ``src/`` had local edits."""
    path = Path(module_file).resolve().parent
    if not path.is_relative_to(REPO):
        return f"from {path}"

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "src")
    except (OSError, subprocess.SubprocessError):
        return f"from {path.relative_to(REPO)}"
    return f"from {path.relative_to(REPO)} at commit {commit}" + (" + uncommitted changes" if dirty else "")


def machine_info(rounds: int, seconds: float) -> list[str]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    import tether

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return [
        f"date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"python: {platform.python_implementation()} {platform.python_version()} on {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load}",
        f"tether: {tether.__version__} {source_revision(tether.__file__)}",
        f"versions: websockets {version('websockets')}, rpyc {version('rpyc')}, "
        f"Pyro5 {version('Pyro5')} (serpent {version('serpent')}, msgpack {version('msgpack')})",
        f"method: servers in their own processes; {rounds} interleaved rounds of ~{seconds} s per "
        "measurement; value = median round, best = fastest round",
    ]


def print_table(rows: list[Measurement]) -> None:
    by_key = {row.key: row for row in rows}
    header = f"{'measurement':<46} {'median/s':>10} {'best/s':>10} {'spread':>7} {'x raw':>7} {'x RPyC':>7}"
    print(header)
    print("-" * len(header))
    for row in rows:
        if row.error is not None and not row.samples:
            print(f"{row.label:<46} {'ERROR':>10}  {row.error}")
            continue
        print(
            f"{row.label:<46} {_fmt_rate(row.median):>10} {_fmt_rate(row.best):>10} {row.spread or 0:>6.0%} "
            f"{_fmt_ratio(_ratio(row, row.raw, by_key)):>7} {_fmt_ratio(_ratio(row, row.rival, by_key)):>7}"
        )
    print()
    print("spread: (fastest - slowest round) / median, the noise of the row.")
    print("x raw: median / median of the matching raw websockets row (sync echo for sync clients,")
    print("  asyncio echo for sequential asyncio clients, pipelined frames for gathered calls).")
    print("x RPyC: median / RPyC conn.root.echo(1) (callbacks: / RPyC callbacks); > 1 is faster.")


@dataclass
class Target:
    text: str
    row: str
    other: str
    at_least: float  # the row must reach at_least x other (1.0 and strictly: "above")
    strictly: bool = False


TARGETS = [
    Target("sync calls >= 0.6x raw sync echo", "t-sync", "raw-sync", 0.6),
    Target("sync calls above RPyC conn.root.echo(1)", "t-sync", "rpyc-uncached", 1.0, strictly=True),
    Target("sequential async >= 0.7x raw asyncio echo [thread srv]", "t-async-thr", "raw-async", 0.7),
    Target("sequential async >= 0.7x raw asyncio echo [aio srv]", "t-async-aio", "raw-async", 0.7),
    Target("gathered calls >= 0.4x raw pipelined frames [thread srv]", "t-gather-thr", "raw-pipe", 0.4),
    Target("gathered calls >= 0.4x raw pipelined frames [aio srv]", "t-gather-aio", "raw-pipe", 0.4),
    Target("callbacks above RPyC callbacks [sync client, thread srv]", "t-cb", "rpyc-cb", 1.0, strictly=True),
    Target("callbacks above RPyC callbacks [aio client, aio srv]", "t-aio-cb", "rpyc-cb", 1.0, strictly=True),
]


def print_targets(rows: list[Measurement]) -> None:
    by_key = {row.key: row for row in rows}
    print("targets (on medians):")
    for target in TARGETS:
        row, other = by_key.get(target.row), by_key.get(target.other)
        if row is None or other is None or row.median is None or other.median is None:
            missing = target.other if other is None or other.median is None else target.row
            print(f"  SKIP  {target.text}: no result for {missing}")
            continue
        ratio = row.median / other.median
        ok = ratio > target.at_least if target.strictly else ratio >= target.at_least
        print(
            f"  {'PASS' if ok else 'FAIL'}  {target.text}: {ratio:.2f}x "
            f"({_fmt_rate(row.median)}/s vs {_fmt_rate(other.median)}/s)"
        )


def benchmark(rounds: int, seconds: float, cpu: int | None) -> int:
    kinds = ["ws-echo", "tether-threading", "tether-aio"]
    skipped = []
    if HAVE_RPYC:
        kinds.append("rpyc")
    else:
        skipped.append("rpyc (not importable; install the bench extra)")
    if HAVE_PYRO5:
        kinds.append("pyro5")
    else:
        skipped.append("Pyro5 (not importable; install the bench extra)")
    if HAVE_PYRO5 and not HAVE_MSGPACK:
        skipped.append("Pyro5 with msgpack (msgpack is not installed)")

    started = time.monotonic()
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})  # before the servers start: they inherit it
    with contextlib.ExitStack() as stack:
        servers = start_servers(stack, kinds)
        rows = build_measurements({kind: address for kind, (address, _) in servers.items()})
        run_rounds(rows, rounds, seconds)
        threads = {kind: thread_count(pid) for kind, (_, pid) in servers.items()}

    print("Tether benchmark")
    for line in machine_info(rounds, seconds):
        print(f"  {line}")
    if cpu is not None:
        print(f"  pinned: this process and every server run on CPU {cpu} only")
    print()
    print_table(rows)
    print()
    print_targets(rows)
    print()
    for name in skipped:
        print(f"skipped: {name}")
    if all(count is not None for count in threads.values()):
        counts = ", ".join(f"{kind} {count}" for kind, count in threads.items())
        print(f"threads in each server process at the end (diagnostic): {counts}")
    print(f"total time: {time.monotonic() - started:.0f} s")
    failed = [row for row in rows if row.error is not None]
    for row in failed:
        print(f"error: {row.label}: {row.error}", file=sys.stderr)
    return 1 if failed else 0


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds, so the server processes get stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default 9)")
    parser.add_argument("--seconds", type=float, default=0.3, help="target seconds per round (default 0.3)")
    parser.add_argument(
        "--cpu",
        type=int,
        help="pin the client and every server to this one CPU (Linux): steadier numbers, no parallelism",
    )
    parser.add_argument("--serve", choices=sorted(SERVERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        run_server(args.serve)
        return 0
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be >= 1 and --seconds > 0")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return benchmark(args.rounds, args.seconds, args.cpu)
    except ServerStartError as exc:
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
