"""Tether benchmark: round trips per second against raw TCP, raw websockets, RPyC 6 and Pyro5;
proxies against RPyC; an object graph sent by value against pickle and cloudpickle; round trips
from a browser page (Pyodide) against the page's raw WebSocket.

Run it with ``make bench`` (``.venv/bin/python benchmarks/run.py``); ``--rounds`` and
``--seconds`` change how long it runs (defaults: 9 rounds of about 0.3 s per measurement,
about 170 seconds in all); ``--cpu N`` pins the client and the servers to one CPU,
which makes the numbers steadier on a busy machine but removes all parallelism between the
processes; ``--sections calls,browser`` runs only some of the sections.

The code: this file is the entry point; ``harness.py`` holds the machinery (server processes,
measurements, interleaved rounds, tables, targets), ``servers.py`` the servers, ``calls.py``,
``proxies.py``, ``serialization.py`` and ``browser.py`` the measurements of the four sections
(``browser_page.py`` is the browser section's code that runs inside the page).

What is measured. Every server runs in its own process (started by this script, which runs
itself as ``run.py --serve KIND``), so that the client and the server never share a GIL; the
client is this process. Everything talks over 127.0.0.1. It needs a POSIX system (pipes that
``select`` can wait on, SIGALRM to abort a hung round). There are four sections, each with its
own servers, tables and targets (all the servers start at the beginning; each section's servers
are stopped when it ends; the serialization section runs first and is printed third; the
browser section runs and is printed last).

Calls (issue 11's targets: faster than every peer per round trip, and close to the wire):

* raw TCP: an asyncio TCP echo server (TCP_NODELAY); 32 bytes sent and their echo read back,
  one at a time, by a blocking socket (TCP_NODELAY): the floor under every row.
* raw websockets: a ``websockets`` asyncio echo server. A 32-byte binary frame is sent and its
  echo read back, one at a time, by a ``websockets.sync`` client and by an asyncio client;
  and pipelined: an asyncio client sends 1,000 frames, then reads the 1,000 echoes (frames/s).
* Tether: ``peer.root.echo(1)`` from the sync client against ``tether.serve`` (the threading
  server); ``await peer.root.echo(1)`` from ``tether.aio.connect`` against the threading server
  and against ``tether.aio.serve(..., run_sync_in_threads=False)``; 1,000 calls gathered at once
  (``asyncio.gather``) against both servers; callbacks: the client passes a local function
  ``f`` to ``root.run_callbacks(f, n)`` and the server calls ``f(i)`` ``n`` times (one round
  trip each, server to client), timed by the client as ``n`` calls per second.
* RPyC 6 (``rpyc.ThreadedServer``): ``m = conn.root.echo; m(1)`` (the cached bound method, one
  round trip: the headline peer row), ``conn.root.echo(1)`` (uncached: a getattr and a call,
  two round trips) and callbacks (``conn.root.run_callbacks(f, n)``).
* Pyro5: ``proxy.echo(1)`` with the msgpack serializer (when msgpack is installed) and with
  serpent, its default.

Proxies (sync client ``tether.connect`` against the threading server; RPyC ``ThreadedServer``):

* Tether: ``p[0]`` and ``len(p)`` on a proxy to a remote ``list(range(100_000))`` sent by
  reference (``tether.by_reference``), ``p + 1`` on a proxy to a remote integer-like object
  (a ``Number`` with ``__add__``), and the plain method call ``p.echo(1)`` on that proxy.
* RPyC: the same on netrefs to the same kind of list and ``Number``, with ``p.echo(1)`` (a
  getattr and a call) and a cached ``m = p.echo; m(1)``.
* Iteration: ``sum(x for x in p)`` over the 100,000-int list (Tether fetches in growing
  batches) against RPyC iterating a netref to the same list, one round trip per item; an RPyC
  round takes only the first 5,000 items. Items per second.

Serialization (``serialization.py``; its sender is a process of its own, ``serialization.py
--send URL``, whose ``__main__`` defines the graph's classes, so the receiver cannot import them):

* Bytes of ``root.take(graph)`` (an ``Order`` dataclass with a dict and 100 ``Item``
  dataclasses) against ``tether.serve(..., accept_code=True)``, from the client's
  ``peer.stats()``: the first transfer on a connection (the server gets the classes' source on
  demand) and repeated ones; the payload is a call's bytes minus those of ``take(None)``. Beside
  them ``len(pickle.dumps(graph, protocol=5))`` and ``len(cloudpickle.dumps(graph))``.
* Encode and decode time of the graph: Tether's codec on an in-memory pair from
  ``tether.testing`` (the client's encoder, a decoder with the server's protocol) against
  ``pickle.dumps`` and ``pickle.loads``, in interleaved rounds; microseconds per graph.

Browser (``browser.py``; Playwright drives Debian's Chromium, never ``playwright install``; one
page booted from ``tether.web.serve_web``, with a guard that aborts any request not to
127.0.0.1; timed inside the page, in Pyodide). Skipped, with a line saying why, when
Playwright, aiohttp, Chromium or the Pyodide runtime is missing:

* raw: the page's ``WebSocket`` against an aiohttp echo server: a 32-byte frame echoed one at a
  time from Python (``await recv()`` on a future the ``message`` listener resolves; "lean": the
  same with a plain ``asyncio.Future``), from JavaScript alone, and pipelined (200 frames).
* Tether: ``await root.echo(1)`` against ``serve_web`` (plain methods on worker threads, "web
  srv") and ``serve_web(..., run_sync_in_threads=False)`` ("web aio srv"); 200 calls gathered
  at once; ``root.echo(1)`` from a plain ``def`` (the sync face, blocking with JSPI). A
  diagnostic counts the event-loop callbacks (``WebLoop.call_later``) per round trip.

Measurements are interleaved: each round runs every measurement of a section once (in a
rotating order), so a burst of load on this shared machine hits all of them alike. A round
opens its own connection, warms up, and times a fixed number of operations chosen from a
calibration run (iterations: a fixed number of items); the table shows the median round, the
best one and the spread (fastest minus slowest round, over the median: the noise of the row).

How to read the ratios. Calls: ``x TCP`` divides a row's median by the raw TCP echo of the same
run (the floor: what the machine's loopback and a blocking socket allow). ``x raw`` divides it
by the raw websockets row that does the same network work with the same kind of client: rows of
sync clients (Tether's sync face, RPyC, Pyro5) by the raw sync echo, sequential rows of asyncio
clients by the raw asyncio echo, gathered calls by the pipelined frames. It is the share of the
bare transport that survives the RPC layer (1.00 would be free RPC). ``x RPyC`` divides by
RPyC's cached ``m(1)``, one round trip (or, for callbacks, by RPyC's callbacks): 1.00 or more
is as fast as RPyC or faster.
Proxies: ``x call`` divides by the method call on the same system (Tether's ``p.echo(1)``,
RPyC's cached ``m(1)``): 1.00 means the operation costs one round trip like a call; ``x RPyC``
divides a Tether row by the same operation on RPyC. Browser: ``x raw`` divides by the page's
raw asyncio echo (gathered calls: by the pipelined frames). Only compare numbers from one run: the
machine is shared and absolute numbers move between runs; ratios within a run are what the
targets check.

The script exits 0 whether the targets pass or not (it is a benchmark, not a test). It exits
non-zero if a server fails to start or a measurement fails.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import browser
import calls
import proxies
import serialization
from harness import (
    Measurement,
    ServerStartError,
    machine_info,
    print_table,
    print_targets,
    run_rounds,
    start_servers,
    tether_revision,
    thread_count,
)
from servers import SERVERS, run_server

HAVE_RPYC = importlib.util.find_spec("rpyc") is not None
HAVE_PYRO5 = importlib.util.find_spec("Pyro5") is not None


def run_section(
    servers: dict[str, tuple[str, int]],
    build: Callable[[dict[str, str]], list[Measurement]],
    rounds: int,
    seconds: float,
    threads: dict[str, int | None],
) -> list[Measurement]:
    """Run a section's rounds against its servers, and note the threads of each server."""
    rows = build({kind: address for kind, (address, _) in servers.items()})
    run_rounds(rows, rounds, seconds)
    threads.update({kind: thread_count(pid) for kind, (_, pid) in servers.items()})
    return rows


