"""Objects on many machines: five processes pass one counter around, and the calls go straight to
its owner (three-party handoff; docs/many-machines.md explains it).

Run ``python examples/many_machines.py``. It starts five processes on 127.0.0.1, P1 to P5, each
``tether serve many_machines:make_node --port 0`` (this file is also the node they serve), and
drives them from here (the console):

1. P1 links to P2, P3, P4 and P5. From here, one pipelined asyncio call asks P1 for P2's counter
   and increments it, in one round trip to P1 (P1 forwards the increment to P2).
2. P1 gives P2's counter to P3: P1 introduces P3 to P2, and P3 opens a link to P2 of its own.
3. P3 links to P4 and passes the counter on: P4 opens a link to P2.
4. P5 links to P2; P4 links to P5 and passes the counter on: P5 withdraws it over the link it
   has to P2 (a handoff reuses a connection to the owner).
5. P3, P4 and P5 call ``increment()`` 100 times each.
6. P5 sends the counter back to P2, which checks that it is its own object (``is``).

Then it prints the frames every link carried (counted by the node that accepted it: both
directions), during the wiring (1-4) and during the calls (5). The calls must go straight to
P2: the links of P1 and those between P3, P4 and P5 carry none of them. It exits 1 when
something is off, 0 otherwise, within 20 seconds; the five processes are ended by their pids.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import tether
import tether.aio
from tether.gifts import VAT

# -- the node: what each of P1..P5 serves ---------------------------------------------------


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def increment(self) -> int:
        self.n += 1
        return self.n


COUNTER = Counter()  # this process's own counter
LINKS: dict[str, Any] = {}  # URL -> the Peer of a link this node opened
SERVED: list[Any] = []  # the Peers of the connections this node accepted


class Node:
    def __init__(self) -> None:
        self.held: Any = None  # a counter given to this node

    def vat(self) -> bytes:
        """This process's id in handoffs (its hello says it to every peer)."""
        return VAT.id

    def counter(self) -> Counter:
        return COUNTER

    def count(self) -> int:
        return COUNTER.n

    def link(self, url: str) -> None:
        """Open a connection to the node at ``url`` (handoff="direct", the default)."""
        if url not in LINKS:
            LINKS[url] = tether.connect(url)

    def counter_of(self, url: str) -> Any:
        """The counter of the node at ``url``: a proxy of this node's link to it."""
        return LINKS[url].root.counter()

    def give(self, owner_url: str, to_url: str) -> str:
        """Send the counter of the node at ``owner_url`` to the node at ``to_url``."""
        return LINKS[to_url].root.take(self.counter_of(owner_url))

    def take(self, counter: Any) -> str:
        self.held = counter
        return tether.describe(counter)

    def pass_on(self, to_url: str) -> str:
        """Send the counter this node holds to the node at ``to_url``."""
        return LINKS[to_url].root.take(self.held)

    def use(self, calls: int) -> int:
        value = 0
        for _ in range(calls):
            value = self.held.increment()
        return value

    def is_mine(self, obj: Any) -> bool:
        return obj is COUNTER

    def give_back(self, owner_url: str) -> bool:
        """Send the counter this node holds to its owner; its answer: is it the owner's own?"""
        return LINKS[owner_url].root.is_mine(self.held)

    def connections(self) -> list[tuple[bytes | None, int]]:
        """The connections this node accepted: the vat of the peer that opened each, and the
        frames it carried (sent + received here: both directions)."""
        gc.collect()
        return [
            (peer.info.get("vat"), peer.stats()["frames_sent"] + peer.stats()["frames_received"])
            for peer in SERVED
            if not peer.closed
        ]


NODE = Node()


def make_node(peer: Any) -> Node:
    """The root each connecting peer gets (``tether serve many_machines:make_node``)."""
    SERVED.append(peer)
    return NODE


# -- the console: starts the five processes and drives them ---------------------------------

