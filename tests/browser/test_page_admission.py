"""Admission on ``serve_web``, with native clients and with headless Chromium, on 127.0.0.1.

* Native clients on ``server.ws_url``: the token (close 4401), the server's own origins
  admitted and any other refused (close 4403), without a Tether frame before the close.
* A page from another origin (a second little HTTP server on another port) opening a raw
  ``WebSocket`` to ``serve_web``: 4403, no message; admitted when listed in ``origins=``.
* A page of a server with a token: ``tether.aio.connect()`` offers the token of the URL's
  fragment (``page_url``); opened without the fragment it raises ``tether.Refused`` (4401).
* ``serve_web(ssl=...)``: the page over https, its connection over wss (the CA made here with
  ``trustme``; Chromium is told to accept it with ``ignore_https_errors``).

Three Pyodide boots in all. Missing Chromium, Playwright, aiohttp or Pyodide skips these tests
(fails them under CI=true), as in the other browser tests.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import trustme
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

import tether
import tether.aio
from tether.admission import client_subprotocols
from tether_demo.headless import host_guard

from .conftest import BOOT_TIMEOUT_MS, LoopThread, PageDriver, Web, pyodide_or_skip

# Characters that the fragment must carry encoded: '+', ' ', '&', '=' and a non-ASCII letter.
TOKEN = "page s3cret+&=\u00e9"
FORBIDDEN = (4403, "tether: origin not allowed")
UNAUTHORIZED = (4401, "tether: authentication failed")

FOREIGN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>another origin</title></head><body>
<script>
// Open a raw WebSocket and report what happened: opened? which subprotocol? messages? close?
window.probe = (url, protocols, settleMs) => new Promise((resolve) => {
  const seen = { open: false, protocol: null, messages: 0, closed: false, code: null, reason: null };
  const ws = new WebSocket(url, protocols);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    seen.open = true;
    seen.protocol = ws.protocol;
    // Still open after settleMs: admitted (the server waits for the client's opening frame).
    setTimeout(() => { if (!seen.closed) { ws.close(1000); resolve(seen); } }, settleMs);
  };
  ws.onmessage = () => { seen.messages += 1; };
  ws.onclose = (e) => {
    if (seen.closed) return;
    seen.closed = true;
    seen.code = e.code;
    seen.reason = e.reason;
    resolve(seen);
  };
});
window.ready = true;
</script>
</body></html>
"""


class Calculator:
    def add(self, a: int, b: int) -> int:
        return a + b


class Servers:
    """The module's servers, on one loop in a thread."""

    def __init__(self, runner: LoopThread) -> None:
        self.runner = runner
        self.foreign_origin = ""
        self.foreign_url = ""
        self.token_web: Any = None
        self.listed_web: Any = None
        self.tls_web: Any = None
        self.client_ctx: ssl.SSLContext | None = None


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    pyodide_dir = pyodide_or_skip()
    from aiohttp import web

    import tether.web
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_ctx)

    runner = LoopThread()
    found = Servers(runner)
    found.client_ctx = client_ctx

    async def foreign_index(request: Any) -> Any:
        return web.Response(text=FOREIGN_PAGE, content_type="text/html")

    async def start() -> Any:
        app = web.Application()
        app.router.add_get("/", foreign_index)
        site_runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await site_runner.setup()
        await web.TCPSite(site_runner, "127.0.0.1", 0).start()
        port = site_runner.addresses[0][1]
        found.foreign_origin = f"http://127.0.0.1:{port}"
        found.foreign_url = found.foreign_origin + "/"
        found.token_web = await tether.web.serve_web(Calculator(), port=0, pyodide_dir=pyodide_dir, token=TOKEN)
        found.listed_web = await tether.web.serve_web(
            Calculator(), port=0, pyodide_dir=pyodide_dir, token=TOKEN, origins=[found.foreign_origin]
        )
        found.tls_web = await tether.web.serve_web(
            Calculator(), port=0, pyodide_dir=pyodide_dir, token=TOKEN, ssl=server_ctx
        )
        return site_runner

    site_runner = runner.run(start())
    try:
        yield found
    finally:
        for server in (found.token_web, found.listed_web, found.tls_web):
            if server is not None:
                runner.run(server.close())
        runner.run(site_runner.cleanup())
        runner.stop()


