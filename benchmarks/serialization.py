"""The serialization section (issue 4): an object graph sent by value, Tether against pickle.

The graph: an ``Order`` dataclass with two strings, a dict and a list of 100 ``Item``
dataclasses (``name: str; qty: int; price: float``). Both classes are defined in the
``__main__`` of the *sending* process, so the receiver cannot import them: Tether's receiver
asks for them (``get_classes``) and defines them from their source, once per connection; pickle
would need them importable on the receiving side; cloudpickle pickles them by value, into every
pickle.

The sender is this file run as a script, ``serialization.py --send URL`` (``run.py`` starts it;
its ``__main__`` defines the classes, at the bottom of this file). It measures, and prints as
one JSON line:

* Bytes on the wire against the ``tether-code`` server (``tether.serve(..., accept_code=True)``,
  root :class:`servers.CodeRoot`), from the client's ``peer.stats()`` (``bytes_sent`` plus
  ``bytes_received``) around one call: ``take(None)`` (the same call with a trivial argument),
  the first ``take(graph)`` on the connection (with the class transfer) and repeated ones. The
  graph's payload is a call's bytes minus those of ``take(None)``.
* ``len(pickle.dumps(graph, protocol=5))`` and ``len(cloudpickle.dumps(graph))``.
* Codec time, in one process: an in-memory pair from ``tether.testing`` with
  ``accept_code=True`` (one ``take(graph)`` first, so the server side defines the classes),
  then the client's ``session.protocol.encoder.encode(graph)`` and a
  ``tether.codec.Decoder`` over those bytes with the server's protocol as its reference hooks
  (as the protocol decodes a frame), against ``pickle.dumps`` and ``pickle.loads`` (and
  cloudpickle's, as a reference). Interleaved rounds, garbage collection off while timing (as
  ``timeit`` does); the median round counts.

The client side (``run.py``) runs the sender with :func:`run_section` and prints the tables
and targets with :func:`print_section`.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import json
import pickle
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import round_deadline, target_line, tether_revision

KINDS = ["tether-code"]
SCRIPT = Path(__file__).resolve()
ITEMS = 100  # Items in the graph
REPEATS = 3  # repeated transfers of the graph measured on the same connection
SENDER_TIMEOUT = 150.0  # seconds the sender may take
CALIBRATION_SECONDS = 0.05  # time spent sizing each timed operation

HAVE_CLOUDPICKLE = importlib.util.find_spec("cloudpickle") is not None


class SectionError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# The sender (this file run as ``serialization.py --send URL``)
# ---------------------------------------------------------------------------------------------


def make_graph(order: type, item: type) -> Any:
    return order(
        "Ada Lovelace",
        "12 Analytical Way, London",
        {"priority": "high", "tags": ["a", "b"], "discount": 0.1},
        [item(f"item-{i}", i, i * 1.25) for i in range(ITEMS)],
    )


def wire_bytes(url: str, graph: Any) -> dict[str, Any]:
    """Bytes and frames of one ``take(...)`` call, counted by the client's ``peer.stats()``."""
    import tether

    with tether.connect(url) as peer:
        root = peer.root

        def transfer(value: Any) -> dict[str, int]:
            before = peer.stats()
            answer = root.take(value)
            after = peer.stats()
            expected = 0 if value is None else len(graph.items)
            if answer != expected:
                raise AssertionError(f"take answered {answer!r}, not {expected!r}")
            sent = after["bytes_sent"] - before["bytes_sent"]
            received = after["bytes_received"] - before["bytes_received"]
            frames = after["frames_sent"] + after["frames_received"]
            frames -= before["frames_sent"] + before["frames_received"]
            return {"bytes": sent + received, "sent": sent, "received": received, "frames": frames}

        trivial = [transfer(None), transfer(None)]
        first = transfer(graph)
        repeated = [transfer(graph) for _ in range(REPEATS)]
        trivial.append(transfer(None))
    return {"trivial": trivial, "first": first, "repeated": repeated}


