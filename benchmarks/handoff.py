"""A call on a reference that came from a third process: forwarded by it, or handed off to a
direct link (issue: "Objects on many machines", three-party handoff).

Three processes on 127.0.0.1: B owns a counter (``tether serve tests.native.vats:make_node``);
A (a node of the same kind, ``--serve-a`` below) links to B and serves on two ports, one with
``handoff="direct"`` (the default) and one with ``handoff="forward"``; this process, C, measures
``counter.increment()`` per call, in three ways:

* direct: C connected to B calls B's counter (the baseline);
* forwarded: C got B's counter from A's ``handoff="forward"`` port, so every call goes C->A->B;
* handed off: C got it from A's default port, so A introduced C to B and C calls B directly.

Medians of ``--rounds`` interleaved rounds of about ``--seconds`` each (``benchmarks/harness.py``
sizes and rotates them), then the frames A carries (sent and received on all its connections,
from its ``stats()``) per 100 calls of each kind.

Run: ``.venv/bin/python benchmarks/handoff.py`` (about 20 seconds; ``make bench`` runs it last).
It exits 0 unless a process fails to start, a measurement fails, or the handed-off calls turn
out to go through A (then that row measured no handoff).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import select
import shlex
import subprocess
import sys
import threading
import time
from typing import Any

import tether
import tether.codec
from harness import (
    REPO,
    SERVER_START_TIMEOUT,
    WARMUP,
    Measurement,
    ServerStartError,
    _forward_output,
    fmt_rate,
    fmt_ratio,
    machine_info,
    rate,
    run_rounds,
    stop_process,
    tether_revision,
)
from servers import READY

NODE = "tests.native.vats:make_node"  # what A and B serve: a counter, links, stats()
FRAME_CALLS = 100  # calls whose frames are counted at A, per case


def serve_a() -> None:
    """A: one node on two ports, handoff="direct" and handoff="forward", sharing its links
    (``READY <direct url> <forward url>``); it runs until its stdin closes."""
    sys.path.insert(0, str(REPO))
    from tests.native import vats

    with (
        tether.serve(vats.make_node, "127.0.0.1", 0) as direct,
        tether.serve(vats.make_node, "127.0.0.1", 0, handoff="forward") as forward,
    ):
        print(f"{READY} {direct.url} {forward.url}", flush=True)
        sys.stdin.read()


def start(stack: contextlib.ExitStack, name: str, argv: list[str]) -> str:
    """Start a process that prints one line once it listens; return that line (its output
    after it goes to stderr). The process is stopped when ``stack`` closes."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO, env=env)
    stack.callback(stop_process, proc)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], SERVER_START_TIMEOUT)
    line = proc.stdout.readline().decode(errors="replace").strip() if ready else ""
    if not line:
        raise ServerStartError(f"{name} did not start (exit code {proc.poll()})")
    threading.Thread(target=_forward_output, args=(name, proc), daemon=True).start()
    return line


def calls(counter: Any) -> Any:
    """``run(n)`` for a measurement: ``n`` calls of ``counter.increment()``, in calls per second."""

    def run(n: int) -> float:
        increment = counter.increment
        for _ in range(WARMUP):
            increment()
        started = time.perf_counter()
        for _ in range(n):
            increment()
        return rate(n, started)

    return run


def frames_at(a: Any, b_url: str) -> tuple[int, int]:
    """A's frames (sent + received) on its link to B, and on all its connections."""
    stats = a.root.stats()
    link = stats["links"][b_url]
    on_link = link["frames_sent"] + link["frames_received"]
    served = sum(s["frames_sent"] + s["frames_received"] for s in stats["served"])
    return on_link, on_link + served


def frames_per_calls(a: Any, b_url: str, counter: Any) -> tuple[int, int]:
    """The frames A carries during FRAME_CALLS calls on ``counter`` (less those of the
    ``stats()`` calls that count them: two stats() calls in a row measure those)."""
    gc.collect()
    first = frames_at(a, b_url)
    second = frames_at(a, b_url)
    for _ in range(FRAME_CALLS):
        counter.increment()
    third = frames_at(a, b_url)
    on_link, total = ((t - s) - (s - f) for f, s, t in zip(first, second, third, strict=True))
    return on_link, total