# -- helpers ------------------------------------------------------------------------------


def raw_closed_without_frame(url: str, **options: Any) -> ConnectionClosed:
    """Open a raw WebSocket; return the ConnectionClosed its first recv raises (no message first)."""
    with ws_connect(url, open_timeout=5, **options) as ws:
        assert ws.subprotocol in (None, "tether")
        with pytest.raises(ConnectionClosed) as closed:
            message = ws.recv(timeout=5)
            pytest.fail(f"the server sent a message before closing: {message!r}")
    return closed.value


def assert_close(closed: ConnectionClosed, code: int, reason: str) -> None:
    assert closed.rcvd is not None, f"no close frame came: {closed!r}"
    assert (closed.rcvd.code, closed.rcvd.reason) == (code, reason)


def connect_options(options: dict[str, Any]) -> dict[str, Any]:
    """``tether.connect``'s options: the ``Origin`` a browser would send is a websockets setting."""
    if "origin" in options:
        options = dict(options)
        options["transport"] = {"origin": options.pop("origin")}
    return options


def refusals(url: str, attempts: int = 10, **options: Any) -> list[BaseException | None]:
    outcomes: list[BaseException | None] = []
    for _ in range(attempts):
        try:
            peer = tether.connect(url, open_timeout=5, **connect_options(options))
        except Exception as exc:
            outcomes.append(exc)
        else:
            peer.close()
            outcomes.append(None)
    return outcomes


def assert_all_refused(errors: list[BaseException | None], code: int, hint: str) -> None:
    others = [e for e in errors if not isinstance(e, tether.Refused)]
    assert not others, f"expected tether.Refused (code {code}) every time; {len(others)} other: {others[0]!r}"
    for error in errors:
        assert isinstance(error, tether.Refused) and isinstance(error, tether.ConnectionLost)
        assert error.code == code
        assert hint in str(error), str(error)


def assert_still_serves(url: str, **options: Any) -> None:
    with tether.connect(url, open_timeout=5, **connect_options(options)) as peer:
        assert peer.root.add(1, 2) == 3


def port_of(server: Any) -> int:
    return int(server.port)


def new_context(browser: Any, **options: Any) -> tuple[Any, Any, list[str], list[str]]:
    context = browser.new_context(**options)
    context.set_default_timeout(BOOT_TIMEOUT_MS)
    foreign: list[str] = []
    console: list[str] = []
    context.route("**/*", host_guard(foreign))
    page = context.new_page()
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    return context, page, foreign, console


def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not true within {timeout} s")


# -- native clients on serve_web --------------------------------------------------------------


def test_serve_web_admits_a_native_client_with_the_token(servers: Servers) -> None:
    server = servers.token_web
    assert server.ws_url == f"ws://127.0.0.1:{port_of(server)}/ws"
    assert server.page_url == server.url + "#" + urlencode({"token": TOKEN})
    assert_still_serves(server.ws_url, token=TOKEN)


def test_serve_web_refuses_a_native_client_without_the_token(servers: Servers) -> None:
    url = servers.token_web.ws_url
    assert_all_refused(refusals(url), 4401, "token=")
    assert_all_refused(refusals(url, token="not it"), 4401, "token=")
    assert_close(raw_closed_without_frame(url, subprotocols=["tether", "tether.token.%%%"]), *UNAUTHORIZED)
    assert_still_serves(url, token=TOKEN)


def test_serve_web_without_token_admits_a_native_client_without_one(web: Web) -> None:
    assert_still_serves(web.server.ws_url)


def test_serve_web_admits_its_own_origins_and_refuses_others(servers: Servers) -> None:
    server = servers.token_web
    port = port_of(server)
    for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://[::1]:{port}"):
        assert_still_serves(server.ws_url, token=TOKEN, origin=origin)
    offered = client_subprotocols(TOKEN)
    others = ("http://evil.example", servers.foreign_origin, f"http://127.0.0.1:{port + 1}", f"https://127.0.0.1:{port}")
    for origin in others:
        assert_close(raw_closed_without_frame(server.ws_url, origin=origin, subprotocols=offered), *FORBIDDEN)
    assert_all_refused(refusals(server.ws_url, 3, token=TOKEN, origin="http://evil.example"), 4403, "origins=")
    assert_still_serves(server.ws_url, token=TOKEN)


