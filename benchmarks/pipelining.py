"""A dependent chain of five calls through a slow link, pipelined and not (issue: "Objects on many
machines", promise pipelining).

A relay on 127.0.0.1 forwards WebSocket messages between an asyncio client and
``tether.aio.serve`` and holds each message ``--delay`` seconds (default 0.02) in each
direction, in order: a round trip costs at least twice that. Measured, in the same run and
interleaved: one call (``await root.make_counter()``), five dependent calls awaited one by one
(``c = await root.make_counter(); c = await c.child(); ...``) and the same five pipelined
(``await root.make_counter().child().child().child().increment()``). Medians of ``--rounds``.

Run: ``.venv/bin/python benchmarks/pipelining.py`` (about 10 seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import websockets

import tether
import tether.aio


class Counter:
    def __init__(self, value: int = 0) -> None:
        self.value = value

    def child(self) -> Counter:
        return Counter(self.value + 1)

    def increment(self) -> int:
        self.value += 1
        return self.value


class Factory:
    def make_counter(self) -> Counter:
        return Counter()


async def relay(listen_port_future: asyncio.Future[int], target: str, delay: float, stop: asyncio.Event) -> None:
    """Forward every message between each client and ``target``, ``delay`` seconds late, in order."""

    async def pump(source: Any, sink: Any) -> None:
        queue: asyncio.Queue[tuple[float, Any]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, message = await queue.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                await sink.send(message)

        deliverer = asyncio.create_task(deliver())
        try:
            async for message in source:
                queue.put_nowait((time.monotonic() + delay, message))
        finally:
            deliverer.cancel()

    async def handle(client: Any) -> None:
        async with websockets.connect(target, compression=None, subprotocols=["tether"]) as server:
            pumps = [asyncio.create_task(pump(client, server)), asyncio.create_task(pump(server, client))]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)  # one side closed
            for task in pumps:
                task.cancel()

    async with websockets.serve(handle, "127.0.0.1", 0, compression=None, subprotocols=["tether"]) as listener:
        listen_port_future.set_result(listener.sockets[0].getsockname()[1])
        await stop.wait()


async def main(rounds: int, delay: float) -> None:
    async with tether.aio.serve(Factory(), host="127.0.0.1", port=0) as server:
        port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        relaying = asyncio.create_task(relay(port, server.url, delay, stop))
        url = f"ws://127.0.0.1:{await port}"
        async with tether.aio.connect(url, open_timeout=10) as peer:
            root = peer.root

            async def one() -> None:
                await root.make_counter()

            async def awaited() -> None:
                c = await root.make_counter()
                c = await c.child()
                c = await c.child()
                c = await c.child()
                await c.increment()

            async def pipelined() -> None:
                await root.make_counter().child().child().child().increment()

            cases = {"one call": one, "5 dependent calls, awaited one by one": awaited, "the same 5, pipelined": pipelined}
            times: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(rounds):
                for name, case in cases.items():
                    start = time.perf_counter()
                    await case()
                    times[name].append(time.perf_counter() - start)
        stop.set()
        await relaying
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["one call"]
    print(f"Through a relay adding {delay * 1000:g} ms each way (medians of {rounds} rounds):")
    for name, value in medians.items():
        print(f"  {name:<42} {value * 1000:8.1f} ms   {value / base:5.2f}x one call")
    ratio = medians["the same 5, pipelined"] / base
    print(f"  target: pipelined chain of 5 at most 1.5x one call: {'met' if ratio <= 1.5 else 'NOT met'} ({ratio:.2f}x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--delay", type=float, default=0.02)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.delay))