def pickle_sizes(graph: Any) -> dict[str, int | None]:
    data = pickle.dumps(graph, protocol=5)
    if pickle.loads(data) != graph:
        raise AssertionError("pickle did not give the graph back")
    sizes: dict[str, int | None] = {"pickle": len(data), "cloudpickle": None}
    if HAVE_CLOUDPICKLE:
        import cloudpickle

        sizes["cloudpickle"] = len(cloudpickle.dumps(graph))
    return sizes


def check_copy(graph: Any, copy: Any) -> None:
    """``copy`` must equal ``graph``, built from classes the receiver defined itself."""
    if type(copy) is type(graph) or type(copy.items[0]) is type(graph.items[0]):
        raise AssertionError("the receiving side used the sender's classes instead of defining its own")
    if type(copy).__qualname__ != "Order" or not dataclasses.is_dataclass(copy):
        raise AssertionError(f"decoded a {type(copy).__qualname__}, not an Order dataclass")
    if dataclasses.asdict(copy) != dataclasses.asdict(graph) or repr(copy) != repr(graph):
        raise AssertionError("the decoded graph differs from the original")


def _per_op(fn: Callable[[], Any], n: int) -> float:
    """Microseconds per call of ``fn`` over ``n`` calls, garbage collection off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        started = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - started) / n * 1e6
    finally:
        if enabled:
            gc.enable()


def time_rounds(ops: dict[str, Callable[[], Any]], rounds: int, seconds: float) -> dict[str, list[float]]:
    """Size every operation to take about ``seconds`` a round, then run ``rounds`` interleaved
    rounds (rotating order); microseconds per operation of each round."""
    sizes = {}
    for name, fn in ops.items():
        _per_op(fn, 20)  # warm up
        calls = max(20, int(CALIBRATION_SECONDS / (_per_op(fn, 20) * 1e-6)))
        sizes[name] = max(100, int(seconds / (_per_op(fn, calls) * 1e-6)))
    samples: dict[str, list[float]] = {name: [] for name in ops}
    names = list(ops)
    for r in range(rounds):
        print(f"round {r + 1}/{rounds}...", file=sys.stderr, flush=True)
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(_per_op(ops[name], sizes[name]))
    return samples


def codec_times(graph: Any, rounds: int, seconds: float) -> dict[str, Any]:
    """Encode and decode times of the graph: Tether on a live (in-memory) connection against
    pickle (and cloudpickle)."""
    from servers import CodeRoot
    from tether.codec import Decoder
    from tether.testing import pair

    with pair(CodeRoot(), accept_code=True) as (client, server):
        if client.root.take(graph) != len(graph.items):  # the server side defines the classes
            raise AssertionError("take(graph) answered wrong over the in-memory pair")
        encoder = client.session.protocol.encoder
        protocol = server.session.protocol
        data = encoder.encode(graph)

        def decode() -> Any:
            refs = protocol.references  # the codec's hooks (as Protocol.receive passes them)
            return Decoder(data, 0, refs, protocol.max_depth, protocol.marker_base, protocol.limits).read_object()

        check_copy(graph, decode())
        pickled = pickle.dumps(graph, protocol=5)
        ops: dict[str, Callable[[], Any]] = {
            "tether-encode": lambda: encoder.encode(graph),
            "tether-decode": decode,
            "pickle-dumps": lambda: pickle.dumps(graph, protocol=5),
            "pickle-loads": lambda: pickle.loads(pickled),
        }
        if HAVE_CLOUDPICKLE:
            import cloudpickle

            cloudpickled = cloudpickle.dumps(graph)
            ops["cloudpickle-dumps"] = lambda: cloudpickle.dumps(graph)
            ops["cloudpickle-loads"] = lambda: cloudpickle.loads(cloudpickled)
        samples = time_rounds(ops, rounds, seconds)
    return {"encoded": len(data), "samples": samples}


def send(argv: list[str], order: type, item: type) -> int:
    """The sender's main: measure, print the results as one JSON line on stdout."""
    parser = argparse.ArgumentParser(description="the sender of the serialization benchmark")
    parser.add_argument("--send", required=True, metavar="URL", help="the tether-code server")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=0.3)
    args = parser.parse_args(argv)
    if order.__module__ != "__main__" or item.__module__ != "__main__":
        raise AssertionError("the graph's classes must be defined in the sender's __main__")
    graph = make_graph(order, item)
    with round_deadline(SENDER_TIMEOUT):
        result = {
            "revision": tether_revision(),
            "wire": wire_bytes(args.send, graph),
            "sizes": pickle_sizes(graph),
            "codec": codec_times(graph, args.rounds, args.seconds),
        }
    print(json.dumps(result), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# The client side (run.py)
# ---------------------------------------------------------------------------------------------


def run_section(url: str, rounds: int, seconds: float) -> dict[str, Any]:
    """Run the sender against the ``tether-code`` server at ``url``; its results."""
    command = [sys.executable, str(SCRIPT), "--send", url, "--rounds", str(rounds), "--seconds", str(seconds)]
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, timeout=SENDER_TIMEOUT + 30)
    except subprocess.TimeoutExpired:
        raise SectionError(f"the sender did not finish within {SENDER_TIMEOUT + 30:.0f} s") from None
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SectionError(f"the sender exited with code {done.returncode}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _kb(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _ratio(value: float | None, other: float | None) -> str:
    return "-" if value is None or not other else f"{value / other:.2f}"


def _payloads(result: dict[str, Any]) -> dict[str, int]:
    """Bytes of the first and repeated transfers, whole calls and payloads (minus take(None));
    the smallest of the repeated and trivial calls (they should all be equal)."""
    wire = result["wire"]
    trivial = min(t["bytes"] for t in wire["trivial"])
    repeated = min(t["bytes"] for t in wire["repeated"])
    first = wire["first"]["bytes"]
    return {
        "trivial": trivial,
        "first": first,
        "repeated": repeated,
        "first-payload": first - trivial,
        "repeated-payload": repeated - trivial,
    }


def _sums(samples: dict[str, list[float]], a: str, b: str) -> list[float]:
    return [x + y for x, y in zip(samples[a], samples[b], strict=True)]


def _times(result: dict[str, Any]) -> dict[str, list[float]]:
    """The timed rows (µs per operation, one sample per round), with the per-round sums."""
    samples: dict[str, list[float]] = result["codec"]["samples"]
    rows = {
        "tether-encode": samples["tether-encode"],
        "tether-decode": samples["tether-decode"],
        "tether-sum": _sums(samples, "tether-encode", "tether-decode"),
        "pickle-dumps": samples["pickle-dumps"],
        "pickle-loads": samples["pickle-loads"],
        "pickle-sum": _sums(samples, "pickle-dumps", "pickle-loads"),
    }
    if "cloudpickle-dumps" in samples:
        rows["cloudpickle-sum"] = _sums(samples, "cloudpickle-dumps", "cloudpickle-loads")
    return rows


TIME_ROWS = [  # key, label, the pickle row of its "x pickle"
    ("tether-encode", "tether: encode (client's encoder)", "pickle-dumps"),
    ("tether-decode", "tether: decode (server's decoder)", "pickle-loads"),
    ("tether-sum", "tether: encode + decode", "pickle-sum"),
    ("pickle-dumps", "pickle: dumps, protocol 5", "pickle-dumps"),
    ("pickle-loads", "pickle: loads", "pickle-loads"),
    ("pickle-sum", "pickle: dumps + loads", "pickle-sum"),
    ("cloudpickle-sum", "cloudpickle: dumps + loads (reference)", "pickle-sum"),
]


def print_section(result: dict[str, Any], client_revision: str, width: int = 46) -> None:
    """The two tables (bytes, time) and the targets."""
    if result["revision"] != client_revision:
        print(f"note: the sender ran tether {result['revision']}")
    sizes, wire, b = result["sizes"], result["wire"], _payloads(result)
    pickled, cloudpickled = sizes["pickle"], sizes["cloudpickle"]
    header = f"{'bytes per graph':<{width}} {'bytes':>10} {'frames':>7} {'x pickle':>9} {'x cloudp':>9}"
    print(header)
    print("-" * len(header))
    byte_rows: list[tuple[str, int | None, int | None, bool]] = [  # label, bytes, frames, ratios?
        ("tether: take(None), call + answer", b["trivial"], wire["trivial"][0]["frames"], False),
        ("tether: take(graph), first (+ classes)", b["first"], wire["first"]["frames"], True),
        ("tether: take(graph), repeated", b["repeated"], wire["repeated"][0]["frames"], True),
        ("tether: payload, first (+ classes)", b["first-payload"], None, True),
        ("tether: payload, repeated", b["repeated-payload"], None, True),
        ("pickle.dumps(graph, protocol=5)", pickled, None, True),
        ("cloudpickle.dumps(graph)", cloudpickled, None, True),
    ]
    for label, value, frames, ratios in byte_rows:
        print(
            f"{label:<{width}} {_kb(value):>10} {_kb(frames):>7} "
            f"{_ratio(value if ratios else None, pickled):>9} {_ratio(value if ratios else None, cloudpickled):>9}"
        )
    varied = [
        f"{name}: {', '.join(str(t['bytes']) for t in wire[name])}"
        for name in ("trivial", "repeated")
        if len({t["bytes"] for t in wire[name]}) > 1
    ]
    if varied:
        print(f"note: repeated measurements differed (the smallest is shown): {'; '.join(varied)}")
    print()
    print("bytes: Tether frames as counted by the client's peer.stats() (bytes_sent + bytes_received),")
    print("  without WebSocket frame headers; frames: both directions. A first transfer asks for the")
    print("  classes (get_classes) and gets their source. payload: the call's bytes minus those of")
    print("  take(None) (same call and answer size, argument None). x pickle, x cloudp: bytes over")
    print("  pickle's, over cloudpickle's (which carries the classes' definitions in every pickle).")
    print(
        f"  The graph alone, encoded on a connection that has the classes: {result['codec']['encoded']:,} bytes."
    )
    print()

    times = _times(result)
    header = (
        f"{'codec time per graph':<{width}} {'median µs':>10} {'best µs':>10} {'spread':>7} {'x pickle':>9}"
    )
    print(header)
    print("-" * len(header))
    medians = {key: statistics.median(values) for key, values in times.items()}
    for key, label, other in TIME_ROWS:
        if key not in times:
            continue
        values, median = times[key], medians[key]
        spread = (max(values) - min(values)) / median
        print(
            f"{label:<{width}} {median:>10,.1f} {min(values):>10,.1f} {spread:>6.0%} "
            f"{_ratio(median, medians[other]):>9}"
        )
    print()
    print("spread: (slowest - fastest round) / median. Sums: per round, then the median of them.")
    print("  One process, garbage collection off while timing; Tether: the client's encoder and")
    print("  a Decoder with the server's protocol, of an in-memory pair that has the classes.")
    if "cloudpickle-sum" in times:
        print("  cloudpickle.loads, in the process that has the classes, reuses them.")
    print()

    print("targets:")
    print(
        target_line(
            "repeated transfer <= 1.0x pickle's bytes (payload vs pickle.dumps)",
            b["repeated-payload"] / pickled,
            1.0,
            f"{b['repeated-payload']:,} B vs {pickled:,} B",
            at_most=True,
        )
    )
    if cloudpickled is None:
        print("  SKIP  first transfer <= 0.8x cloudpickle's bytes: cloudpickle is not installed")
    else:
        print(
            target_line(
                "first transfer, classes included, <= 0.8x cloudpickle's bytes (payload)",
                b["first-payload"] / cloudpickled,
                0.8,
                f"{b['first-payload']:,} B vs {cloudpickled:,} B",
                at_most=True,
            )
        )
    print(
        target_line(
            "encode + decode <= 1.5x pickle dumps + loads (median µs; issue 11)",
            medians["tether-sum"] / medians["pickle-sum"],
            1.5,
            f"{medians['tether-sum']:,.1f} µs vs {medians['pickle-sum']:,.1f} µs",
            at_most=True,
        )
    )


if __name__ == "__main__":
    # The graph's classes, defined in the sending process's __main__ only: neither the server
    # process nor anything it could import has them.
    @dataclasses.dataclass
    class Item:
        name: str
        qty: int
        price: float

    @dataclasses.dataclass
    class Order:
        customer: str
        address: str
        meta: dict
        items: list

    import tether

    tether.register(Order, Item)  # their source may go to the server, which asks for it
    sys.exit(send(sys.argv[1:], Order, Item))