def test_serve_web_origins_adds_to_its_own_origins(servers: Servers) -> None:
    """``origins=`` lists the origins admitted besides the server's own pages (serve_web's
    docstring): both the listed origin and the server's own are admitted."""
    server = servers.listed_web
    port = port_of(server)
    assert_still_serves(server.ws_url, token=TOKEN, origin=servers.foreign_origin)
    offered = client_subprotocols(TOKEN)
    closed = raw_closed_without_frame(server.ws_url, origin="http://evil.example", subprotocols=offered)
    assert_close(closed, *FORBIDDEN)
    for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
        assert_still_serves(server.ws_url, token=TOKEN, origin=origin)


def test_serve_web_default_refuses_a_foreign_origin(web: Web) -> None:
    closed = raw_closed_without_frame(web.server.ws_url, origin="http://evil.example", subprotocols=["tether"])
    assert_close(closed, *FORBIDDEN)
    assert_still_serves(web.server.ws_url, origin=web.url.rstrip("/"))
    assert_still_serves(web.server.ws_url)


def test_serve_web_over_tls_serves_https_and_wss(servers: Servers) -> None:
    server = servers.tls_web
    assert server.url.startswith("https://127.0.0.1:") and server.ws_url.startswith("wss://127.0.0.1:")
    assert server.page_url.startswith("https://127.0.0.1:") and "#token=" in server.page_url
    with urllib.request.urlopen(server.url, context=servers.client_ctx, timeout=10) as response:
        assert response.status == 200 and b"/tether/boot.mjs" in response.read()

    async def calls() -> tuple[int, str]:
        async with tether.aio.connect(server.ws_url, ssl=servers.client_ctx, token=TOKEN) as peer:
            answer = await peer.root.add(1, 2)
        try:
            await tether.aio.connect(server.ws_url, ssl=servers.client_ctx, token="not it")
        except tether.Refused as exc:
            return answer, f"Refused {exc.code}"
        return answer, "connected"

    assert servers.runner.run(calls()) == (3, "Refused 4401")


# -- Chromium ---------------------------------------------------------------------------------


def test_page_of_another_origin_is_refused_4403(browser: Any, servers: Servers, web: Web) -> None:
    context, page, foreign, _console = new_context(browser)
    try:
        page.goto(servers.foreign_url)
        page.wait_for_function("window.ready === true")
        probe = "([url, protocols, settle]) => window.probe(url, protocols, settle)"
        # serve_web with its default origins: only its own pages.
        seen = page.evaluate(probe, [web.server.ws_url, ["tether"], 2000])
        assert seen["closed"] and (seen["code"], seen["reason"]) == FORBIDDEN, seen
        assert seen["messages"] == 0, seen
        # ... and so does serve_web with a token, before looking at the token.
        seen = page.evaluate(probe, [servers.token_web.ws_url, client_subprotocols(TOKEN), 2000])
        assert seen["closed"] and (seen["code"], seen["reason"]) == FORBIDDEN, seen
        assert seen["messages"] == 0, seen
        # A server whose origins= lists this page's origin: admitted with the token ...
        seen = page.evaluate(probe, [servers.listed_web.ws_url, client_subprotocols(TOKEN), 500])
        assert seen["open"] and not seen["closed"] and seen["protocol"] == "tether", seen
        assert seen["messages"] == 0, seen
        # ... and refused 4401 without it (the origin passes, the token does not).
        seen = page.evaluate(probe, [servers.listed_web.ws_url, ["tether"], 2000])
        assert seen["closed"] and (seen["code"], seen["reason"]) == UNAUTHORIZED, seen
        assert seen["messages"] == 0, seen
        assert foreign == []
    finally:
        context.close()
    assert_still_serves(web.server.ws_url)
    assert_still_serves(servers.listed_web.ws_url, token=TOKEN)


