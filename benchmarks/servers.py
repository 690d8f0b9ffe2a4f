"""The benchmark's servers: what ``run.py --serve KIND`` runs in a child process.

Each server listens on 127.0.0.1, port 0, prints ``READY <address>`` on stdout once it listens,
and runs until it is killed or its stdin closes (so a dead parent leaves no orphan).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

HOST = "127.0.0.1"
READY = "READY"  # a server process prints "READY <address>" once it listens
ITEMS = 100_000  # length of the remote list of the proxies section (list(range(ITEMS)))


# ---------------------------------------------------------------------------------------------
# Calls section
# ---------------------------------------------------------------------------------------------


class BenchRoot:
    """The root object of both Tether servers (one per connection, made by :func:`make_root`)."""

    def __init__(self, peer: Any = None) -> None:
        self.peer = peer

    def echo(self, x: Any) -> Any:
        return x

    def run_callbacks(self, f: Any, n: int) -> int:
        """Call the client's function ``f`` ``n`` times (threading server)."""
        for i in range(n):
            f(i)
        return n

    async def arun_callbacks(self, f: Any, n: int) -> int:
        """Call the client's function ``f`` ``n`` times (asyncio server)."""
        for i in range(n):
            await f(i)
        return n


def make_root(peer: Any) -> BenchRoot:
    return BenchRoot(peer)


def announce(address: str) -> None:
    print(f"{READY} {address}", flush=True)


def serve_tcp_echo() -> None:
    """An asyncio TCP echo server (TCP_NODELAY on every connection): the raw TCP floor."""
    import socket

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            self.transport: Any = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Echo, HOST, 0)
        async with server:
            announce(f"{HOST}:{server.sockets[0].getsockname()[1]}")
            await server.serve_forever()

    asyncio.run(main())


