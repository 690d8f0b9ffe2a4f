"""Fixtures for the browser peer: a native web server, headless Chromium, booted pages.

* ``web`` (session): :func:`tether.web.serve_web` on its own event loop in a thread, with a
  :class:`services.Native` root per connection and a :class:`services.Hub` shared by all.
* ``browser`` (module): Debian's Chromium through Playwright's sync API (``executable_path``;
  never ``playwright install``).
* ``page`` (module): one page with Pyodide booted once (``?connect=0``), behind a route guard
  that aborts and records every request not to 127.0.0.1; tests assert the record is empty.

Missing Chromium, Playwright, aiohttp or the Pyodide cache skips these tests with a loud
reason, except under ``CI=true``, where it fails them. Fetch Pyodide with
``scripts/fetch_pyodide.sh``; install Chromium with ``apt-get install chromium``.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tether_demo.headless import CHROMIUM, CHROMIUM_ARGS, host_guard

from .services import Hub, Native

BOOT_TIMEOUT_MS = 60_000


def unavailable(reason: str) -> None:
    """Skip loudly, or fail when CI=true (CI must run the browser tests)."""
    message = f"BROWSER TESTS NOT RUN: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true requires them)", pytrace=False)
    pytest.skip(message)


def pyodide_or_skip() -> Path:
    """The Pyodide folder the page servers use, after checking that ``tether.web`` (aiohttp)
    imports; :func:`unavailable` when either is missing."""
    try:
        import tether.web
    except ImportError as exc:
        unavailable(f"{exc}")
    from tether.exceptions import UsageError

    try:
        return tether.web.find_pyodide()
    except UsageError as exc:
        unavailable(str(exc))
        raise  # unavailable() always raises; this tells type checkers so


class LoopThread:
    """An asyncio loop running in a daemon thread; ``run(coro)`` waits for its result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="web-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Web:
    """The native side: the server, its loop, the hub and the Native roots of connections."""

    def __init__(self, runner: LoopThread, server: Any, hub: Hub, echo_url: str) -> None:
        self.runner = runner
        self.server = server
        self.hub = hub
        self.echo_url = echo_url

    @property
    def url(self) -> str:
        return str(self.server.url)

    def peers(self) -> list[Any]:
        return list(self.server.peers)

    def wait_for_peer(self, before: set[Any], timeout: float = 10.0) -> Any:
        """The server-side AsyncPeer of a connection that is not in ``before``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = [p for p in self.server.peers if p not in before]
            if new:
                return new[0]
            time.sleep(0.02)
        raise AssertionError(f"no new connection within {timeout} s")


@pytest.fixture(scope="session")
def web() -> Iterator[Web]:
    pyodide_dir = pyodide_or_skip()
    import tether.web
    runner = LoopThread()
    hub = Hub()

    async def start() -> tuple[Any, Any, str]:
        from aiohttp import WSMsgType, web

        server = await tether.web.serve_web(
            lambda peer: Native(hub, peer), port=0, pyodide_dir=pyodide_dir, send_tracebacks=True
        )

        async def echo(request: Any) -> Any:  # a raw echo endpoint, to compare round-trip rates
            ws = web.WebSocketResponse(compress=False, max_msg_size=2**24)
            await ws.prepare(request)
            async for msg in ws:
                if msg.type is WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
            return ws

        app = web.Application()
        app.router.add_get("/echo", echo)
        echo_runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await echo_runner.setup()
        site = web.TCPSite(echo_runner, "127.0.0.1", 0)
        await site.start()
        port = echo_runner.addresses[0][1]
        return server, echo_runner, f"ws://127.0.0.1:{port}/echo"

    server, echo_runner, echo_url = runner.run(start())
    try:
        yield Web(runner, server, hub, echo_url)
    finally:
        runner.run(server.close())
        runner.run(echo_runner.cleanup())
        runner.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, per module: Playwright's sync API keeps an event loop set on this thread while
    it runs, which would break asyncio tests (pytest-asyncio) that run later in the session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the Python package playwright is missing (pip install playwright==1.65.2)")
    if not os.path.exists(CHROMIUM):
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set TETHER_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class PageDriver:
    """A booted page: ``run(code)`` runs Python in it through ``runPythonAsync`` and returns
    the JSON-decoded value of the code's last expression (a ``json.dumps(...)`` string)."""

    def __init__(self, context: Any, page: Any, foreign: list[str], console: list[str]) -> None:
        self.context = context
        self.page = page
        self.foreign = foreign
        self.console = console
        self.boot: dict[str, Any] = {}
        self.boot_seconds = 0.0

    def open(self, url: str) -> PageDriver:
        started = time.monotonic()
        self.page.goto(url)
        self.boot = self.page.evaluate("window.tetherReady")
        self.boot_seconds = time.monotonic() - started
        return self

    def run(self, code: str) -> Any:
        result = self.page.evaluate("code => pyodide.runPythonAsync(code)", code)
        return json.loads(result) if isinstance(result, str) else result

    def close(self) -> None:
        self.context.close()


def _fresh_page(browser: Any) -> PageDriver:
    context = browser.new_context()
    context.set_default_timeout(BOOT_TIMEOUT_MS)
    foreign: list[str] = []
    console: list[str] = []
    context.route("**/*", host_guard(foreign))
    page = context.new_page()
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    return PageDriver(context, page, foreign, console)


def new_page(browser: Any, url: str) -> PageDriver:
    """A page booted at ``url``. A renderer that crashes while booting (Chromium's "Target
    crashed": seen once in a CI run, in a page that had passed hundreds of boots) gets one more
    try in a fresh context, with a warning that names it; a second crash fails the test."""
    driver = _fresh_page(browser)
    try:
        return driver.open(url)
    except Exception as error:
        if "Target crashed" not in str(error):
            raise
        driver.context.close()
        warnings.warn(
            f"Chromium's renderer crashed booting {url}; booting once more in a fresh context. "
            f"The page's console before the crash: {driver.console[-20:]}",
            stacklevel=2,
        )
        return _fresh_page(browser).open(url)


@pytest.fixture(scope="module")
def page(browser: Any, web: Web) -> Iterator[PageDriver]:
    """One page per test module, booted without connecting (tests connect themselves)."""
    driver = new_page(browser, web.url + "?connect=0")
    try:
        yield driver
    finally:
        driver.close()
    assert driver.foreign == [], f"the page tried to reach other hosts: {driver.foreign}"
