"""CPU instructions per round trip, counted by valgrind (callgrind): Tether's sync call and
callbacks against RPyC's cached call and callbacks, both sides in one process; and Tether's
asyncio face ("tether-aio": an asyncio client and an asyncio server with
``run_sync_in_threads=False``, on one event loop): a sequential call, gathered calls (batches
of 500) and callbacks.

Wall-clock rates on a shared 2-core machine move by up to 2x between runs; instruction counts
repeat to within a few percent, whatever else the machine does (to 0.2% while one thread read
each message; which of a connection's threads reads one now varies from run to run), so they
decide whether a change to the hot path made it cheaper. They count the work of both sides
(client and server threads share the process) and nothing of the waiting: they say nothing
about thread wake-ups, contention for the interpreter lock or latency, which
``benchmarks/run.py`` measures. Under valgrind everything runs some fifty times slower, so a
change that depends on timing cannot be measured here.

Each measurement runs the workload twice under callgrind (``PYTHONHASHSEED=0``, garbage
collection off after a warm-up), with 500 and with 2,500 round trips, and divides the
difference by 2,000: start-up and warm-up cancel out.

Usage: ``.venv/bin/python benchmarks/instructions.py`` (about four minutes; needs valgrind),
``--only tether`` (or ``rpyc``, ``tether-aio``) for those rows alone. ``PYTHONPATH`` picks the ``tether`` measured.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

LOW, HIGH = 500, 2500
GATHERED = 500  # calls per asyncio.gather batch (LOW and HIGH are multiples)
KINDS = {"tether": ("call", "callbacks"), "rpyc": ("call", "callbacks"), "tether-aio": ("call", "gathered", "callbacks")}


def _tether(kind: str, n: int) -> None:
    import tether

    class Root:
        def echo(self, x: Any) -> Any:
            return x

        def run_callbacks(self, f: Any, k: int) -> int:
            for i in range(k):
                f(i)
            return k

    server = tether.serve(lambda peer: Root(), host="127.0.0.1", port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    peer = tether.connect(server.url)
    _run(peer.root.echo, peer.root.run_callbacks, kind, n)


def _tether_aio(kind: str, n: int) -> None:
    import asyncio

    import tether.aio

    class Root:
        def echo(self, x: Any) -> Any:
            return x

        async def run_callbacks(self, f: Any, k: int) -> int:
            for i in range(k):
                await f(i)
            return k

    def f(i: int) -> int:
        return i

    async def batch(root: Any) -> None:
        await asyncio.gather(*[root.echo(i) for i in range(GATHERED)])

    async def main() -> None:
        options = {"host": "127.0.0.1", "port": 0, "run_sync_in_threads": False}
        async with tether.aio.serve(lambda peer: Root(), **options) as server:
            async with tether.aio.connect(server.url, run_sync_in_threads=False) as peer:
                root = peer.root
                for _ in range(300):
                    await root.echo(1)
                await batch(root)
                await root.run_callbacks(f, 100)
                gc.disable()
                if kind == "call":
                    for _ in range(n):
                        await root.echo(1)
                elif kind == "gathered":
                    for _ in range(n // GATHERED):
                        await batch(root)
                else:  # callbacks, ten per call
                    for _ in range(n // 10):
                        await root.run_callbacks(f, 10)
                os._exit(0)  # (no teardown in the count)

    asyncio.run(main())


def _rpyc(kind: str, n: int) -> None:
    import rpyc
    from rpyc.utils.server import ThreadedServer

    class Service(rpyc.Service):  # type: ignore[misc]
        def exposed_echo(self, x: Any) -> Any:
            return x

        def exposed_run_callbacks(self, f: Any, k: int) -> int:
            for i in range(k):
                f(i)
            return k

    server = ThreadedServer(Service, hostname="127.0.0.1", port=0)
    threading.Thread(target=server.start, daemon=True).start()
    while not server.active:
        time.sleep(0.01)
    conn = rpyc.connect("127.0.0.1", server.port)
    _run(conn.root.echo, conn.root.run_callbacks, kind, n)


def _run(echo: Any, run_callbacks: Any, kind: str, n: int) -> None:
    for _ in range(300):
        echo(1)
    gc.disable()
    if kind == "call":
        for _ in range(n):
            echo(1)
    else:  # callbacks, ten per call: n round trips from the server to the client
        def f(i: int) -> int:
            return i

        for _ in range(n // 10):
            run_callbacks(f, 10)
    os._exit(0)  # (no teardown in the count)


def _count(system: str, kind: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
             sys.executable, __file__, "--workload", system, kind, str(n)],
            env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True, text=True, check=False,
        )  # fmt: skip
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"callgrind gave no count for {system} {kind}:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=list(KINDS))
    parser.add_argument("--workload", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workload:
        system, kind, n = args.workload
        {"tether": _tether, "rpyc": _rpyc, "tether-aio": _tether_aio}[system](kind, int(n))
        return
    import tether

    print(f"instructions per round trip (callgrind), tether from {os.path.dirname(tether.__file__)}")
    rows = [(s, k) for s in KINDS if args.only in (None, s) for k in KINDS[s]]
    counts: dict[tuple[str, str], float] = {}
    for system, kind in rows:
        low, high = _count(system, kind, LOW), _count(system, kind, HIGH)
        counts[system, kind] = (high - low) / (HIGH - LOW)
        print(f"  {system:10s} {kind:10s} {counts[system, kind]:>10,.0f}", flush=True)
    for kind in ("call", "callbacks"):
        if ("tether", kind) in counts and ("rpyc", kind) in counts:
            print(f"  tether / rpyc, {kind}: {counts['tether', kind] / counts['rpyc', kind]:.2f}x the instructions")


if __name__ == "__main__":
    main()
