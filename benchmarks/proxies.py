"""The proxies section: operations on proxies to remote objects, Tether against RPyC 6.

* Dunder operations per second on a proxy: ``p[0]`` and ``len(p)`` on a proxy to a remote
  ``list(range(100_000))`` (the server answers ``tether.by_reference(the_list)``), and ``p + 1``
  on a proxy to a remote :class:`servers.Number` (whose ``__add__`` answers a plain int), next to
  a plain method call ``p.echo(1)`` on the same ``Number`` proxy; sync client
  (``tether.connect``) against the threading server (``tether.serve``). A dunder operation should
  cost one round trip, like a method call, so each should run at about the rate of the call.
* The same on RPyC: netrefs to the same kind of list and ``Number`` (RPyC passes both by
  reference), with ``p.echo(1)`` (a getattr and a call, two round trips) and a cached bound
  method ``m = p.echo; m(1)`` (one round trip).
* Iteration: ``sum(x for x in p)`` over the proxy to the 100,000-int list (Tether fetches the
  items in growing batches), against RPyC iterating a netref to the same list (one round trip
  per item, so an RPyC round iterates only the first :data:`RPYC_ITEMS` items); items/s.

The servers live in ``servers.py`` (``tether-proxies``, ``rpyc-proxies``).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

from harness import WARMUP, Measurement, Target, rate, runner
from servers import ITEMS

KINDS = ["tether-proxies"]  # and "rpyc-proxies" when RPyC is importable
RPYC_ITEMS = 5_000  # items an RPyC iteration round takes from the 100,000 (one round trip each)
COLUMNS = ["x call", "x RPyC"]
EXPECTED = {"echo": 1, "cached-echo": 1, "getitem": 0, "len": ITEMS, "add": 42}


def _operations(numbers: Any, number: Any) -> dict[str, Callable[[], Any]]:
    """The timed operations on a proxy (or netref) ``numbers`` to the remote list and
    ``number`` to the remote Number."""
    echo = number.echo  # RPyC: a netref to the bound method, fetched once (one round trip)
    return {
        "echo": lambda: number.echo(1),
        "cached-echo": lambda: echo(1),
        "getitem": lambda: numbers[0],
        "len": lambda: len(numbers),
        "add": lambda: number + 1,
    }


def _time_operation(numbers: Any, number: Any, op: str, n: int) -> float:
    operation = _operations(numbers, number)[op]
    result = operation()
    if result != EXPECTED[op]:
        raise AssertionError(f"{op} answered {result!r}, not {EXPECTED[op]!r}")
    for _ in range(WARMUP):
        operation()
    started = time.perf_counter()
    for _ in range(n):
        operation()
    return rate(n, started)


def tether_operation(url: str, n: int, op: str) -> float:
    import tether

    with tether.connect(url) as peer:
        numbers, number = peer.root.numbers(), peer.root.number()
        if not tether.is_proxy(numbers):
            raise AssertionError(f"the list came by value ({type(numbers).__name__}), not as a proxy")
        return _time_operation(numbers, number, op, n)


def tether_iterate(url: str, n: int) -> float:
    """Items per second of ``sum(x for x in p)`` over the whole remote list (``n // ITEMS``
    passes, at least one), after one untimed pass."""
    import tether

    expected = ITEMS * (ITEMS - 1) // 2
    with tether.connect(url) as peer:
        numbers = peer.root.numbers()
        if sum(x for x in numbers) != expected:
            raise AssertionError("iterating the remote list gave the wrong sum")
        passes = max(1, n // ITEMS)
        started = time.perf_counter()
        for _ in range(passes):
            total = sum(x for x in numbers)
        measured = rate(passes * ITEMS, started)
        if total != expected:
            raise AssertionError("iterating the remote list gave the wrong sum")
        return measured


@contextlib.contextmanager
def rpyc_proxies(address: str) -> Iterator[tuple[Any, Any]]:
    """An RPyC connection's netrefs to the remote list and Number."""
    import rpyc

    host, port = address.rsplit(":", 1)
    conn = rpyc.connect(host, int(port))
    try:
        yield conn.root.numbers(), conn.root.number()
    finally:
        conn.close()


