"""Instruction counts of the codec on the serialization section's graph (callgrind).

Wall-clock on a shared machine moves by up to 2x between runs; the instructions that valgrind's
callgrind counts repeat exactly (``PYTHONHASHSEED=0``, garbage collection off). This script sets
up what ``serialization.py`` times (an in-memory pair with ``accept_code=True``; the graph, an
``Order`` dataclass with a dict and 100 ``Item`` dataclasses of this ``__main__``, sent once so
the server side has the classes), then runs each operation ``-n`` times inside one call of the
builtin ``sum``: callgrind collects only inside it (``--toggle-collect=builtin_sum``), so setup
is not counted::

    python benchmarks/codec_counts.py                 # every operation under callgrind
    python benchmarks/codec_counts.py --op encode --keep out/   # and keep callgrind's files
    python benchmarks/codec_counts.py --run encode -n 1000 --profile   # cProfile, no valgrind

Operations: ``encode`` (the client's encoder), ``decode`` (a Decoder with the server's protocol
as its hooks), ``value-encode`` and ``value-decode`` (plain values: a dict of lists, a tuple of
50 ints, a dict of 30, a set, bytes, a big int and a complex, without a connection), ``pickle``
(dumps + loads of the graph, for scale), ``call`` and ``call-graph`` (``take(None)`` and
``take(graph)`` over the pair: the calling thread's instructions only, callgrind toggles per
thread: the encoding of the call, the decoding of its answer and the waiting).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import os
import pickle
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

OPS = ["encode", "decode", "value-encode", "value-decode", "pickle", "call", "call-graph"]
HERE = Path(__file__).resolve().parent


def _value() -> Any:
    return {
        "lists": {f"k{i}": list(range(i, i + 5)) for i in range(10)},
        "tuple": tuple(range(50)),
        "dict": {str(i): i * 0.5 for i in range(30)},
        "set": {1, 2, 3, "a", "b"},
        "bytes": b"x" * 100,
        "big": 2**100,
        "complex": 1 + 2j,
    }


@dataclasses.dataclass
class Item:  # the graph's classes, of __main__ as in serialization.py
    name: str
    qty: int
    price: float


@dataclasses.dataclass
class Order:
    customer: str
    address: str
    meta: dict
    items: list


class _PureFinder:
    """``TETHER_PURE=1``: import every module of tether from its ``.py`` file, even where a
    compiled one sits beside it (as tests/conftest.py does)."""

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> Any:
        if not fullname.startswith("tether.") or not path:
            return None
        for entry in path:
            source = Path(entry, fullname.rpartition(".")[2] + ".py")
            if source.is_file():
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def run(op: str, n: int, profile: bool) -> None:
    sys.path.insert(0, str(HERE))
    if os.environ.get("TETHER_PURE") == "1":
        sys.meta_path.insert(0, _PureFinder())
    import tether
    from servers import CodeRoot
    from tether.codec import Decoder, decode_value, encode_value
    from tether.testing import pair

    tether.register(Order, Item)
    graph = Order(
        "Ada Lovelace",
        "12 Analytical Way, London",
        {"priority": "high", "tags": ["a", "b"], "discount": 0.1},
        [Item(f"item-{i}", i, i * 1.25) for i in range(100)],
    )
    print(f"tether from {tether.__file__}, codec: {tether.codec.implementation()}", file=sys.stderr)
    with pair(CodeRoot(), accept_code=True) as (client, server):
        assert client.root.take(graph) == 100
        encoder = client.session.protocol.encoder
        protocol = server.session.protocol
        refs = protocol.references
        data = encoder.encode(graph)
        value = _value()
        value_data = encode_value(value)
        pickled = pickle.dumps(graph, protocol=5)

        def one(_: int) -> int:
            if op == "encode":
                encoder.encode(graph)
            elif op == "decode":
                Decoder(data, 0, refs, protocol.max_depth, protocol.marker_base, protocol.limits).read_object()
            elif op == "value-encode":
                encode_value(value)
            elif op == "value-decode":
                decode_value(value_data)
            elif op == "call":
                client.root.take(None)
            elif op == "call-graph":
                client.root.take(graph)
            else:
                pickle.loads(pickle.dumps(graph, protocol=5))
            return 0

        for _ in range(3):
            one(0)  # warm: caches of kinds, names, fingerprints
        assert pickled
        gc.disable()
        if profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            sum(map(one, range(n)))
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        else:
            sum(map(one, range(n)))  # what callgrind counts (--toggle-collect=builtin_sum)
        gc.enable()


def callgrind(op: str, n: int, keep: Path | None) -> float:
    """Instructions per operation: one run of ``n`` operations under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, f"callgrind.{op}")
        env = dict(os.environ, PYTHONHASHSEED="0")
        subprocess.run(
            [
                "valgrind", "--tool=callgrind", "--toggle-collect=builtin_sum", f"--callgrind-out-file={out}",
                sys.executable, __file__, "--run", op, "-n", str(n),
            ],
            check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        text = out.read_text()
        total = int(re.search(r"^summary: (\d+)", text, re.M).group(1))  # type: ignore[union-attr]
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            (keep / out.name).write_text(text)
    return total / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--op", action="append", choices=OPS, help="operations to count (all by default)")
    parser.add_argument("-n", type=int, default=0, help="operations per run (default: 200, 50 for pickle)")
    parser.add_argument("--keep", type=Path, help="keep callgrind's output files in this folder")
    parser.add_argument("--run", choices=OPS, help=argparse.SUPPRESS)  # the process under valgrind
    parser.add_argument("--profile", action="store_true", help="with --run: cProfile instead")
    args = parser.parse_args()
    if args.run:
        run(args.run, args.n or 200, args.profile)
        return
    for op in args.op or OPS:
        n = args.n or (1000 if op == "pickle" else 200)
        print(f"{op:<14} {callgrind(op, n, args.keep) / 1e3:>10,.1f} k instructions per operation", flush=True)


if __name__ == "__main__":
    main()