def load_tether() -> None:
    """Import the parts of ``tether`` the client uses (it loads them lazily) before any server
    starts, so that the client runs the same source as the servers even if ``src/`` is being
    edited while the benchmark runs."""
    import tether
    import tether.aio

    for name in ("connect", "by_reference", "is_proxy"):
        getattr(tether, name)


SECTIONS = ["calls", "proxies", "serialization", "browser"]


def benchmark(rounds: int, seconds: float, cpu: int | None, sections: list[str] | None = None) -> int:
    sections = sections or SECTIONS
    kinds = list(calls.KINDS) if "calls" in sections else []
    proxy_kinds = list(proxies.KINDS) if "proxies" in sections else []
    code_kinds = list(serialization.KINDS) if "serialization" in sections else []
    skipped = []
    if HAVE_RPYC:
        kinds += ["rpyc"] if kinds else []
        proxy_kinds += ["rpyc-proxies"] if proxy_kinds else []
    elif kinds or proxy_kinds:
        skipped.append("rpyc (not importable; install the bench extra)")
    if HAVE_PYRO5:
        kinds += ["pyro5"] if kinds else []
    elif kinds:
        skipped.append("Pyro5 (not importable; install the bench extra)")
    if HAVE_PYRO5 and kinds and not calls.HAVE_MSGPACK:
        skipped.append("Pyro5 with msgpack (msgpack is not installed)")
    if code_kinds and not serialization.HAVE_CLOUDPICKLE:
        skipped.append("cloudpickle (not importable; install the bench extra)")
    browser_skip = browser.unavailable() if "browser" in sections else None
    browser_kinds = list(browser.KINDS) if "browser" in sections and browser_skip is None else []
    if browser_skip is not None:
        skipped.append(f"browser section ({browser_skip})")

    started = time.monotonic()
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})  # before the servers start: they inherit it
    threads: dict[str, int | None] = {}
    load_tether()
    revision = tether_revision()
    errors: list[str] = []
    serialized: dict[str, Any] | None = None
    rows: list[Measurement] = []
    proxy_rows: list[Measurement] = []
    browsed: browser.Result | None = None
    # Every server starts now (the client and the servers load tether within a few seconds of
    # each other; the page loads the tether the web server zipped when it started). The
    # serialization section runs first (its sender process loads tether as soon as possible
    # too) and is printed third; the browser section runs last (Playwright's sync API leaves
    # an event loop set on this thread). Each section's servers stop when it ends.
    with contextlib.ExitStack() as browser_stack:
        with contextlib.ExitStack() as proxy_stack:
            with contextlib.ExitStack() as calls_stack:
                calls_servers = start_servers(calls_stack, kinds)
                proxy_servers = start_servers(proxy_stack, proxy_kinds)
                browser_servers = start_servers(browser_stack, browser_kinds)
                with contextlib.ExitStack() as code_stack:
                    code_servers = start_servers(code_stack, code_kinds)
                    if code_kinds:
                        print("serialization section", file=sys.stderr, flush=True)
                        try:
                            serialized = serialization.run_section(
                                code_servers["tether-code"][0], rounds, seconds
                            )
                        except (serialization.SectionError, ValueError) as exc:
                            errors.append(f"serialization: {exc}")
                        threads.update({kind: thread_count(pid) for kind, (_, pid) in code_servers.items()})
                if kinds:
                    print("calls section", file=sys.stderr, flush=True)
                    rows = run_section(calls_servers, calls.build_measurements, rounds, seconds, threads)
            if proxy_kinds:
                print("proxies section", file=sys.stderr, flush=True)
                proxy_rows = run_section(proxy_servers, proxies.build_measurements, rounds, seconds, threads)
        if browser_kinds:
            print("browser section", file=sys.stderr, flush=True)
            try:
                addresses = {kind: address for kind, (address, _) in browser_servers.items()}
                browsed = browser.run_section(addresses, rounds, seconds)
            except browser.SectionError as exc:
                errors.append(f"browser: {exc}")
            threads.update({kind: thread_count(pid) for kind, (_, pid) in browser_servers.items()})

    print("Tether benchmark")
    for line in machine_info(rounds, seconds, revision):
        print(f"  {line}")
    if cpu is not None:
        print(f"  pinned: this process and every server run on CPU {cpu} only")
    if kinds:
        print()
        print_table(rows, calls.COLUMNS)
        print()
        calls.print_legend()
        print()
        print_targets(rows, calls.TARGETS)
    if proxy_kinds:
        print()
        print("Proxies")
        print()
        print_table(proxy_rows, proxies.COLUMNS)
        print()
        proxies.print_legend()
        print()
        print_targets(proxy_rows, proxies.TARGETS)
    if code_kinds:
        print()
        print(
            f"Serialization: an Order with a dict and {serialization.ITEMS} Items, dataclasses of the sender's __main__"
        )
        print()
        if serialized is not None:
            serialization.print_section(serialized, revision)
        else:
            print("  ERROR: no result (see below)")
    if "browser" in sections:
        print()
        print("Browser: round trips from a page (Pyodide in headless Chromium) to native servers")
        print()
        if browsed is not None:
            browser.print_section(browsed)
            if browsed.foreign:
                errors.append(f"browser: the page tried to reach other hosts: {browsed.foreign}")
        elif browser_skip is not None:
            print(f"  SKIPPED: {browser_skip}")
        else:
            print("  ERROR: no result (see below)")
    print()
    for name in skipped:
        print(f"skipped: {name}")
    if threads and all(count is not None for count in threads.values()):
        counts = ", ".join(f"{kind} {count}" for kind, count in threads.items())
        print(f"threads in each server process at the end (diagnostic): {counts}")
    print(f"total time: {time.monotonic() - started:.0f} s")
    all_rows = rows + proxy_rows + (browsed.rows if browsed is not None else [])
    errors += [f"{row.label}: {row.error}" for row in all_rows if row.error is not None]
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


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
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default: all, {','.join(SECTIONS)})",
    )
    parser.add_argument("--serve", choices=sorted(SERVERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        run_server(args.serve)
        return 0
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be >= 1 and --seconds > 0")
    sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    if not sections or any(name not in SECTIONS for name in sections):
        parser.error(f"--sections takes names among {','.join(SECTIONS)}")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return benchmark(args.rounds, args.seconds, args.cpu, sections)
    except ServerStartError as exc:
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