NAMES = ("P1", "P2", "P3", "P4", "P5")
CALLS = 100  # calls each of P3, P4 and P5 makes in step 5
DEADLINE = 20.0  # seconds for the whole run


def start_nodes(stack: contextlib.ExitStack) -> dict[str, tuple[int, str]]:
    """Start P1..P5; return name -> (pid, URL). Each is ended by its pid when ``stack`` closes."""
    here = str(Path(__file__).resolve().parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    procs = {}
    for name in NAMES:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tether", "serve", "many_machines:make_node", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        stack.callback(stop, proc)
        procs[name] = proc
    nodes = {}
    deadline = time.monotonic() + 15
    for name, proc in procs.items():
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        line = proc.stdout.readline() if ready else ""
        if " serving " not in line:  # "tether: serving ... on ws://127.0.0.1:PORT"
            raise RuntimeError(f"{name} did not start: {line.strip()!r} (exit code {proc.poll()})")
        nodes[name] = (proc.pid, line.rsplit(" ", 1)[1].strip())
    return nodes


def stop(proc: subprocess.Popen[str]) -> None:
    """End a node process by its pid: SIGTERM, then SIGKILL if it lingers."""
    for end in (proc.terminate, proc.kill):
        if proc.poll() is not None:
            break
        end()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(3)
    if proc.stdout is not None:
        proc.stdout.close()


async def pipelined(p1_url: str, p2_url: str) -> int:
    """One round trip to P1: ask it for P2's counter and, before the answer is back, call
    increment() on it (P1 forwards that call to P2)."""
    async with tether.aio.connect(p1_url) as p1:
        return int(await p1.root.counter_of(p2_url).increment())


def frames(peers: dict[str, Any], names_by_vat: dict[bytes, str]) -> dict[tuple[str, str], int]:
    """(opener, acceptor) -> frames, for every link between the nodes (not the console's)."""
    counts: dict[tuple[str, str], int] = {}
    for acceptor, peer in peers.items():
        for vat, n in peer.root.connections():
            opener = names_by_vat.get(vat)
            if opener is not None:
                counts[(opener, acceptor)] = counts.get((opener, acceptor), 0) + n
    return counts


def settled_frames(peers: dict[str, Any], names_by_vat: dict[bytes, str]) -> dict[tuple[str, str], int]:
    """:func:`frames`, once two counts 0.1 s apart agree (a proxy dropped just before, such as a
    handoff's fallback, is released a few milliseconds later, in a frame of its own)."""
    counts = frames(peers, names_by_vat)
    for _ in range(30):
        time.sleep(0.1)
        counts, before = frames(peers, names_by_vat), counts
        if counts == before:
            break
    return counts


def run(stack: contextlib.ExitStack) -> list[str]:
    """The whole scenario; returns what is off (nothing when all went as it should)."""
    nodes = start_nodes(stack)
    url = {name: u for name, (_, u) in nodes.items()}
    print("five processes on 127.0.0.1, each `tether serve many_machines:make_node --port 0`:")
    for name, (pid, u) in nodes.items():
        print(f"  {name}  {u}  pid {pid}")
    peers = {name: stack.enter_context(tether.connect(u)) for name, u in url.items()}  # the console's
    p1, p2, p3, p4, p5 = (peers[name] for name in NAMES)
    names_by_vat = {peer.root.vat(): name for name, peer in peers.items()}
    owner = {url["P2"]: "P2"}

    def where(described: str) -> str:
        place = described.rsplit(" on ", 1)[1]
        return f"{described} ({owner.get(place, 'not P2!')})"

    print()
    print("wiring:")
    for name in ("P2", "P3", "P4", "P5"):
        p1.root.link(url[name])
    print("  1. P1 links to P2, P3, P4, P5")
    value = asyncio.run(pipelined(url["P1"], url["P2"]))
    print(f"     pipelined from the console: P1.counter_of(P2).increment() -> {value}, one round trip to P1")
    held_by = {"P3": p1.root.give(url["P2"], url["P3"])}
    print(f"  2. P1 gives P2's counter to P3; P3 holds {where(held_by['P3'])}")
    p3.root.link(url["P4"])
    held_by["P4"] = p3.root.pass_on(url["P4"])
    print(f"  3. P3 links to P4, passes it on; P4 holds {where(held_by['P4'])}")
    p5.root.link(url["P2"])
    p4.root.link(url["P5"])
    held_by["P5"] = p4.root.pass_on(url["P5"])
    print(f"  4. P5 links to P2; P4 links to P5, passes it on; P5 holds {where(held_by['P5'])}")
    wired = settled_frames(peers, names_by_vat)

    print()
    last = {name: peers[name].root.use(CALLS) for name in ("P3", "P4", "P5")}
    called = settled_frames(peers, names_by_vat)
    count = p2.root.count()
    print(f"calls: 5. P3, P4 and P5 call increment() {CALLS} times each; P2's counter is at {count}")
    mine = p5.root.give_back(url["P2"])
    print(f"identity: 6. P5 sends the counter back to P2; P2 says it is its own object (is): {mine}")

    print()
    print("frames per link (opened by -> accepted by; both directions):")
    print(f"  {'link':<10} {'opened for':<38} {'wiring':>7} {'calls':>7}")
    why = {
        ("P1", "P2"): "P1's link",
        ("P1", "P3"): "P1's link",
        ("P1", "P4"): "P1's link",
        ("P1", "P5"): "P1's link",
        ("P3", "P2"): "the handoff: P1 introduced P3 to P2",
        ("P3", "P4"): "P3's link",
        ("P4", "P2"): "the handoff: P3 introduced P4 to P2",
        ("P4", "P5"): "P4's link",
        ("P5", "P2"): "P5's link (reused by P4's handoff)",
    }
    for link in sorted(set(wired) | set(called) | set(why)):
        during = called.get(link, 0) - wired.get(link, 0)
        print(f"  {link[0]} -> {link[1]:<4} {why.get(link, '?'):<38} {wired.get(link, 0):>7} {during:>7}")

    problems = []
    if set(called) != set(why):
        problems.append(f"the links are {sorted(called)}, not {sorted(why)}")
    for name in ("P3", "P4", "P5"):
        if not held_by[name].endswith(f" on {url['P2']}"):
            problems.append(f"{name}'s counter is not a proxy of a link to P2: {held_by[name]}")
    for link in why:
        during = called.get(link, 0) - wired.get(link, 0)
        if link[1] == "P2" and link[0] != "P1":
            if during < 2 * CALLS:
                problems.append(f"{link[0]} -> P2 carried {during} frames for {CALLS} calls")
        elif during:
            problems.append(f"{link[0]} -> {link[1]} carried {during} frames during the calls (none expected)")
    expected = {name: value + CALLS * i for i, name in enumerate(("P3", "P4", "P5"), 1)}
    if count != value + 3 * CALLS or last != expected:
        problems.append(f"P2's counter is at {count}, not {value + 3 * CALLS}; the callers saw {last}")
    if mine is not True:
        problems.append("P2 did not get its own counter back")
    return problems


def main() -> int:
    started = time.monotonic()

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"the run did not finish within {DEADLINE:.0f} s")

    signal.signal(signal.SIGALRM, expire)  # a hung call ends the run (and the processes)
    signal.alarm(int(DEADLINE))
    try:
        with contextlib.ExitStack() as stack:
            problems = run(stack)
    except Exception as exc:
        problems = [f"{type(exc).__name__}: {exc}"]
    finally:
        signal.alarm(0)
    print()
    for problem in problems:
        print(f"FAILED: {problem}")
    elapsed = time.monotonic() - started
    if elapsed > DEADLINE:
        problems.append(f"took {elapsed:.1f} s")
        print(f"FAILED: took {elapsed:.1f} s, more than {DEADLINE:.0f} s")
    if not problems:
        print(f"ok: after the handoffs every call went straight to P2 ({elapsed:.1f} s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
