"""Tether as an ASGI application, so that production ASGI servers (uvicorn, hypercorn, ...)
run it, alone or mounted inside a Starlette or FastAPI application.

::

    # service.py                       run with: uvicorn service:app --host 127.0.0.1 --port 8000
    import tether.asgi

    app = tether.asgi.app(lambda peer: Service(peer), token=SECRET)

    # then, from any process:          tether.connect("ws://127.0.0.1:8000/ws", token=SECRET)

What :func:`app` returns answers three kinds of ASGI scope:

* ``websocket`` at ``/ws`` (and at ``/``): the Tether endpoint, with the admission of the
  other servers (``docs/security.md`` 6): the token as the ``tether.token.<base64url>``
  subprotocol, the ``Origin`` checked against ``origins=`` and this server's own pages, the
  ``tether`` subprotocol selected when offered, and a refusal closed with 4401 or 4403 before
  any Tether frame. Each admitted connection gets its own asyncio session and
  :class:`~tether.aio.AsyncPeer`; ``root`` may be a factory called with each new peer.
* ``http``: with ``pages=True``, the page that runs Python in the browser and connects back,
  the boot script, the Pyodide runtime and ``/tether/tether.zip`` (what ``serve_web`` serves,
  without aiohttp: :mod:`tether.asgi.pages`); otherwise 404 (426 on the endpoint's paths).
* ``lifespan``: startup zips the page's package; shutdown closes every Tether connection with
  1001 (:data:`~tether.session.SHUTDOWN_CODE`). uvicorn closes open WebSockets (code 1012)
  before it sends the lifespan shutdown, so its clients usually see 1012; the app's own
  :meth:`TetherApp.close` sends 1001.

Paths are relative to where the app is mounted (``scope["root_path"]``):
``Mount("/tether", app=tether_app)`` serves ``ws://host/tether/ws``. Starlette does not pass
the lifespan to mounted applications: give it the app's, ``Starlette(routes=[...],
lifespan=tether_app.lifespan)``. Mounted under a prefix, the page (open it as
``http://host/tether/``, with the trailing slash) finds its files there and its default
connection goes to ``/tether/ws``, next to the page.

The ASGI server owns the sockets: TLS (``uvicorn --ssl-certfile --ssl-keyfile``, or a proxy in
front), pings (``--ws-ping-interval``, ``--ws-ping-timeout``, 20 s by default) and its own
message limit (``--ws-max-size``, 16 MiB by default, like ``max_frame_size``: keep them equal;
larger frames than ``max_frame_size`` are refused with 1009 here too). ``docs/guide.md``
("Deployment") shows uvicorn with several workers behind nginx.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterable, MutableMapping
from pathlib import Path
from types import ModuleType
from typing import Any

from ..admission import Admission, offered_subprotocols, own_origins, select_subprotocol
from ..aio.client import dialer
from ..aio.session import AsyncPeer, serve_connection
from ..exceptions import UsageError
from ..options import Options, resolve_options
from ..pagefiles import find_pyodide, shipped_files
from ..session import SHUTDOWN_CODE, SHUTDOWN_REASON
from .pages import PageFiles, respond
from .transport import ASGIReceive, ASGISend, ASGITransport

__all__ = ["ENDPOINT_PATHS", "ASGITransport", "PageFiles", "TetherApp", "app", "route_path"]

log = logging.getLogger("tether")

ENDPOINT_PATHS = frozenset({"", "/", "/ws"})
"""Where the app accepts Tether WebSockets, relative to its mount point."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_INTERNAL_ERROR = (1011, "tether: internal error")


def route_path(scope: MutableMapping[str, Any]) -> str:
    """The request's path relative to where the app is mounted: ``scope["path"]`` without
    ``scope["root_path"]`` (``""`` for the mount point itself)."""
    path: str = scope["path"]
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