def serve_ws_echo() -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with serve(echo, HOST, 0, compression=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            announce(f"ws://{HOST}:{port}")
            await server.serve_forever()

    asyncio.run(main())


def serve_tether_threading() -> None:
    import tether

    server = tether.serve(make_root, host=HOST, port=0)
    announce(server.url)
    server.serve_forever()


def serve_tether_aio() -> None:
    import tether.aio

    async def main() -> None:
        async with tether.aio.serve(make_root, host=HOST, port=0, run_sync_in_threads=False) as server:
            announce(server.url)
            await server.serve_forever()

    asyncio.run(main())


def serve_rpyc() -> None:
    import rpyc
    from rpyc.utils.server import ThreadedServer

    class BenchService(rpyc.Service):
        def exposed_echo(self, x: Any) -> Any:
            return x

        def exposed_run_callbacks(self, f: Any, n: int) -> int:
            for i in range(n):
                f(i)
            return n

    server = ThreadedServer(BenchService, hostname=HOST, port=0)
    announce(f"{HOST}:{server.port}")
    server.start()


def serve_pyro5() -> None:
    import Pyro5.api

    @Pyro5.api.expose
    class PyroEcho:
        def echo(self, x: Any) -> Any:
            return x

    daemon = Pyro5.api.Daemon(host=HOST, port=0)
    uri = daemon.register(PyroEcho(), "bench")
    announce(str(uri))
    daemon.requestLoop()


# ---------------------------------------------------------------------------------------------
# Proxies section
# ---------------------------------------------------------------------------------------------


class Number:
    """An integer-like object that stays on the server: ``p + 1`` and ``p.echo(1)`` on a proxy
    (or an RPyC netref) to it. ``__add__`` answers a plain int, which travels by value."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __add__(self, other: int) -> int:
        return self.value + other

    def echo(self, x: Any) -> Any:
        return x

    exposed_echo = echo  # RPyC serves only the ``exposed_`` names of a non-service object


class ProxyRoot:
    """The root object of the Tether proxies server (one per connection)."""

    def __init__(self, peer: Any = None) -> None:
        self.peer = peer
        self._numbers = list(range(ITEMS))
        self._number = Number(41)

    def numbers(self) -> Any:
        """The list ``list(range(ITEMS))`` by reference: the client gets a proxy to it."""
        import tether

        return tether.by_reference(self._numbers)

    def number(self) -> Number:
        """A :class:`Number`; not a plain value, so it travels by reference anyway."""
        return self._number


def make_proxy_root(peer: Any) -> ProxyRoot:
    return ProxyRoot(peer)


def serve_tether_proxies() -> None:
    import tether

    server = tether.serve(make_proxy_root, host=HOST, port=0)
    announce(server.url)
    server.serve_forever()


def serve_rpyc_proxies() -> None:
    import rpyc
    from rpyc.utils.server import ThreadedServer

    class ProxyService(rpyc.Service):
        def on_connect(self, conn: Any) -> None:
            self._numbers = list(range(ITEMS))
            self._number = Number(41)

        def exposed_numbers(self) -> list[int]:
            return self._numbers  # RPyC sends a list by reference (a netref)

        def exposed_number(self) -> Number:
            return self._number

    server = ThreadedServer(ProxyService, hostname=HOST, port=0)
    announce(f"{HOST}:{server.port}")
    server.start()


# ---------------------------------------------------------------------------------------------
# Serialization section
# ---------------------------------------------------------------------------------------------


class CodeRoot:
    """The root object of the serialization section's server (which accepts code).

    ``take(order)`` receives the benchmark's ``Order`` by value: its classes exist only in the
    sending process's ``__main__``, so the server gets them from the client (``get_classes``)
    the first time, and defines them from their source. ``take(None)`` is the same call with a
    trivial argument and an answer of the same size (``0`` instead of ``100``)."""

    def __init__(self, peer: Any = None) -> None:
        self.peer = peer

    def take(self, order: Any) -> int:
        if order is None:
            return 0
        items = order.items
        if [item.qty for item in items] != list(range(len(items))) or order.meta.get("priority") != "high":
            raise ValueError("the order arrived damaged")
        return len(items)


def make_code_root(peer: Any) -> CodeRoot:
    return CodeRoot(peer)


def serve_tether_code() -> None:
    import tether

    server = tether.serve(make_code_root, host=HOST, port=0, accept_code=True)
    announce(server.url)
    server.serve_forever()


# ---------------------------------------------------------------------------------------------
# Browser section
# ---------------------------------------------------------------------------------------------


def _serve_web(run_sync_in_threads: bool, origins: list[str] | None = None) -> None:
    """``tether.web.serve_web``: the page, Pyodide and the Tether endpoint ``/ws`` on one port;
    announces the page's URL."""
    import tether.web

    async def main() -> None:
        server = tether.web.serve_web(make_root, HOST, 0, run_sync_in_threads=run_sync_in_threads, origins=origins)
        async with server:
            announce(server.url)
            await server.serve_forever()

    asyncio.run(main())


def serve_web_tether() -> None:
    _serve_web(run_sync_in_threads=True)  # serve_web's default: plain methods run on worker threads


def serve_web_tether_aio() -> None:
    # Every method runs on the event loop. The page comes from the web-tether server, another
    # origin (port) on 127.0.0.1, which a server admits only when told (origins=).
    _serve_web(run_sync_in_threads=False, origins=["*"])


def serve_web_echo() -> None:
    """An aiohttp WebSocket echo endpoint ``/echo`` (the same WebSocket server as tether.web)."""
    from aiohttp import WSMsgType, web

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=2**24)
        await ws.prepare(request)
        async for message in ws:
            if message.type is WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/echo", echo)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, HOST, 0).start()
        announce(f"ws://{HOST}:{runner.addresses[0][1]}/echo")
        await asyncio.Event().wait()

    asyncio.run(main())


SERVERS: dict[str, Callable[[], None]] = {
    "tcp-echo": serve_tcp_echo,
    "ws-echo": serve_ws_echo,
    "tether-threading": serve_tether_threading,
    "tether-aio": serve_tether_aio,
    "rpyc": serve_rpyc,
    "pyro5": serve_pyro5,
    "tether-proxies": serve_tether_proxies,
    "rpyc-proxies": serve_rpyc_proxies,
    "tether-code": serve_tether_code,
    "web-tether": serve_web_tether,
    "web-tether-aio": serve_web_tether_aio,
    "web-echo": serve_web_echo,
}


def run_server(kind: str) -> None:
    """Serve ``kind`` until killed, or until stdin closes (so a dead parent leaves no orphan)."""

    def exit_on_stdin_eof() -> None:
        with contextlib.suppress(OSError):
            while os.read(0, 4096):  # unbuffered: no lock left held at interpreter shutdown
                pass
        os._exit(0)

    threading.Thread(target=exit_on_stdin_eof, name="stdin-watch", daemon=True).start()
    SERVERS[kind]()
