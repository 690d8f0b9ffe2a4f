"""The benchmark's machinery: server processes, measurements, interleaved rounds, tables.

Nothing here knows what is measured: the sections (``calls.py``, ``proxies.py``) build
:class:`Measurement` rows and :class:`Target` lists, and ``run.py`` runs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import importlib.metadata
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

from servers import READY

REPO = Path(__file__).resolve().parent.parent
RUN_SCRIPT = Path(__file__).resolve().parent / "run.py"  # a server process is ``run.py --serve KIND``
WARMUP = 50  # untimed operations at the start of every round
CALIBRATION_OPS = 1000  # operations of the calibration run that sizes the rounds
MAX_OPS = 300_000  # no round does more operations than this
SERVER_START_TIMEOUT = 30.0  # seconds for all servers to announce their address
ROUND_TIMEOUT = 60.0  # seconds after which a hung round is aborted


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
    """Start one process per server kind; return kind -> (address, pid). Raise if one fails.

    Every process is stopped when ``stack`` closes."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for kind in kinds:
        proc = subprocess.Popen(
            [sys.executable, str(RUN_SCRIPT), "--serve", kind],
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
# Measurements and rounds
# ---------------------------------------------------------------------------------------------


def rate(ops: int, started: float) -> float:
    """Operations per second since ``started`` (a ``time.perf_counter()`` value)."""
    return ops / (time.perf_counter() - started)


@dataclass
class Measurement:
    """One row: ``run(n)`` returns operations per second over ``n`` timed operations.

    ``ratios`` maps a column of the table (``"x raw"``) to the key of the row this one's median
    is divided by in that column (None: no ratio). ``fixed_ops`` skips the calibration: every
    round does that many operations. ``calibration_ops`` is the size of the calibration run and
    the fewest operations of a round (slow rows, such as those of a browser page, lower it)."""

    key: str
    label: str
    run: Callable[[int], float]
    ratios: dict[str, str | None] = field(default_factory=dict)
    fixed_ops: int | None = None
    calibration_ops: int = CALIBRATION_OPS
    ops: int = 0  # operations per round, from the calibration run (or fixed_ops)
    samples: list[float] = field(default_factory=list)
    error: str | None = None

    def calibrate(self, seconds: float) -> None:
        """Size the rounds so that each takes about ``seconds``."""
        if self.fixed_ops is not None:
            self.ops = self.fixed_ops
            return
        measured = self.run(self.calibration_ops)
        self.ops = max(self.calibration_ops, min(MAX_OPS, int(measured * seconds)))

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


def runner(fn: Callable[..., Any], address: str, **kwargs: Any) -> Callable[[int], float]:
    """``run(n)`` for a measurement function ``fn(address, n, **kwargs)``; an async one runs on
    a fresh event loop."""
    if inspect.iscoroutinefunction(fn):
        return lambda n: float(asyncio.run(fn(address, n, **kwargs)))
    return lambda n: float(fn(address, n, **kwargs))


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


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def ratio_of(row: Measurement, other_key: str | None, by_key: dict[str, Measurement]) -> float | None:
    other = by_key.get(other_key) if other_key else None
    if other is None or row.median is None or other.median is None:
        return None
    return row.median / other.median


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(rows: list[Measurement], columns: list[str], width: int = 46) -> None:
    """The rows with their median, best, spread and one ratio per column of ``columns``."""
    by_key = {row.key: row for row in rows}
    header = f"{'measurement':<{width}} {'median/s':>10} {'best/s':>10} {'spread':>7}"
    header += "".join(f" {column:>7}" for column in columns)
    print(header)
    print("-" * len(header))
    for row in rows:
        if row.error is not None and not row.samples:
            print(f"{row.label:<{width}} {'ERROR':>10}  {row.error}")
            continue
        line = f"{row.label:<{width}} {fmt_rate(row.median):>10} {fmt_rate(row.best):>10} {row.spread or 0:>6.0%}"
        line += "".join(f" {fmt_ratio(ratio_of(row, row.ratios.get(c), by_key)):>7}" for c in columns)
        print(line)


@dataclass
class Target:
    text: str
    row: str
    other: str
    at_least: float  # the row must reach at_least x other (1.0 and strictly: "above")
    strictly: bool = False


def target_line(
    text: str, ratio: float, limit: float, detail: str, at_most: bool = False, strictly: bool = False
) -> str:
    """One line of a target: PASS if ``ratio`` is at least ``limit`` (``at_most``: at most;
    ``strictly``: above, or below), then the ratio and ``detail``."""

    def passes(value: float) -> bool:
        if at_most:
            return value < limit if strictly else value <= limit
        return value > limit if strictly else value >= limit

    ok = passes(ratio)
    shown = f"{ratio:.2f}"
    if passes(float(shown)) != ok:
        shown = f"{ratio:.4f}"  # 0.3996x must not read as 0.40x next to FAIL
    return f"  {'PASS' if ok else 'FAIL'}  {text}: {shown}x ({detail})"


def print_targets(rows: list[Measurement], targets: list[Target]) -> None:
    by_key = {row.key: row for row in rows}
    print("targets (on medians):")
    for target in targets:
        row, other = by_key.get(target.row), by_key.get(target.other)
        if row is None or other is None or row.median is None or other.median is None:
            missing = target.other if other is None or other.median is None else target.row
            print(f"  SKIP  {target.text}: no result for {missing}")
            continue
        detail = f"{fmt_rate(row.median)}/s vs {fmt_rate(other.median)}/s"
        print(
            target_line(
                target.text, row.median / other.median, target.at_least, detail, strictly=target.strictly
            )
        )


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


def tether_revision() -> str:
    """The version of the ``tether`` this process imported and where it came from (take it
    when the client loads tether: commits made during the run must not show)."""
    import tether

    return f"{tether.__version__} {source_revision(tether.__file__)}"


def machine_info(rounds: int, seconds: float, revision: str) -> list[str]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return [
        f"date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"python: {platform.python_implementation()} {platform.python_version()} on {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load}",
        f"tether: {revision}",
        f"versions: websockets {version('websockets')}, rpyc {version('rpyc')}, "
        f"Pyro5 {version('Pyro5')} (serpent {version('serpent')}, msgpack {version('msgpack')}), "
        f"cloudpickle {version('cloudpickle')}",
        f"method: servers in their own processes; {rounds} interleaved rounds of ~{seconds} s per "
        "measurement; value = median round, best = fastest round",
    ]
