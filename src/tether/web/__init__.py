"""Serve a browser page that runs Python (Pyodide) and talks Tether back to this process.

::

    import tether.web

    async def main():
        async with tether.web.serve_web(App(), port=8765) as server:
            print("open", server.url)          # http://127.0.0.1:8765/
            await server.serve_forever()

One host and port serve both the page and the Tether endpoint:

* ``/`` the page (``index.html``, or the file passed as ``index=``) and ``/tether/boot.mjs``,
  which loads Pyodide from ``/pyodide/`` (a local folder fetched once with
  ``scripts/fetch_pyodide.sh``, never a CDN), installs ``/tether/tether.zip`` (this very
  ``tether`` package, and the page's own packages listed as ``packages=``, zipped when the
  server starts) into the page's ``site-packages`` and connects back to ``/ws``;
* ``/ws`` the Tether endpoint (``server.ws_url``). Native clients may use it too:
  ``tether.connect(server.ws_url)``.

Each connection gets its own :class:`~tether.aio.session.AsyncSession`, as with
:func:`tether.aio.serve`; ``root`` may be a factory called with each new
:class:`~tether.aio.AsyncPeer` (then ``await peer.fetch_root()`` reaches the page's objects).

This module needs ``aiohttp`` (``pip install 'tether[web]'``), chosen because it serves files
(``FileResponse``: sendfile, ranges, conditional requests) and WebSockets from one application.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path
from ssl import SSLContext
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

try:
    from aiohttp import WSMsgType, web
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("tether.web needs aiohttp: pip install 'tether[web]' (or pip install aiohttp)") from exc

from ..admission import SUBPROTOCOL, Admission, offered_subprotocols, own_origins, tls_server_context
from ..aio.client import dialer
from ..aio.session import AsyncPeer, serve_connection
from ..aio.stepping import send_now
from ..exceptions import ConnectionLost, UsageError
from ..options import Options, resolve_options
from ..pagefiles import (
    CONTENT_TYPES,
    MAX_SHIPPED_BYTES,
    PACKAGE,
    PYODIDE_VERSION,
    STATIC,
    content_type,
    find_pyodide,
    package_zip,
    shipped_files,
    zip_shipped,
)
from ..session import SHUTDOWN_CODE, SHUTDOWN_REASON
from ..transports import fit_close_reason
from ..websocket import ConnectionCount

__all__ = ["CONTENT_TYPES", "DEFAULT_WEB_PORT", "MAX_SHIPPED_BYTES", "PACKAGE", "PYODIDE_VERSION", "STATIC", "WebServer", "WebSocketTransport", "find_pyodide", "package_zip", "serve_web", "shipped_files"]

log = logging.getLogger("tether")

DEFAULT_WEB_PORT = 8765


class WebSocketTransport:
    """The asyncio runtime's transport interface around an aiohttp ``WebSocketResponse``.

    ``send`` writes the frame before its first suspension point (aiohttp writes uncompressed
    frames synchronously, then waits for the socket to drain when its buffer is full).
    :meth:`send_nowait` takes that first step at once, so the session writes each frame as it
    is queued, with no task per frame; :attr:`writing_paused` and :meth:`drain` tell it when
    the peer reads too slowly (then it stops reading from that peer until the buffer drains).
    """

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self._finishing: set[asyncio.Task[None]] = set()  # sends waiting for aiohttp's buffer to drain

    async def send(self, data: bytes) -> None:
        if self.ws.closed:
            raise ConnectionLost(self._closed_text())
        await self.ws.send_bytes(data)

    def send_nowait(self, data: bytes) -> None:
        """Write ``data`` as one binary message now (on the loop's thread). aiohttp writes an
        uncompressed frame before its send's first suspension, so that send is stepped once
        here; if it then waits for aiohttp's write buffer to drain, the wait goes on in a task
        and :attr:`writing_paused` is true until it ends. Raises ConnectionLost once closed."""
        if self.ws.closed:
            raise ConnectionLost(self._closed_text())
        send_now(self.ws.send_bytes(data), self._finishing)

    @property
    def writing_paused(self) -> bool:
        """Whether a send waits for aiohttp's write buffer to drain (the peer reads slowly)."""
        return bool(self._finishing)

    async def drain(self) -> None:
        """Wait until no send waits for aiohttp's write buffer to drain."""
        while self._finishing:
            await asyncio.wait(set(self._finishing))

    async def recv(self) -> bytes | str:
        msg = await self.ws.receive()
        if msg.type is WSMsgType.BINARY:
            return msg.data  # type: ignore[no-any-return]
        if msg.type is WSMsgType.TEXT:
            return msg.data  # type: ignore[no-any-return]
        if msg.type is WSMsgType.ERROR:
            raise ConnectionLost(f"WebSocket error: {msg.data}")
        raise ConnectionLost(self._closed_text())

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code=code, message=fit_close_reason(reason).encode())

    def _closed_text(self) -> str:
        code = self.ws.close_code
        return "peer closed the connection" + (f" (code {code})" if code is not None else "")