def test_page_connects_with_the_token_of_its_fragment(browser: Any, servers: Servers) -> None:
    server = servers.token_web
    base, fragment = server.page_url.split("#", 1)
    context, page, foreign, console = new_context(browser)
    driver = PageDriver(context, page, foreign, console)
    try:
        driver.open(base + "?connect=0#" + fragment)
        result = driver.run(
            """
import json, tether, tether.aio
from tether.browser.session import page_token
peer = await tether.aio.connect()
out = [page_token(), type(peer.session).__name__, await peer.root.add(1, 2)]
await peer.close()
json.dumps(out)
"""
        )
        assert result == [TOKEN, "BrowserSession", 3], console
        assert foreign == []
    finally:
        driver.close()
    assert_still_serves(server.ws_url, token=TOKEN)


def test_page_without_the_fragment_is_refused_4401(browser: Any, servers: Servers) -> None:
    server = servers.token_web
    context, page, foreign, console = new_context(browser)
    try:
        # The default boot: tether.browser.page.main connects, with no token to offer.
        page.goto(server.url)
        boot = page.evaluate("window.tetherReady.then(() => 'connected', (err) => 'failed: ' + err)")
        driver = PageDriver(context, page, foreign, console)
        result = driver.run(
            """
import json, tether, tether.aio
try:
    peer = await tether.aio.connect()
    out = ["connected", None, "", None]
    await peer.close()
except Exception as exc:
    out = [type(exc).__name__, getattr(exc, "code", None), str(exc), isinstance(exc, tether.ConnectionLost)]
# Given explicitly, the token is offered to the page's own server all the same.
async with tether.aio.connect(token=json.loads(TOKEN_JSON)) as peer:
    out.append(await peer.root.add(1, 2))
json.dumps(out)
""".replace("TOKEN_JSON", repr(json.dumps(TOKEN)))
        )
        name, code, message, lost, added = result
        last_line = boot.strip().splitlines()[-1]
        # Both: the boot's own connect (tether.browser.page.main) and tether.aio.connect().
        assert (
            boot.startswith("failed: ") and "tether.exceptions.Refused" in boot and "4401" in boot,
            (name, code),
        ) == (True, ("Refused", 4401)), f"boot: {last_line!r}; tether.aio.connect(): {result}"
        assert "token=" in message and lost is True, result
        assert added == 3
        assert foreign == []
    finally:
        context.close()
    assert_still_serves(server.ws_url, token=TOKEN)


def test_page_over_https_connects_over_wss(browser: Any, servers: Servers) -> None:
    server = servers.tls_web
    before = set(server.peers)
    context, page, foreign, console = new_context(browser, ignore_https_errors=True)
    driver = PageDriver(context, page, foreign, console)
    try:
        # page_url itself: the default boot connects (tether.browser.page.main) over wss, with
        # the token from the fragment.
        driver.open(server.page_url)
        server_peer = wait_for(lambda: [p for p in server.peers if p not in before])[0]

        async def page_info() -> Any:
            page_root = await server_peer.fetch_root()
            return await page_root.info()

        info = servers.runner.run(page_info())
        assert info["python"].startswith("3.") and info["jspi"] is True
        result = driver.run(
            """
import json, tether, tether.aio
from tether.browser import page as page_module
from tether.browser.session import page_ws_url
peer = await tether.aio.connect()
out = [str(__import__("js").location.protocol), page_ws_url(), page_module.peer.url, await peer.root.add(1, 2)]
await peer.close()
json.dumps(out)
"""
        )
        protocol, ws_url, main_url, added = result
        assert protocol == "https:"
        assert ws_url == server.ws_url and ws_url.startswith("wss://")
        assert main_url == server.ws_url
        assert added == 3
        assert foreign == []
    finally:
        driver.close()

    async def still_serves() -> int:
        async with tether.aio.connect(server.ws_url, ssl=servers.client_ctx, token=TOKEN) as peer:
            return int(await peer.root.add(1, 2))

    assert servers.runner.run(still_serves()) == 3