def main(rounds: int, seconds: float) -> int:
    revision = tether_revision()
    print("Three-party handoff: a call on B's counter from C, direct, forwarded by A, handed off by A")
    print(f"  command: {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
    for line in machine_info(rounds, seconds, revision):
        print(f"  {line}")
    compiled = (tether.codec.__file__ or "").endswith((".so", ".pyd"))
    print(f"  codec: {'compiled (mypyc)' if compiled else 'pure Python'}")
    print("  measured: counter.increment() on B from this process (C), one call at a time, on a counter")
    print("    C got from B (direct), from A's handoff=\"forward\" port (C->A->B), and from A's default")
    print("    handoff=\"direct\" port (handed off: C->B); B and A are processes of their own on 127.0.0.1")
    print(flush=True)
    with contextlib.ExitStack() as stack:
        b_line = start(stack, "B", [sys.executable, "-m", "tether", "serve", NODE, "--port", "0"])
        b_url = b_line.rsplit(" ", 1)[1]
        a_line = start(stack, "A", [sys.executable, os.path.abspath(__file__), "--serve-a"])
        if not a_line.startswith(READY + " "):
            raise ServerStartError(f"A printed {a_line!r}")
        a_direct_url, a_forward_url = a_line.split()[1:3]

        a = stack.enter_context(tether.connect(a_direct_url))  # the control connection to A
        a.root.link(b_url)
        via_a = stack.enter_context(tether.connect(a_direct_url))
        handed = via_a.root.remote_counter(b_url)  # C dials B itself for the handoff
        via_a_forward = stack.enter_context(tether.connect(a_forward_url))
        forwarded = via_a_forward.root.remote_counter(b_url)
        b = stack.enter_context(tether.connect(b_url))
        direct = b.root.counter()
        if not (b.root.is_mine(handed) and b.root.is_mine(forwarded)):
            print("FAILED: a counter C got from A is not B's counter", file=sys.stderr)
            return 1
        where = {"forwarded": tether.describe(forwarded), "handed off": tether.describe(handed)}
        if not where["handed off"].endswith(f" on {b_url}"):
            print(f"FAILED: the handed-off counter is not on a link to B: {where['handed off']}", file=sys.stderr)
            return 1

        rows = [
            Measurement("direct", "direct: C -> B", calls(direct)),
            Measurement("forwarded", 'forwarded: C -> A -> B (handoff="forward")', calls(forwarded)),
            Measurement("handed off", 'handed off by A: C -> B (handoff="direct")', calls(handed)),
        ]
        run_rounds(rows, rounds, seconds)
        counters = {"direct": direct, "forwarded": forwarded, "handed off": handed}
        frames = {key: frames_per_calls(a, b_url, counter) for key, counter in counters.items()}
        before = b.root.count()
        handed.increment()
        if b.root.count() != before + 1:
            print("FAILED: the handed-off counter did not count on B", file=sys.stderr)
            return 1

    base = rows[0].median
    header = (
        f"{'call':<44} {'calls/s':>9} {'us/call':>8} {'spread':>7} {'x direct':>8} "
        f"{'A-B frames':>11} {'A frames':>9}"
    )
    print(f"Medians of {rounds} rounds; frames: what A sent + received per {FRAME_CALLS} calls")
    print("(on its link to B, and on all its connections)")
    print()
    print(header)
    print("-" * len(header))
    failed = False
    for row in rows:
        failed = failed or row.error is not None
        if row.median is None:
            print(f"{row.label:<44} {'ERROR':>9}  {row.error}")
            continue
        on_link, total = frames[row.key]
        ratio = row.median / base if base else None
        print(
            f"{row.label:<44} {fmt_rate(row.median):>9} {1e6 / row.median:>8.1f} {row.spread or 0:>6.0%} "
            f"{fmt_ratio(ratio):>8} {on_link:>11} {total:>9}"
        )
    total = frames["handed off"][1]
    print()
    print(f"  B: {b_url}; A: {a_direct_url} (handoff=\"direct\"), {a_forward_url} (handoff=\"forward\")")
    for key, described in where.items():
        print(f"  C's {key} counter: {described}")
    print(
        f"  after the handoff A carries {total} frames per {FRAME_CALLS} calls "
        f"({'none: C calls B directly' if total == 0 else 'it should carry none'}); "
        f"forwarding costs it {frames['forwarded'][1]}"
    )
    if total >= FRAME_CALLS:  # the calls went through A: the row did not measure a handoff
        print("FAILED: the handed-off counter's calls went through A", file=sys.stderr)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default 9)")
    parser.add_argument("--seconds", type=float, default=0.4, help="seconds per round and case (default 0.4)")
    parser.add_argument("--serve-a", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_a:
        serve_a()
    else:
        sys.exit(main(arguments.rounds, arguments.seconds))