class WebServer:
    """A listening page + Tether server on the running event loop.

    Use ``async with serve_web(root) as server`` (``server.url`` for browsers,
    ``server.ws_url`` for Tether), then ``await server.serve_forever()`` or ``await server.close()``.
    ``server.peers`` lists the connected pages (and native clients) as AsyncPeers.
    """

    def __init__(
        self,
        root: Any,
        host: str,
        port: int,
        pyodide: Path,
        options: dict[str, Any],
        index: Path | None = None,
        *,
        token: str | None = None,
        origins: Iterable[str] | None = None,
        ssl: SSLContext | None = None,
        keepalive: float | None = 20.0,
        shipped: Sequence[tuple[Path, str]] = (),
        max_connections: int = 1024,
    ) -> None:
        self._root = root
        self._shipped = list(shipped)
        self._keepalive = keepalive
        self._token = token
        self._origins = origins
        self._ssl = ssl
        self._admission = Admission(token, origins)  # made again with the bound port on start
        self._index_path = index or STATIC / "index.html"
        self._host = host
        self._port = port
        self._pyodide = pyodide
        self._options = options
        self._peers: set[AsyncPeer] = set()
        self._count = ConnectionCount(max_connections, "tether.web server")  # /ws connections
        self._runner: web.AppRunner | None = None
        self._closed: asyncio.Event | None = None
        self._zip = b""
        self.url = ""
        self.ws_url = ""
        self.host = host
        self.port = port

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> WebServer:
        self._closed = asyncio.Event()
        self._zip = zip_shipped(self._shipped, PACKAGE)
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/index.html", self._index)
        app.router.add_get("/tether/boot.mjs", self._boot)
        app.router.add_get("/tether/tether.zip", self._package)
        app.router.add_get("/pyodide/{name}", self._pyodide_file)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/favicon.ico", self._no_content)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, ssl_context=tls_server_context(self._ssl))
        await site.start()
        address = self._runner.addresses[0]
        self.host, self.port = address[0], address[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self._ssl is not None else "http"
        self.url = f"{scheme}://{shown}:{self.port}/"
        self.ws_url = f"{'wss' if self._ssl is not None else 'ws'}://{shown}:{self.port}/ws"
        self._admission = Admission(self._token, self._origins, own=own_origins(scheme, self.host, self.port))
        self._count.where = f"tether.web server on {self.url}"
        return self

    @property
    def page_url(self) -> str:
        """The URL to open in a browser: :attr:`url`, with the token in its fragment when the
        server has one (a fragment never leaves the browser: it is in no request or log)."""
        if self._token is None:
            return self.url
        return self.url + "#" + urlencode({"token": self._token})

    @property
    def peers(self) -> list[AsyncPeer]:
        return list(self._peers)

    async def serve_forever(self) -> None:
        """Wait until :meth:`close` is called."""
        assert self._closed is not None, "start the server first: await serve_web(...)"
        await self._closed.wait()

    async def close(self) -> None:
        """Stop listening and close every connection; their pending calls fail."""
        if self._closed is not None:
            self._closed.set()
        for peer in list(self._peers):  # tell each page and client, whose waiting calls fail saying so
            await peer.session.close(SHUTDOWN_CODE, SHUTDOWN_REASON)
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def __await__(self) -> Generator[Any, None, WebServer]:
        return self.start().__await__()

    async def __aenter__(self) -> WebServer:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<tether.web.WebServer {self.url or 'not started'} peers={len(self._peers)}>"

    # -- handlers -------------------------------------------------------------------------

    async def _no_content(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return _file(self._index_path, no_cache=True)

    async def _boot(self, request: web.Request) -> web.StreamResponse:
        return _file(STATIC / "boot.mjs", no_cache=True)

    async def _package(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=self._zip, content_type="application/zip", headers={"Cache-Control": "no-cache"}
        )

    async def _pyodide_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = self._pyodide / name
        # One flat folder: refuse anything that is not a plain file name inside it.
        if name.startswith(".") or "/" in name or "\\" in name or not path.is_file():
            raise web.HTTPNotFound(text=f"{name} is not part of the Pyodide runtime served here")
        return _file(path)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if not self._count.take():  # over max_connections: before the upgrade
            return web.Response(status=503, text=self._count.text, headers={"Retry-After": "1"})
        try:
            return await self._serve_websocket(request)
        finally:
            self._count.give_back()

    async def _serve_websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            compress=False,
            max_msg_size=self._options["max_frame_size"],
            autoping=True,
            timeout=2.0,
            protocols=(SUBPROTOCOL,),
            heartbeat=self._keepalive,
        )
        await ws.prepare(request)
        remote = request.remote or "?"
        peername = request.transport.get_extra_info("peername") if request.transport else None
        port = f":{peername[1]}" if peername else ""
        refusal = self._admission.check(
            request.headers.get("Origin"), offered_subprotocols(request.headers.getall("Sec-WebSocket-Protocol", []))
        )
        if refusal is not None:  # before anything is exposed: no session, no frame
            log.info("refused %s%s: %s", remote, port, refusal[1])
            await ws.close(code=refusal[0], message=refusal[1].encode())
            return ws
        try:
            await serve_connection(
                WebSocketTransport(ws), self._root, f"page {remote}{port}", self._peers, self._options
            )
        finally:
            if not ws.closed:
                await ws.close()
        return ws


def _file(path: Path, no_cache: bool = False) -> web.FileResponse:
    headers = {"Content-Type": content_type(path)}
    if no_cache:
        headers["Cache-Control"] = "no-cache"
    return web.FileResponse(path, headers=headers)


def serve_web(
    root: object,
    host: str = "127.0.0.1",
    port: int = DEFAULT_WEB_PORT,
    *,
    pyodide_dir: str | os.PathLike[str] | None = None,
    index: str | os.PathLike[str] | None = None,
    packages: Iterable[ModuleType | str] = (),
    options: Options | None = None,
    **kwargs: Any,
) -> WebServer:
    """Serve the Tether page and endpoint for ``root`` on ``http://host:port/``; await it or
    use ``async with``.

    ``root`` is an object, or a function called with each new AsyncPeer (possibly ``async``).
    ``pyodide_dir`` is the unpacked Pyodide runtime (see :func:`find_pyodide`); it is checked
    now, so a missing runtime fails here rather than in the browser. ``index`` is the HTML file
    served at ``/`` instead of the bundled ``index.html`` (it loads ``/tether/boot.mjs``).
    ``token``: a secret every page and client must give; pages get it from the fragment of
    :attr:`WebServer.page_url` (``#token=...``). ``origins``: the browser origins admitted
    besides this server's own pages (default: only its own). ``max_connections``: ``/ws``
    connections at once (1,024; one more gets an HTTP 503). ``ssl``: an ``ssl.SSLContext``
    to serve ``https://`` and ``wss://``. The options are those of :class:`tether.Options`
    (as keywords or ``options=``), as for :func:`tether.aio.serve`.

    ``packages``: the page's own Python code, shipped with ``tether`` in ``/tether/tether.zip``
    and unpacked into the page's ``site-packages`` before its main runs, so the page imports
    it as usual (name it in ``<meta name="tether-main" content="mypkg.page:main">`` to run it
    instead of the default main). List top-level modules and packages, as module objects or
    names (``packages=[mypkg]`` or ``["mypkg"]``); a package is shipped whole, its folder's
    files except caches, hidden files and compiled extensions (see :func:`shipped_files`).
    They must be pure Python that runs in Pyodide. They are checked and listed now: a name
    that does not import, or that cannot be shipped, raises
    :class:`~tether.exceptions.UsageError` here. Only what is listed here is shipped (nothing
    a peer or a request says chooses a file), but it is served to anyone who can load the
    page, like the page itself (no token guards it): keep secrets out of those folders.
    """
    o = resolve_options("tether.web.serve_web", True, "web", options, kwargs)
    if o.transport:
        raise UsageError("serve_web() takes no transport= (its WebSockets are aiohttp's)")
    page = None if index is None else Path(index)
    if page is not None and not page.is_file():
        raise UsageError(f"no page to serve at {page}")
    shipped = shipped_files(packages)
    return WebServer(
        root,
        host,
        port,
        find_pyodide(pyodide_dir),
        {
            **o.session(serving=True),
            "run_sync_in_threads": o.run_sync_in_threads,
            "dialer": dialer(o),
            "advertise": o.advertised(),
        },
        page,
        token=o.token,
        origins=o.origins,
        ssl=o.ssl,
        keepalive=o.keepalive,
        shipped=shipped,
        max_connections=o.max_connections,
    )
