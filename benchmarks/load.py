"""Tether load and soak benchmark: many concurrent connections from several processes, then a
long run of calls watching the server's memory.

Run it with ``make load`` (``.venv/bin/python benchmarks/load.py``); ``--quick`` is a short
smoke run (100 connections, 5 s per server, 20,000 soak calls). Everything talks over
127.0.0.1; it needs Linux (``/proc`` for the server's memory, threads and sockets).

Load: ``--connections`` (default 500) connections, opened from ``--processes`` (default 4)
client processes, each an asyncio program (``load.py --client ...``) holding its share of the
connections with ``tether.aio.connect``; every connection calls in a loop, one call at a time,
for ``--seconds`` (default 60) once every connection of every process is open. Against two
servers, each a process of its own started fresh for its run:

* ``thread srv``: ``python -m tether serve load_service:make_root --port 0``, the CLI's
  threading server (``benchmarks/`` on ``PYTHONPATH``);
* ``aio srv``: ``python benchmarks/load_service.py``, ``tether.aio.serve(make_root,
  "127.0.0.1", 0)`` with its default options (plain methods run on worker threads).

``make_root`` gives each connection a root of its own. The calls, in a cycle of ten:
seven ``root.add(i, 1)``, one ``root.echo(payload)`` (a small dict with a list and a string,
by value), one ``root.counter(i)`` (a ``Counter`` sent by reference: the client gets a proxy)
and one ``counter.increment()`` on that proxy, which is then dropped (so the client releases
it and the server lets it go). Every answer is checked; a wrong answer counts as an error.
Each client records the latency of every call (``time.perf_counter`` around the ``await``).

Soak: ``--soak-calls`` (default 1,000,000) calls of the same cycle against a fresh threading
server (``--soak-server aio`` for the other one), from ``--soak-processes`` (default 2)
processes of ``--soak-connections`` (default 4) connections each, every connection making its
share of the calls. The server's RSS (``VmRSS`` of ``/proc/PID/status``) is sampled every
``--soak-every`` calls (default a twentieth of them). Warm-up is the first 10% of the calls;
memory counts as flat when the RSS at the end is at most 5% and at most 8 MiB above the RSS
after warm-up. The server's census (``LoadRoot.census`` over a connection of this process:
live roots, live counters, objects tracked by the garbage collector after a collection,
threads) is taken after warm-up, at the end and after the clients disconnect.

Measured on the server process for each run: RSS and thread count (``/proc/PID/status``)
idle (before any client), once every connection is open, at the peak of the run (sampled every
0.25 s), at the end of the run, about 1 s after the clients have disconnected and ``--settle``
seconds later (default 35: the worker pool ends a thread idle for 30 s); the TCP connections
the server holds established (``/proc/net/tcp``, local port = the server's) once all are
open; its census. This process keeps one connection of its own to every server for the
census (not counted among the load's connections).

Every process this script starts is ended by its pid when the run ends, fails or is
interrupted (and gets SIGTERM if this process dies: ``PR_SET_PDEATHSIG``); every phase has a
deadline. The script exits 1 when a call failed, a connection did not open, a phase did not
finish in time or a process failed; the memory verdict is printed, not part of the exit
status. ``--json PATH`` also writes the figures as JSON. The header says whether the source
files of ``tether`` changed while the script ran (each server imports them when it starts).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import ctypes
import datetime
import json
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
START_TIMEOUT = 30.0  # seconds for a server to print its address
CONNECT_TIMEOUT = 180.0  # seconds for every client to open all its connections
CLOSE_TIMEOUT = 60.0  # seconds for the clients to close their connections and exit
RESULT_GRACE = 120.0  # seconds after a timed run's end for every client to report
SOAK_TIMEOUT = 3600.0  # default bound on the soak phase
WARMUP_SHARE = 0.10  # the soak's warm-up: the first 10% of its calls
FLAT_SHARE = 0.05  # memory is flat when it grows at most 5% after warm-up...
FLAT_MIB = 8.0  # ...and at most 8 MiB
CONNECT_CONCURRENCY = 16  # handshakes in progress at once, per client process
PAYLOAD = {"name": "load", "items": [1, 2, 3, 4, 5, 6, 7, 8], "text": "x" * 64}
SERVER_KINDS = {"thread": "thread srv: tether serve (CLI)", "aio": "aio srv: tether.aio.serve"}


# ---------------------------------------------------------------------------------------------
# The client process: load.py --client URL ...
# ---------------------------------------------------------------------------------------------


@dataclass
class ClientStats:
    calls: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    lost: int = 0  # connections that closed under the load
    per_connection: list[int] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(text)


async def drive(
    peer: Any, stats: ClientStats, latencies: array.array[float], deadline: float | None, calls: int | None
) -> None:
    """Make calls on one connection until ``deadline`` (a ``perf_counter`` value) or ``calls``."""
    import tether

    root = peer.root
    counter: Any = None
    done = 0
    i = 0
    perf = time.perf_counter
    while (calls is None or done < calls) and (deadline is None or perf() < deadline):
        step = i % 10
        started = perf()
        try:
            if step == 7:
                result = await root.echo(PAYLOAD)
                ok = result == PAYLOAD
            elif step == 8:
                counter = await root.counter(i)
                ok = tether.is_proxy(counter)
            elif step == 9 and counter is not None:
                result = await counter.increment()
                ok = result == i
                counter = None  # dropped: the proxy is released, the server lets the Counter go
            else:
                result = await root.add(i, 1)
                ok = result == i + 1
        except Exception as exc:
            stats.error(f"{type(exc).__name__}: {exc}"[:300])
            if peer.closed:
                stats.lost += 1
                break
            i += 1
            continue
        latencies.append(perf() - started)
        if ok:
            stats.calls += 1
            done += 1
        else:
            stats.error(f"wrong answer at step {step} of call {i}: {result!r}"[:300])
        i += 1
    stats.per_connection.append(done)


def emit(kind: str, payload: Any = None) -> None:
    line = kind if payload is None else f"{kind} {json.dumps(payload)}"
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def client_main(args: argparse.Namespace) -> int:
    import tether.aio

    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)

    async def command() -> str:
        return (await commands.readline()).decode().strip() or "EOF"

    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
    connect_errors: list[str] = []

    async def open_one() -> Any:
        async with limit:
            try:
                return await tether.aio.connect(args.client, open_timeout=60.0)
            except Exception as exc:
                connect_errors.append(f"{type(exc).__name__}: {exc}"[:300])
                return None

    opened = await asyncio.gather(*(open_one() for _ in range(args.conns)))
    peers = [peer for peer in opened if peer is not None]
    emit("CONNECTED", {"open": len(peers), "failed": len(connect_errors), "errors": connect_errors[:5]})
    stats = ClientStats()
    latencies: array.array[float] = array.array("d")
    try:
        if await command() != "GO":
            return 1
        started = time.perf_counter()
        deadline = started + args.client_seconds if args.client_seconds else None
        shares = [None] * len(peers)
        if args.client_calls is not None:
            base, extra = divmod(args.client_calls, max(1, len(peers)))
            shares = [base + (k < extra) for k in range(len(peers))]

        async def progress() -> None:
            while True:
                await asyncio.sleep(0.2)
                emit("PROGRESS", [stats.calls, stats.errors])

        reporter = asyncio.create_task(progress())
        await asyncio.gather(
            *(drive(p, stats, latencies, deadline, n) for p, n in zip(peers, shares, strict=True))
        )
        elapsed = time.perf_counter() - started
        reporter.cancel()
        with open(args.latencies, "wb") as f:
            latencies.tofile(f)
        emit(
            "RESULT",
            {
                "calls": stats.calls,
                "errors": stats.errors,
                "error_samples": stats.error_samples,
                "lost": stats.lost,
                "elapsed": elapsed,
                "per_connection": stats.per_connection,
            },
        )
        if await command() != "CLOSE":
            return 1
    finally:
        closing = [asyncio.wait_for(peer.close(), 10) for peer in peers]
        await asyncio.gather(*closing, return_exceptions=True)
    emit("CLOSED")
    return 0


def run_client(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(client_main(args))
    except KeyboardInterrupt:
        return 130


# ---------------------------------------------------------------------------------------------
# Processes, seen from here
# ---------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In a child before exec: get SIGTERM when this process dies (Linux), leave no orphan."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    """A process we started, whose stdout we read line by line without blocking."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.stderr"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                cwd=HERE.parent,
                start_new_session=True,  # Ctrl-C reaches this process only; it ends the others
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        self.pid = self.proc.pid
        assert self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self._buffer = b""
        self.lines: list[str] = []
        self.eof = False
        self.last = [0, 0]  # calls and errors of its last PROGRESS line

    def pump(self) -> None:
        """Read what is available into ``lines``."""
        while not self.eof:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                if self._buffer:
                    self.lines.append(self._buffer.decode(errors="replace"))
                return
            self._buffer += chunk
            *complete, self._buffer = self._buffer.split(b"\n")
            self.lines.extend(line.decode(errors="replace") for line in complete)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()

    def stderr_tail(self, lines: int = 10) -> list[str]:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def stop(self) -> None:
        """End the process by its pid: close its stdin, SIGTERM, then SIGKILL."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        for stop in (self.proc.terminate, self.proc.kill):
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError):
                stop()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class PhaseError(RuntimeError):
    """A phase did not finish: a process failed or a deadline passed."""


def wait_lines(
    children: list[Child], kind: str, timeout: float, on_tick: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Wait until every child printed a ``kind`` line; return name -> its JSON payload.

    Calls ``on_tick`` about every 0.1 s meanwhile; raises :class:`PhaseError` when a child
    exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    found: dict[str, Any] = {}
    while len(found) < len(children):
        pending = [c for c in children if c.name not in found]
        readable, _, _ = select.select([c.fd for c in pending if not c.eof], [], [], 0.1)
        for child in pending:
            if child.fd in readable or child.eof:
                child.pump()
            for index, line in enumerate(child.lines):
                if line.split(" ", 1)[0] == kind:
                    rest = line[len(kind) :].strip()
                    found[child.name] = json.loads(rest) if rest else None
                    del child.lines[: index + 1]
                    break
            if child.name not in found and child.eof:
                child.proc.poll()
                tail = " | ".join(child.stderr_tail(5))
                raise PhaseError(f"{child.name} exited (code {child.proc.returncode}) before {kind}: {tail}")
        if on_tick is not None:
            on_tick()
        if time.monotonic() > deadline and len(found) < len(children):
            missing = [c.name for c in children if c.name not in found]
            raise PhaseError(f"no {kind} within {timeout:.0f} s from {', '.join(missing)}")
    return found


def progress_of(children: list[Child]) -> tuple[int, int]:
    """Calls and errors so far, from the last PROGRESS line of every child."""
    calls = errors = 0
    for child in children:
        child.pump()
        kept = []
        for line in child.lines:
            if line.startswith("PROGRESS "):
                child.last = json.loads(line[9:])
            else:
                kept.append(line)
        child.lines = kept
        calls += child.last[0]
        errors += child.last[1]
    return calls, errors


# ---------------------------------------------------------------------------------------------
# The server process, seen from /proc
# ---------------------------------------------------------------------------------------------


def proc_status(pid: int) -> tuple[float | None, int | None]:
    """(RSS in MiB, threads) of a process, from /proc/PID/status."""
    rss = threads = None
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
    except OSError:
        pass
    return rss, threads


def established(port: int) -> int | None:
    """TCP connections in state ESTABLISHED whose local port is ``port`` (the server's side)."""
    count = 0
    try:
        with open("/proc/net/tcp") as table:
            next(table)
            for line in table:
                fields = line.split()
                if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    count += 1
    except OSError:
        return None
    return count


@dataclass
class Snapshot:
    rss: float | None
    threads: int | None
    census: dict[str, int] | None = None


class Server:
    """A server process of one kind, and this process's census connection to it."""

    def __init__(self, kind: str, log_dir: Path, tag: str) -> None:
        self.kind = kind
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
        if kind == "thread":
            argv = [sys.executable, "-m", "tether", "serve", "load_service:make_root", "--port", "0"]
        else:
            argv = [sys.executable, str(HERE / "load_service.py")]
        self.child = Child(f"{kind}-server-{tag}", argv, log_dir, env)
        self.pid = self.child.pid
        deadline = time.monotonic() + START_TIMEOUT
        while not self.child.lines and not self.child.eof and time.monotonic() < deadline:
            select.select([self.child.fd], [], [], 0.1)
            self.child.pump()
        line = self.child.lines.pop(0) if self.child.lines else ""
        if "serving" not in line or " on ws://" not in line:
            tail = " | ".join(self.child.stderr_tail(5))
            self.child.stop()
            raise PhaseError(f"the {kind} server did not start: {line!r} {tail}")
        self.url = line.rsplit(" ", 1)[1]
        self.port = int(self.url.rsplit(":", 1)[1])
        import tether

        try:
            self.peer = tether.connect(self.url)
        except Exception as exc:
            self.child.stop()
            raise PhaseError(f"cannot connect to the {kind} server at {self.url}: {exc}") from exc

    def census(self) -> dict[str, int] | None:
        try:
            return dict(self.peer.root.census())
        except Exception as exc:
            print(f"  census of the {self.kind} server failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return None

    def snapshot(self, census: bool = True) -> Snapshot:
        rss, threads = proc_status(self.pid)
        return Snapshot(rss, threads, self.census() if census else None)

    def stderr_lines(self) -> list[str]:
        try:
            return self.child.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.peer.close()
        self.child.stop()


def start_clients(
    stack: contextlib.ExitStack,
    server: Server,
    log_dir: Path,
    processes: int,
    connections: int,
    seconds: float | None,
    calls: int | None,
    tag: str,
) -> list[Child]:
    """Start the client processes (their shares of ``connections`` and ``calls``)."""
    children = []
    conn_base, conn_extra = divmod(connections, processes)
    call_base, call_extra = divmod(calls or 0, processes)
    for k in range(processes):
        name = f"{tag}-client-{k}"
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--client",
            server.url,
            "--conns",
            str(conn_base + (k < conn_extra)),
            "--latencies",
            str(log_dir / f"{name}.latencies"),
        ]
        if seconds is not None:
            argv += ["--client-seconds", str(seconds)]
        if calls is not None:
            argv += ["--client-calls", str(call_base + (k < call_extra))]
        child = Child(name, argv, log_dir)
        stack.callback(child.stop)
        children.append(child)
    return children


def read_latencies(children: list[Child], log_dir: Path) -> list[float]:
    values: array.array[float] = array.array("d")
    for child in children:
        path = log_dir / f"{child.name}.latencies"
        with open(path, "rb") as f:
            values.frombytes(f.read())
    return sorted(values)


def percentile(ordered: list[float], share: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


# ---------------------------------------------------------------------------------------------
# Phases
# ---------------------------------------------------------------------------------------------


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class LoadResult:
    kind: str
    requested: int
    processes: int
    seconds: float
    opened: int = 0
    failed_connects: int = 0
    connect_errors: list[str] = field(default_factory=list)
    connect_time: float = 0.0
    server_established: int | None = None
    calls: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    lost: int = 0
    elapsed: float = 0.0
    rate: float = 0.0
    p50: float | None = None
    p99: float | None = None
    p999: float | None = None
    max: float | None = None
    per_connection: dict[str, int] = field(default_factory=dict)
    slowest_second: int | None = None
    idle: Snapshot | None = None
    open: Snapshot | None = None
    peak_rss: float | None = None
    peak_threads: int | None = None
    end: Snapshot | None = None
    after: Snapshot | None = None
    settled: Snapshot | None = None
    settle: float = 0.0
    server_stderr: list[str] = field(default_factory=list)
    failure: str | None = None


def run_load(kind: str, args: argparse.Namespace, log_dir: Path) -> LoadResult:
    result = LoadResult(kind, args.connections, args.processes, args.seconds)
    note(f"load [{kind} srv]: starting the server")
    try:
        server = Server(kind, log_dir, "load")
    except PhaseError as exc:
        result.failure = str(exc)
        return result
    try:
        with contextlib.ExitStack() as stack:
            result.idle = server.snapshot()
            note(
                f"load [{kind} srv]: {server.url} (pid {server.pid}); opening {args.connections} connections "
                f"from {args.processes} processes"
            )
            began = time.monotonic()
            clients = start_clients(
                stack, server, log_dir, args.processes, args.connections, args.seconds, None, f"load-{kind}"
            )
            connected = wait_lines(clients, "CONNECTED", CONNECT_TIMEOUT)
            result.connect_time = time.monotonic() - began
            result.opened = sum(c["open"] for c in connected.values())
            result.failed_connects = sum(c["failed"] for c in connected.values())
            result.connect_errors = [e for c in connected.values() for e in c["errors"]][:5]
            result.server_established = established(server.port)
            result.open = server.snapshot()
            note(
                f"load [{kind} srv]: {result.opened} open ({result.failed_connects} failed) in "
                f"{result.connect_time:.1f} s; the server holds {result.server_established} established "
                f"(one is this process's census connection); calling for {args.seconds:g} s"
            )
            peak_rss, peak_threads = result.open.rss or 0.0, result.open.threads or 0
            per_second: list[int] = []
            last = {"sample": 0.0, "second": time.monotonic(), "calls": 0, "print": time.monotonic()}

            def tick() -> None:
                nonlocal peak_rss, peak_threads
                now = time.monotonic()
                if now - last["sample"] >= 0.25:
                    last["sample"] = now
                    rss, threads = proc_status(server.pid)
                    peak_rss = max(peak_rss, rss or 0.0)
                    peak_threads = max(peak_threads, threads or 0)
                if now - last["second"] >= 1.0:
                    calls, errors = progress_of(clients)
                    per_second.append(int((calls - last["calls"]) / (now - last["second"])))
                    last["second"], last["calls"] = now, calls
                    if now - last["print"] >= 10.0:
                        last["print"] = now
                        note(
                            f"  {calls:,} calls, {errors} errors, server RSS {peak_rss:.0f} MiB peak, "
                            f"{peak_threads} threads peak"
                        )

            for client in clients:
                client.send("GO")
            results = wait_lines(clients, "RESULT", args.seconds + RESULT_GRACE, tick)
            result.peak_rss, result.peak_threads = peak_rss, peak_threads
            result.end = server.snapshot()
            result.calls = sum(r["calls"] for r in results.values())
            result.errors = sum(r["errors"] for r in results.values())
            result.error_samples = [e for r in results.values() for e in r["error_samples"]][:5]
            result.lost = sum(r["lost"] for r in results.values())
            result.elapsed = statistics.mean(r["elapsed"] for r in results.values())
            result.rate = result.calls / result.elapsed if result.elapsed else 0.0
            counts = sorted(n for r in results.values() for n in r["per_connection"])
            if counts:
                result.per_connection = {
                    "min": counts[0],
                    "median": int(statistics.median(counts)),
                    "max": counts[-1],
                }
            if len(per_second) > 2:
                result.slowest_second = min(per_second[1:-1])
            latencies = read_latencies(clients, log_dir)
            result.p50, result.p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
            result.p999, result.max = percentile(latencies, 0.999), latencies[-1] if latencies else None
            note(
                f"load [{kind} srv]: {result.calls:,} calls, {result.errors} errors; closing the connections"
            )
            for client in clients:
                client.send("CLOSE")
            wait_lines(clients, "CLOSED", CLOSE_TIMEOUT)
        deadline = time.monotonic() + 15
        while (established(server.port) or 0) > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        result.after = server.snapshot()
        if args.settle > 0:
            note(f"load [{kind} srv]: {args.settle:g} s with no clients (idle workers end after 30 s)")
            time.sleep(args.settle)
            result.settle = args.settle
            result.settled = server.snapshot()
    except PhaseError as exc:
        result.failure = str(exc)
        note(f"load [{kind} srv] FAILED: {exc}")
    finally:
        server.stop()
        result.server_stderr = server.stderr_lines()
    return result


@dataclass
class SoakResult:
    kind: str
    calls_target: int
    processes: int
    connections: int
    every: int
    calls: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    rate: float = 0.0
    p50: float | None = None
    p99: float | None = None
    samples: list[tuple[int, float, float | None, int | None]] = field(default_factory=list)
    idle: Snapshot | None = None
    warm: Snapshot | None = None
    warm_calls: int = 0
    end: Snapshot | None = None
    after: Snapshot | None = None
    max_after_warmup: float | None = None
    half: tuple[int, float] | None = None  # (calls, RSS) of the sample nearest half of the calls
    growth_mib: float | None = None
    growth_share: float | None = None
    flat: bool | None = None
    server_stderr: list[str] = field(default_factory=list)
    failure: str | None = None


def run_soak(args: argparse.Namespace, log_dir: Path) -> SoakResult:
    kind = args.soak_server
    every = args.soak_every or max(1, args.soak_calls // 20)
    total_conns = args.soak_processes * args.soak_connections
    result = SoakResult(kind, args.soak_calls, args.soak_processes, total_conns, every)
    note(f"soak [{kind} srv]: starting the server")
    try:
        server = Server(kind, log_dir, "soak")
    except PhaseError as exc:
        result.failure = str(exc)
        return result
    try:
        with contextlib.ExitStack() as stack:
            result.idle = server.snapshot()
            clients = start_clients(
                stack, server, log_dir, args.soak_processes, total_conns, None, args.soak_calls, "soak"
            )
            connected = wait_lines(clients, "CONNECTED", CONNECT_TIMEOUT)
            opened = sum(c["open"] for c in connected.values())
            if opened < total_conns:
                errors = [e for c in connected.values() for e in c["errors"]][:3]
                raise PhaseError(f"only {opened} of {total_conns} soak connections opened: {errors}")
            note(
                f"soak [{kind} srv]: {args.soak_calls:,} calls from {total_conns} connections in "
                f"{args.soak_processes} processes; RSS sampled every {every:,} calls"
            )
            started = time.monotonic()
            warm_at = max(1, int(args.soak_calls * WARMUP_SHARE))
            state = {"next": every, "warm": False, "print": time.monotonic()}

            def tick() -> None:
                calls, errors = progress_of(clients)
                while calls >= state["next"]:
                    rss, threads = proc_status(server.pid)
                    result.samples.append((calls, time.monotonic() - started, rss, threads))
                    state["next"] += every
                if not state["warm"] and calls >= warm_at:
                    state["warm"] = True
                    result.warm_calls = calls
                    result.warm = server.snapshot()
                    note(f"  warm-up done at {calls:,} calls: server RSS {result.warm.rss:.1f} MiB")
                now = time.monotonic()
                if now - state["print"] >= 10.0:
                    state["print"] = now
                    rss, threads = proc_status(server.pid)
                    note(
                        f"  {calls:,}/{args.soak_calls:,} calls ({calls / args.soak_calls:.0%}), "
                        f"{errors} errors, {now - started:.0f} s, server RSS {rss:.1f} MiB, {threads} threads"
                    )

            for client in clients:
                client.send("GO")
            results = wait_lines(clients, "RESULT", args.soak_timeout, tick)
            result.end = server.snapshot()
            result.calls = sum(r["calls"] for r in results.values())
            result.errors = sum(r["errors"] for r in results.values())
            result.error_samples = [e for r in results.values() for e in r["error_samples"]][:5]
            result.elapsed = max(r["elapsed"] for r in results.values())
            result.rate = result.calls / result.elapsed if result.elapsed else 0.0
            if not result.samples or result.samples[-1][0] < result.calls:
                result.samples.append(
                    (result.calls, time.monotonic() - started, result.end.rss, result.end.threads)
                )
            latencies = read_latencies(clients, log_dir)
            result.p50, result.p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
            for client in clients:
                client.send("CLOSE")
            wait_lines(clients, "CLOSED", CLOSE_TIMEOUT)
        deadline = time.monotonic() + 15
        while (established(server.port) or 0) > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        result.after = server.snapshot()
        if result.warm is not None and result.warm.rss and result.end is not None and result.end.rss:
            later = [rss for calls, _, rss, _ in result.samples if calls >= result.warm_calls and rss]
            result.max_after_warmup = max([*later, result.end.rss])
            result.growth_mib = result.end.rss - result.warm.rss
            result.growth_share = result.growth_mib / result.warm.rss
            result.flat = result.growth_share <= FLAT_SHARE and result.growth_mib <= FLAT_MIB
            halfway = [
                (abs(calls - result.calls / 2), calls, rss) for calls, _, rss, _ in result.samples if rss
            ]
            if halfway:
                _, calls, rss = min(halfway)
                result.half = (calls, rss)
    except PhaseError as exc:
        result.failure = str(exc)
        note(f"soak [{kind} srv] FAILED: {exc}")
    finally:
        server.stop()
        result.server_stderr = server.stderr_lines()
    return result


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def source_digest() -> str:
    """A digest of the imported ``tether`` package's source files, to tell whether they changed
    while the benchmark ran (each server process imports them when it starts)."""
    import hashlib

    import tether

    digest = hashlib.sha256()
    package = Path(tether.__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0")
        with contextlib.suppress(OSError):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def header_lines(args: argparse.Namespace) -> list[str]:
    try:
        from harness import tether_revision

        revision = tether_revision()
    except Exception as exc:
        revision = f"unknown ({type(exc).__name__})"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"python: {platform.python_implementation()} {platform.python_version()} on {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load}",
        f"tether: {revision}",
        f"command: {' '.join([Path(sys.executable).name, *sys.argv])}",
    ]


def print_load(results: list[LoadResult]) -> None:
    if not results:
        return
    first = results[0]
    print(
        f"Load: {first.requested} connections from {first.processes} client processes, {first.seconds:g} s "
        "per server, every connection calling in a loop"
    )
    print()
    head = (
        f"{'server':<32} {'open':>9} {'calls':>10} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'p99.9 ms':>8} {'max ms':>7} {'errors':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        label = SERVER_KINDS[r.kind]
        if r.failure and not r.calls:
            print(f"{label:<32} FAILED: {r.failure}")
            continue
        print(
            f"{label:<32} {f'{r.opened}/{r.requested}':>9} {r.calls:>10,} {r.rate:>8,.0f} {ms(r.p50):>7} "
            f"{ms(r.p99):>7} {ms(r.p999):>8} {ms(r.max):>7} {r.errors:>6}"
        )
    print()
    settle = max(r.settle for r in results)
    later = f"+{settle + 1:g}s"
    head = (
        f"{'server':<32} {'RSS MiB: idle':>13} {'open':>6} {'peak':>6} {'end':>6} {'+1s':>6} {later:>6}   "
        f"{'threads: idle':>13} {'open':>5} {'peak':>5} {'end':>5} {'+1s':>5} {later:>5}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        snaps = [r.idle, r.open, None, r.end, r.after, r.settled]
        rss = [mib(s.rss) if s else "-" for s in snaps]
        rss[2] = mib(r.peak_rss)
        threads = [num(s.threads) if s else "-" for s in snaps]
        threads[2] = num(r.peak_threads)
        print(
            f"{SERVER_KINDS[r.kind]:<32} {rss[0]:>13} {rss[1]:>6} {rss[2]:>6} {rss[3]:>6} {rss[4]:>6} "
            f"{rss[5]:>6}   {threads[0]:>13} {threads[1]:>5} {threads[2]:>5} {threads[3]:>5} "
            f"{threads[4]:>5} {threads[5]:>5}"
        )
    print()
    for r in results:
        label = r.kind + " srv"
        names = ("open", "end", "after", "settled")
        census = {name: getattr(r, name).census for name in names if getattr(r, name)}
        roots = ", ".join(f"{k} {c['roots'] - 1}" for k, c in census.items() if c)
        counters = ", ".join(f"{k} {c['counters']}" for k, c in census.items() if c)
        gc_objects = ", ".join(f"{k} {c['gc_objects']:,}" for k, c in census.items() if c)
        print(
            f"{label}: connections opened in {r.connect_time:.1f} s ({r.failed_connects} failed); "
            f"established at the server once open: {num(r.server_established)} "
            "(this process's census connection included)"
        )
        print(
            f"  calls per connection: {r.per_connection or '-'}; slowest 1-s window: "
            f"{num(r.slowest_second)} calls/s; connections lost under load: {r.lost}"
        )
        blocks = ", ".join(f"{k} {c.get('blocks', 0):,}" for k, c in census.items() if c)
        print(f"  census: roots {roots or '-'}; counters {counters or '-'}; gc objects {gc_objects or '-'}")
        print(f"  census: allocated blocks {blocks or '-'}")
        for sample in r.error_samples:
            print(f"  error: {sample}")
        for sample in r.connect_errors:
            print(f"  connect error: {sample}")
        if r.server_stderr:
            print(f"  server stderr: {len(r.server_stderr)} lines; first: {r.server_stderr[:3]}")
        if r.failure:
            print(f"  FAILED: {r.failure}")
    print()
    print("open: connections the clients held open (of those requested). calls: answered and checked.")
    print("p50, p99, p99.9, max: latency of one call as the client saw it (all calls of the run).")
    print("RSS, threads: the server process (/proc/PID/status): before any client (idle), once every")
    print("  connection is open, peak of the run (sampled every 0.25 s), end of the run, about 1 s")
    print(f"  after the clients disconnected (+1s) and {settle:g} s after that ({later}): what it keeps.")
    print("census: from the server (LoadRoot.census): roots of client connections still alive, live")
    print("  Counters, objects tracked by the garbage collector after gc.collect().")


def print_soak(s: SoakResult | None) -> None:
    if s is None:
        return
    print(
        f"Soak: {s.calls_target:,} calls against {SERVER_KINDS[s.kind]}, from {s.connections} connections "
        f"in {s.processes} client processes"
    )
    print()
    if s.failure and not s.calls:
        print(f"  FAILED: {s.failure}")
        return
    print(
        f"  calls: {s.calls:,} in {s.elapsed:.0f} s ({s.rate:,.0f}/s); "
        f"p50 {ms(s.p50)} ms, p99 {ms(s.p99)} ms; errors: {s.errors}"
    )
    for sample in s.error_samples:
        print(f"  error: {sample}")
    print()
    head = f"{'calls':>12} {'time s':>7} {'RSS MiB':>8} {'threads':>8}"
    print(head)
    print("-" * len(head))
    if s.idle is not None:
        print(f"{'idle':>12} {'-':>7} {mib(s.idle.rss):>8} {num(s.idle.threads):>8}")
    first_warm = next(
        (k for k, sample in enumerate(s.samples) if s.warm_calls and sample[0] >= s.warm_calls), None
    )
    for k, (calls, seconds, rss, threads) in enumerate(s.samples):
        mark = "  <- first sample after warm-up" if k == first_warm else ""
        print(f"{calls:>12,} {seconds:>7.0f} {mib(rss):>8} {num(threads):>8}{mark}")
    if s.after is not None:
        print(f"{'after':>12} {'-':>7} {mib(s.after.rss):>8} {num(s.after.threads):>8}")
    print()
    for name in ("warm", "end", "after"):
        snap = getattr(s, name)
        if snap is not None and snap.census:
            c = snap.census
            print(
                f"  census {name:<5}: roots {c['roots'] - 1}, counters {c['counters']}, "
                f"gc objects {c['gc_objects']:,}, "
                f"allocated blocks {c.get('blocks', 0):,}, threads {c['threads']}"
            )
    if s.growth_mib is not None and s.warm is not None and s.end is not None:
        print(
            f"  RSS after warm-up ({s.warm_calls:,} calls): {mib(s.warm.rss)} MiB; "
            f"at the end: {mib(s.end.rss)} MiB; growth {s.growth_mib:+.1f} MiB ({s.growth_share:+.1%}); "
            f"highest after warm-up {mib(s.max_after_warmup)} MiB"
        )
        if s.half is not None:
            print(
                f"  second half: {mib(s.half[1])} MiB at {s.half[0]:,} calls, {mib(s.end.rss)} MiB "
                f"at the end ({s.end.rss - s.half[1]:+.1f} MiB)"
            )
        print(
            f"  criterion: flat if the end RSS is at most {FLAT_SHARE:.0%} and at most {FLAT_MIB:g} MiB "
            f"above the RSS after warm-up (the first {WARMUP_SHARE:.0%} of the calls): "
            f"{'FLAT' if s.flat else 'NOT FLAT'}"
        )
    if s.server_stderr:
        print(f"  server stderr: {len(s.server_stderr)} lines; first: {s.server_stderr[:3]}")
    if s.failure:
        print(f"  FAILED: {s.failure}")


def verdicts(loads: list[LoadResult], soak: SoakResult | None) -> list[tuple[bool, str]]:
    lines = []
    for r in loads:
        label = f"[{r.kind} srv]"
        lines.append(
            (r.failure is None, f"load run finished {label}" + (f": {r.failure}" if r.failure else ""))
        )
        lines.append((r.opened == r.requested, f"all {r.requested} connections open {label}: {r.opened}"))
        lines.append(
            (
                r.errors == 0 and r.lost == 0,
                f"no errors under load {label}: {r.errors} errors, {r.lost} connections lost",
            )
        )
        lines.append((r.calls > 0, f"calls were made {label}: {r.calls:,}"))
    if soak is not None:
        label = f"[{soak.kind} srv]"
        lines.append(
            (soak.failure is None, f"soak finished {label}" + (f": {soak.failure}" if soak.failure else ""))
        )
        lines.append(
            (
                soak.calls == soak.calls_target,
                f"soak calls answered {label}: {soak.calls:,} of {soak.calls_target:,}",
            )
        )
        lines.append((soak.errors == 0, f"no errors in the soak {label}: {soak.errors}"))
    return lines


def to_json(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return {name: to_json(getattr(obj, name)) for name in obj.__dataclass_fields__}
    if isinstance(obj, (list, tuple)):
        return [to_json(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    return obj


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def raise_on_sigterm() -> Iterator[None]:
    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds, so every process we started is ended

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def benchmark(args: argparse.Namespace) -> int:
    if not Path("/proc/self/status").exists():
        print("load.py needs Linux (/proc)", file=sys.stderr)
        return 2
    import tether  # the parts the census connection uses, loaded before any server starts

    tether.connect  # noqa: B018
    began = time.monotonic()
    header = header_lines(args)
    digest = source_digest()
    loads: list[LoadResult] = []
    soak: SoakResult | None = None
    with tempfile.TemporaryDirectory(prefix="tether-load-") as tmp:
        log_dir = Path(tmp)
        for kind in args.servers:
            loads.append(run_load(kind, args, log_dir))
        if args.soak_calls > 0:
            soak = run_soak(args, log_dir)
    changed = source_digest() != digest
    if changed:
        header.append(
            "WARNING: tether's source files changed during the run: processes may not all run the same code"
        )
    else:
        header.append(f"source: tether's .py files unchanged during the run (digest {digest})")
    print("Tether load and soak")
    for line in header:
        print(f"  {line}")
    print()
    print_load(loads)
    if soak is not None:
        if loads:
            print()
        print_soak(soak)
    print()
    checks = verdicts(loads, soak)
    print("checks:")
    for ok, text in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    if soak is not None and soak.flat is not None:
        print(
            f"  {'PASS' if soak.flat else 'FAIL'}  soak memory flat [{soak.kind} srv] "
            f"(not in the exit status): {soak.growth_mib:+.1f} MiB ({soak.growth_share:+.1%}) after warm-up"
        )
    print(f"total time: {time.monotonic() - began:.0f} s")
    if args.json:
        figures = {"load": to_json(loads), "soak": to_json(soak), "source_changed": changed}
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0 if all(ok for ok, _ in checks) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short smoke run: 100 connections, 5 s per server, 20,000 soak calls",
    )
    parser.add_argument("--connections", type=int, help="concurrent connections per server (default 500)")
    parser.add_argument("--processes", type=int, help="client processes sharing them (default 4)")
    parser.add_argument("--seconds", type=float, help="seconds of calls per server (default 60)")
    parser.add_argument(
        "--servers", default="thread,aio", help="load these servers: thread, aio (default both)"
    )
    parser.add_argument("--soak-calls", type=int, help="calls of the soak (default 1,000,000; 0: no soak)")
    parser.add_argument(
        "--soak-server",
        choices=sorted(SERVER_KINDS),
        default="thread",
        help="server of the soak (default thread: `tether serve`)",
    )
    parser.add_argument(
        "--soak-processes", type=int, default=2, help="client processes of the soak (default 2)"
    )
    parser.add_argument(
        "--soak-connections", type=int, default=4, help="connections per soak client process (default 4)"
    )
    parser.add_argument(
        "--soak-every", type=int, help="sample the server's RSS every N calls (default calls/20)"
    )
    parser.add_argument(
        "--soak-timeout",
        type=float,
        default=SOAK_TIMEOUT,
        help=f"give up the soak after this many seconds (default {SOAK_TIMEOUT:.0f})",
    )
    parser.add_argument(
        "--settle",
        type=float,
        help="after a load run, wait this long with no clients, then look again (default 35; quick 0)",
    )
    parser.add_argument("--json", help="also write the figures to this file as JSON")
    # The client process (load.py runs itself):
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--conns", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client-seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--client-calls", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--latencies", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        return run_client(args)
    quick = args.quick
    args.connections = args.connections if args.connections is not None else (100 if quick else 500)
    args.processes = args.processes if args.processes is not None else (2 if quick else 4)
    args.seconds = args.seconds if args.seconds is not None else (5.0 if quick else 60.0)
    args.settle = args.settle if args.settle is not None else (0.0 if quick else 35.0)
    args.soak_calls = args.soak_calls if args.soak_calls is not None else (20_000 if quick else 1_000_000)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if any(s not in SERVER_KINDS for s in args.servers):
        parser.error(f"--servers takes names among {','.join(SERVER_KINDS)}")
    if args.connections < 1 or args.processes < 1 or args.processes > args.connections or args.seconds <= 0:
        parser.error("need connections >= processes >= 1 and seconds > 0")
    if args.soak_calls < 0 or args.soak_processes < 1 or args.soak_connections < 1:
        parser.error("need soak-calls >= 0, soak-processes >= 1, soak-connections >= 1")
    with raise_on_sigterm():
        try:
            return benchmark(args)
        except KeyboardInterrupt:
            print("interrupted: every process started was ended", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