def rpyc_operation(address: str, n: int, op: str) -> float:
    with rpyc_proxies(address) as (numbers, number):
        return _time_operation(numbers, number, op, n)


def rpyc_iterate(address: str, n: int) -> float:
    """Items per second of iterating the first ``n`` items of a netref to the remote list."""
    with rpyc_proxies(address) as (numbers, _):
        if sum(itertools.islice(numbers, WARMUP)) != WARMUP * (WARMUP - 1) // 2:
            raise AssertionError("iterating the remote list gave the wrong sum")
        started = time.perf_counter()
        total = sum(x for x in itertools.islice(numbers, n))
        measured = rate(n, started)
        if total != n * (n - 1) // 2:
            raise AssertionError("iterating the remote list gave the wrong sum")
        return measured


T_CALL, R_CALL, R_CACHED = "tp-echo", "rp-echo", "rp-cached-echo"

TETHER_ROWS = [  # key, label, operation, the RPyC row it is compared with
    (T_CALL, "tether: p.echo(1), p a proxy to a Number", "echo", R_CALL),
    ("tp-getitem", "tether: p[0], p a proxy to a list", "getitem", "rp-getitem"),
    ("tp-len", "tether: len(p), p a proxy to a list", "len", "rp-len"),
    ("tp-add", "tether: p + 1, p a proxy to a Number", "add", "rp-add"),
]
RPYC_ROWS = [  # key, label, operation
    (R_CALL, "rpyc: p.echo(1) (getattr + call)", "echo"),
    (R_CACHED, "rpyc: m = p.echo; m(1)", "cached-echo"),
    ("rp-getitem", "rpyc: p[0], p a netref to a list", "getitem"),
    ("rp-len", "rpyc: len(p), p a netref to a list", "len"),
    ("rp-add", "rpyc: p + 1, p a netref to a Number", "add"),
]


def build_measurements(addresses: dict[str, str]) -> list[Measurement]:
    """The rows of the proxies table, in order, for the servers that are running."""
    url, rp = addresses["tether-proxies"], addresses.get("rpyc-proxies")
    rows = [
        Measurement(
            key,
            label,
            runner(tether_operation, url, op=op),
            {"x call": T_CALL, "x RPyC": rival if rp else None},
        )
        for key, label, op, rival in TETHER_ROWS
    ]
    rows.append(
        Measurement(
            "tp-iter",
            f"tether: iterate {ITEMS:,} ints, items/s",
            runner(tether_iterate, url),
            {"x RPyC": "rp-iter" if rp else None},
            fixed_ops=ITEMS,
        )
    )
    if rp:
        rows += [
            Measurement(key, label, runner(rpyc_operation, rp, op=op), {"x call": R_CACHED})
            for key, label, op in RPYC_ROWS
        ]
        rows.append(
            Measurement(
                "rp-iter",
                f"rpyc: iterate (first {RPYC_ITEMS:,}), items/s",
                runner(rpyc_iterate, rp),
                fixed_ops=RPYC_ITEMS,
            )
        )
    return rows


TARGETS = [
    Target("p[0] costs one round trip: >= 0.8x p.echo(1)", "tp-getitem", T_CALL, 0.8),
    Target("len(p) costs one round trip: >= 0.8x p.echo(1)", "tp-len", T_CALL, 0.8),
    Target("p + 1 costs one round trip: >= 0.8x p.echo(1)", "tp-add", T_CALL, 0.8),
    Target("iteration >= 20x RPyC items/s", "tp-iter", "rp-iter", 20.0),
]


def print_legend() -> None:
    print("spread: (fastest - slowest round) / median, the noise of the row.")
    print("x call: median / the method call on the same system (Tether: p.echo(1); RPyC: the cached")
    print("  m(1), one round trip like a dunder); 1.00: the row costs one round trip, like a call.")
    print("x RPyC: Tether median / the same operation on RPyC (p.echo(1): / RPyC's p.echo(1), a")
    print("  getattr and a call); > 1 is faster.")
    print(f"iteration: each Tether round iterates all {ITEMS:,} ints of the remote list (in batches);")
    print(f"  each RPyC round (one round trip per item) iterates only the first {RPYC_ITEMS:,} of the")
    print("  same list. Both rows are items per second.")