class TetherApp:
    """An ASGI 3 application that speaks Tether on its WebSocket endpoint; make it with
    :func:`app` and hand it to an ASGI server (``uvicorn module:app``) or mount it.

    ``peers`` lists the connections this process serves; ``await close()`` closes them all
    (with 1001) and refuses new ones until ``await startup()``; ``lifespan`` is the same pair
    as a context manager, for ``Starlette(lifespan=app.lifespan)``.
    """

    def __init__(self, root: Any, options: Options, pages: PageFiles | None = None) -> None:
        self._root = root
        self._options = options
        self._session_options = {
            **options.session(serving=True),
            "run_sync_in_threads": options.run_sync_in_threads,
            "dialer": dialer(options),
            "advertise": options.advertised(),
        }
        Admission(options.token, options.origins)  # checks token= and origins= now
        self._admissions: dict[tuple[str, str, int] | None, Admission] = {}
        self._pages = pages
        self._peers: set[AsyncPeer] = set()
        self._closed = False

    @property
    def peers(self) -> list[AsyncPeer]:
        """The connections this process serves now (their ``AsyncPeer``: ``await
        peer.fetch_root()`` reaches the client's root; from a thread, ``peer.root`` blocks)."""
        return list(self._peers)

    @property
    def pages(self) -> PageFiles | None:
        """What the app serves over HTTP (``pages=True``), or ``None``."""
        return self._pages

    async def __call__(self, scope: MutableMapping[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._http(scope, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise ValueError(f"tether.asgi: unknown ASGI scope type {kind!r}")

    # -- lifecycle --------------------------------------------------------------------------

    async def startup(self) -> None:
        """Admit connections (again), and zip the page's package when serving pages."""
        self._closed = False
        if self._pages is not None:
            await self._pages.prepare()

    async def close(self) -> None:
        """Close every Tether connection of this process with 1001 (their clients' pending
        calls fail with ConnectionLost saying the server shut down); refuse new ones."""
        self._closed = True
        peers = list(self._peers)
        await asyncio.gather(
            *(p.session.close(SHUTDOWN_CODE, SHUTDOWN_REASON) for p in peers), return_exceptions=True
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: object = None) -> AsyncIterator[None]:
        """``startup`` on entry and ``close`` on exit: ``Starlette(lifespan=tether_app.lifespan)``
        when the app is mounted (Starlette does not pass the lifespan to mounted apps)."""
        await self.startup()
        try:
            yield
        finally:
            await self.close()

    async def _lifespan(self, receive: ASGIReceive, send: ASGISend) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send(
                        {"type": "lifespan.startup.failed", "message": f"tether: {type(exc).__name__}: {exc}"}
                    )
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- the Tether endpoint ----------------------------------------------------------------

    async def _websocket(self, scope: MutableMapping[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        if (await receive())["type"] != "websocket.connect":
            return  # gone before the handshake
        if route_path(scope) not in ENDPOINT_PATHS:
            await _deny(scope, send)
            return
        origin = next(
            (v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == b"origin"), None
        )
        offered = offered_subprotocols(scope.get("subprotocols") or ())
        client = scope.get("client")
        url = (
            f"{'page' if origin is not None else 'client'} {client[0]}:{client[1]}" if client else "a client"
        )
        refusal = (
            (SHUTDOWN_CODE, SHUTDOWN_REASON)
            if self._closed
            else self._admission(scope).check(origin, offered)
        )
        accept: dict[str, Any] = {"type": "websocket.accept"}
        chosen = select_subprotocol(offered)
        if chosen is not None:
            accept["subprotocol"] = chosen
        await send(accept)
        if refusal is not None:  # before anything is exposed: no session, no frame
            log.info("refused %s: %s", url, refusal[1])
            await send({"type": "websocket.close", "code": refusal[0], "reason": refusal[1]})
            return
        transport = ASGITransport(receive, send, self._options.max_frame_size)
        try:
            await serve_connection(transport, self._root, url, self._peers, self._session_options)
        except Exception:
            log.exception("tether.asgi: serving %s failed", url)
            await transport.close(*_INTERNAL_ERROR)
        finally:
            await transport.close()

    def _admission(self, scope: MutableMapping[str, Any]) -> Admission:
        """The checks for a request that reached this server's socket ``scope["server"]``:
        ``origins=``, and the pages this server serves itself (its own scheme, host and port,
        never the request's ``Host``: DNS rebinding cannot make a foreign page one of them)."""
        scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
        server = scope.get("server")
        key = (scheme, str(server[0]), int(server[1])) if server and server[1] is not None else None
        admission = self._admissions.get(key)
        if admission is None:
            own: list[str] = []
            if key is not None:
                own = own_origins(*key)
                if _DEFAULT_PORTS[scheme] == key[2]:  # browsers leave the default port out of Origin
                    own += [origin.rpartition(":")[0] for origin in own]
            admission = Admission(self._options.token, self._options.origins, own=own)
            if len(self._admissions) < 64:
                self._admissions[key] = admission
        return admission

    # -- HTTP -------------------------------------------------------------------------------

    async def _http(self, scope: MutableMapping[str, Any], send: ASGISend) -> None:
        path = route_path(scope)
        head = scope.get("method") == "HEAD"
        if path == "":  # the mount point itself: the page's relative links need the slash
            query = scope.get("query_string") or b""
            location = (scope.get("root_path") or "") + "/" + ("?" + query.decode("latin-1") if query else "")
            await respond(send, 308, b"", headers=[("location", location)], head=head)
        elif path == "/ws" or (path == "/" and self._pages is None):
            await respond(
                send, 426, b"a Tether endpoint: open a WebSocket here (tether.connect)\n",
                headers=[("upgrade", "websocket"), ("connection", "Upgrade")], head=head,
            )  # fmt: skip
        elif self._pages is None:
            await respond(send, 404, b"not found: this is a Tether WebSocket endpoint (at /ws)\n", head=head)
        else:
            await self._pages.serve(path, str(scope.get("method", "GET")), scope.get("headers", ()), send)

    def __repr__(self) -> str:
        pages = " with pages" if self._pages is not None else ""
        return f"<tether.asgi.TetherApp{pages} peers={len(self._peers)}>"


async def _deny(scope: MutableMapping[str, Any], send: ASGISend) -> None:
    """Refuse a WebSocket handshake on a path the app does not serve: 404 where the server
    can send an HTTP response instead of accepting, else a close before accepting (403)."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = b"not found: the Tether endpoint is /ws\n"
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "websocket.http.response.start", "status": 404, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


def app(
    root: object,
    *,
    pages: bool = False,
    pyodide_dir: str | os.PathLike[str] | None = None,
    index: str | os.PathLike[str] | None = None,
    packages: Iterable[ModuleType | str] = (),
    options: Options | None = None,
    **kwargs: Any,
) -> TetherApp:
    """An ASGI application exposing ``root`` over Tether at ``/ws``; give it to an ASGI server
    (``uvicorn module:app``) or mount it (``Mount("/tether", app=...)``).

    ``root`` is an object, or a function called with each new AsyncPeer (possibly ``async``),
    as for :func:`tether.aio.serve`. The options are those of :class:`tether.Options` (as
    keywords or ``options=``): ``token`` and ``origins`` say who may connect (``origins``: the
    browser origins admitted besides this server's own address, such as the public origin
    behind a proxy, ``"https://app.example.com"``). ``ssl``, ``transport`` and ``keepalive``
    belong to the ASGI server (``uvicorn --ssl-certfile``, ``--ws-max-size``,
    ``--ws-ping-interval``) and raise :class:`~tether.exceptions.UsageError` as keywords here
    (an ``options=`` object's ``keepalive`` is left to the clients it also serves).

    ``pages=True`` also serves the page that runs Python in the browser, as
    :func:`tether.web.serve_web` does (and with its ``pyodide_dir``, ``index`` and
    ``packages``, checked now: a missing Pyodide runtime or a package that cannot be shipped
    raises UsageError here). Each worker process serves its own connections: see
    ``docs/guide.md`` ("Deployment").
    """
    o = resolve_options("tether.asgi.app", True, "aio", options, kwargs)
    if o.ssl is not None:
        raise UsageError(
            "tether.asgi.app() takes no ssl=: TLS is the ASGI server's (uvicorn --ssl-certfile CERT "
            "--ssl-keyfile KEY) or the proxy's in front of it"
        )
    if o.transport:
        raise UsageError(
            "tether.asgi.app() takes no transport=: its WebSockets are the ASGI server's "
            "(uvicorn --ws-max-size, --ws-ping-interval, --ws-per-message-deflate)"
        )
    if "keepalive" in kwargs:
        raise UsageError(
            "tether.asgi.app() takes no keepalive=: the ASGI server sends the pings "
            "(uvicorn --ws-ping-interval 20 --ws-ping-timeout 20)"
        )
    if "max_connections" in kwargs:
        raise UsageError(
            "tether.asgi.app() takes no max_connections=: the ASGI server bounds its connections "
            "(uvicorn --limit-concurrency N answers one more with HTTP 503)"
        )
    if not pages:
        given = [
            name
            for name, value in (("pyodide_dir", pyodide_dir), ("index", index), ("packages", packages))
            if value
        ]
        if given:
            raise UsageError(f"tether.asgi.app() got {'=, '.join(given)}=, which only pages=True uses")
        return TetherApp(root, o)
    page = None if index is None else Path(index)
    if page is not None and not page.is_file():
        raise UsageError(f"no page to serve at {page}")
    return TetherApp(root, o, PageFiles(find_pyodide(pyodide_dir), page, shipped_files(packages)))
