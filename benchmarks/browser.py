"""The browser section: round trips per second from a page (Pyodide in headless Chromium).

Playwright drives Debian's Chromium (``executable_path``, never ``playwright install``) as
``tests/browser/conftest.py`` does: one page, booted once from the ``web-tether`` server
(``tether.web.serve_web``, ``?connect=0``), behind a route guard that aborts and records every
request to a host other than 127.0.0.1. The page-side code is ``browser_page.py``; each
measurement runs one of its functions through ``pyodide.runPythonAsync``, which opens its own
connection, warms up and times ``n`` operations inside the page (``time.perf_counter`` there).

* raw: the page's own ``WebSocket`` against an aiohttp echo server (``web-echo``, the same
  WebSocket server as ``tether.web``): a 32-byte frame echoed one at a time from Python
  (``await recv()`` on a ``loop.create_future()`` that the ``message`` listener resolves: the
  browser recipe's asyncio style, and the baseline of the targets), the same with a plain
  ``asyncio.Future`` ("lean": one event-loop callback less per message in Pyodide), the same
  from JavaScript alone (no Python: the browser's floor), and pipelined from Python (200
  frames sent, then 200 read).
* Tether: ``await root.echo(1)`` one at a time against ``serve_web``'s default server (plain
  methods on worker threads, "web srv") and against ``serve_web(..., run_sync_in_threads=False)``
  ("web aio srv"); 200 calls at once with ``asyncio.gather``; ``root.echo(1)`` one at a time
  from a plain ``def`` (the sync face: each call blocks with JSPI).
* Diagnostic, after the rounds: event-loop callbacks (``WebLoop.call_later``, which
  ``call_soon`` uses: a browser task each) per sequential round trip; and where a sequential
  round trip's time goes (the page's send side, the wire and the server, the page's receive
  side: means, as the page's clock ticks in 100 µs) for the raw echo and both servers.

The section is skipped, with a line saying why, when Playwright, aiohttp, Chromium or the
Pyodide runtime is missing (see :func:`unavailable`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness import Measurement, Target, print_table, print_targets, run_rounds
from tether_demo.headless import CHROMIUM, CHROMIUM_ARGS, host_guard

KINDS = ["web-tether", "web-tether-aio", "web-echo"]
BATCH = 200  # frames per pipelined batch, calls per gathered batch
CALIBRATION_OPS = 200  # a page does about a thousand round trips per second: smaller rounds
PAGE_MODULE = "tether_bench_page"
PAGE_SOURCE = Path(__file__).resolve().parent / "browser_page.py"
BOOT_TIMEOUT_MS = 60_000
COLUMNS = ["x raw"]


class SectionError(RuntimeError):
    pass


def unavailable() -> str | None:
    """Why the section cannot run here (None: it can): Playwright, aiohttp, Chromium, Pyodide."""
    import importlib.util

    if importlib.util.find_spec("playwright") is None:
        return "the Python package playwright is missing (pip install playwright==1.65.2)"
    if importlib.util.find_spec("aiohttp") is None:
        return "aiohttp is missing (pip install 'tether[web]')"
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set TETHER_CHROMIUM)"
    import tether.web
    from tether.exceptions import UsageError

    try:
        tether.web.find_pyodide()
    except UsageError as exc:
        return str(exc)
    return None


class Page:
    """The booted page: ``run(code)`` runs Python in it (``runPythonAsync``) and returns the
    JSON-decoded value of the code's last expression (a ``json.dumps(...)`` string)."""

    def __init__(self, page: Any, foreign: list[str], console: list[str]) -> None:
        self.page = page
        self.foreign = foreign
        self.console = console
        self.boot: dict[str, Any] = {}
        self.boot_seconds = 0.0

    def open(self, url: str) -> None:
        """Load the page (booting Pyodide and tether), then install ``browser_page.py``."""
        started = time.monotonic()
        self.page.goto(url + "?connect=0")
        self.boot = self.page.evaluate("window.tetherReady")
        self.boot_seconds = time.monotonic() - started
        site = self.run("import json, site\njson.dumps(site.getsitepackages()[0])")
        self.page.evaluate(
            "([path, text]) => pyodide.FS.writeFile(path, text)",
            [f"{site}/{PAGE_MODULE}.py", PAGE_SOURCE.read_text()],
        )
        self.run(f"import importlib\nimportlib.invalidate_caches()\nimport {PAGE_MODULE}\n'null'")

    def run(self, code: str) -> Any:
        return json.loads(self.page.evaluate("code => pyodide.runPythonAsync(code)", code))

    def call(self, function: str, *args: Any) -> Any:
        """``await tether_bench_page.function(*args)`` in the page; its JSON-able result."""
        arguments = ", ".join(repr(arg) for arg in args)
        return self.run(
            f"import json, {PAGE_MODULE}\njson.dumps(await {PAGE_MODULE}.{function}({arguments}))"
        )

    def js_echo(self, url: str, n: int, warmup: int = 50) -> float:
        """Sequential 32-byte echoes from JavaScript alone (no Python): the browser's floor."""
        script = """async ([url, n, warmup]) => {
            const ws = new WebSocket(url);
            ws.binaryType = "arraybuffer";
            await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
            const payload = new Uint8Array(32).map((_, i) => i);
            let wake = null;
            ws.onmessage = () => wake();
            const once = () => new Promise((resolve) => { wake = resolve; ws.send(payload); });
            for (let i = 0; i < warmup; i++) await once();
            const started = performance.now();
            for (let i = 0; i < n; i++) await once();
            const rate = n / ((performance.now() - started) / 1000);
            ws.close();
            return rate;
        }"""
        return float(self.page.evaluate(script, [url, n, warmup]))


@contextlib.contextmanager
def booted_page(url: str) -> Iterator[Page]:
    """Chromium with one page booted from ``url`` (Pyodide and tether, not connected), the
    benchmark's page code installed, and the route guard; closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        except Exception as exc:
            raise SectionError(f"Chromium did not start: {type(exc).__name__}: {exc}") from None
        try:
            context = browser.new_context()
            context.set_default_timeout(BOOT_TIMEOUT_MS)
            foreign: list[str] = []
            console: list[str] = []
            context.route("**/*", host_guard(foreign))
            tab = context.new_page()
            tab.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page = Page(tab, foreign, console)
            try:
                page.open(url)
            except Exception as exc:
                raise SectionError(f"the page did not boot: {type(exc).__name__}: {exc}") from None
            yield page
        finally:
            browser.close()


@dataclass
class Result:
    rows: list[Measurement]
    boot: dict[str, Any]
    boot_seconds: float
    foreign: list[str]
    callbacks: dict[str, float] = field(default_factory=dict)
    split: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def build_measurements(page: Page, addresses: dict[str, str], jspi: bool) -> list[Measurement]:
    """The rows of the table, in order."""
    web, web_aio, echo = addresses["web-tether"], addresses["web-tether-aio"], addresses["web-echo"]
    ws, ws_aio = ws_url(web), ws_url(web_aio)

    def page_call(function: str, *args: Any) -> Callable[[int], float]:
        return lambda n: float(page.call(function, *args[:1], n, *args[1:]))

    specs: list[tuple[str, str, Callable[[int], float], str]] = [
        # key, label, run(n), the raw row of "x raw"
        ("b-raw", "raw page WebSocket: asyncio echo, 32 B", page_call("raw_echo", echo), "b-raw"),
        (
            "b-raw-lean",
            "raw page WebSocket: lean asyncio echo, 32 B",
            page_call("raw_echo", echo, True),
            "b-raw",
        ),
        ("b-raw-js", "raw page WebSocket: JS-only echo, 32 B", lambda n: page.js_echo(echo, n), "b-raw"),
        (
            "b-raw-pipe",
            f"raw page WebSocket: pipelined ({BATCH})",
            page_call("raw_pipelined", echo, BATCH),
            "b-raw-pipe",
        ),
        ("b-async", "tether: await root.echo(1) [web srv]", page_call("tether_calls", ws), "b-raw"),
        (
            "b-async-aio",
            "tether: await root.echo(1) [web aio srv]",
            page_call("tether_calls", ws_aio),
            "b-raw",
        ),
        (
            "b-gather",
            f"tether: gathered {BATCH} [web srv]",
            page_call("tether_gathered", ws, BATCH),
            "b-raw-pipe",
        ),
    ]
    if jspi:
        specs.append(
            ("b-jspi", "tether: sync face echo(1), JSPI [web srv]", page_call("tether_jspi", ws), "b-raw")
        )
    return [
        Measurement(key, label, run, {"x raw": raw}, calibration_ops=CALIBRATION_OPS)
        for key, label, run, raw in specs
    ]


def ws_url(page_url: str) -> str:
    """The Tether endpoint of a ``serve_web`` server from its page URL."""
    parts = urlsplit(page_url)
    return f"ws://{parts.netloc}/ws"


def run_section(addresses: dict[str, str], rounds: int, seconds: float) -> Result:
    """Boot the page, run the rounds, then the loop-callback diagnostic."""
    with booted_page(addresses["web-tether"]) as page:
        jspi = bool(page.boot.get("jspi"))
        rows = build_measurements(page, addresses, jspi)
        run_rounds(rows, rounds, seconds)
        result = Result(rows, page.boot, page.boot_seconds, page.foreign)
        if not jspi:
            result.notes.append("no sync-face row: this Chromium has no JSPI (WebAssembly.Suspending)")
        try:
            result.callbacks = page.call(
                "loop_callbacks", ws_url(addresses["web-tether"]), addresses["web-echo"]
            )
        except Exception as exc:
            result.notes.append(f"loop-callback diagnostic failed: {type(exc).__name__}: {exc}")
        try:
            tether_urls = {"web srv": ws_url(addresses["web-tether"]), "web aio srv": ws_url(addresses["web-tether-aio"])}
            result.split = page.call("round_trip_split", tether_urls, addresses["web-echo"])
        except Exception as exc:
            result.notes.append(f"round-trip split diagnostic failed: {type(exc).__name__}: {exc}")
        errors = [line for line in page.console if line.startswith(("error", "warning"))]
        if errors:
            result.notes.append(f"page console ({len(errors)} errors/warnings), first: {errors[0][:160]}")
    return result


TARGETS = [
    Target("serve_web's default (threads) >= 0.9x raw page echo (issue 11)", "b-async", "b-raw", 0.9),
    Target("sequential async >= 0.7x raw page echo [web srv]", "b-async", "b-raw", 0.7),
    Target("sequential async >= 0.7x raw page echo [web aio srv]", "b-async-aio", "b-raw", 0.7),
]


def print_section(result: Result) -> None:
    boot = result.boot
    print(
        f"  page: Pyodide {boot.get('version', '?')}, JSPI {'yes' if boot.get('jspi') else 'no'}, "
        f"booted in {result.boot_seconds:.1f} s; Chromium at {CHROMIUM}"
    )
    print()
    print_table(result.rows, COLUMNS)
    print()
    print("spread: (fastest - slowest round) / median, the noise of the row. Timed inside the page.")
    print("x raw: median / median of the page's raw asyncio echo (pipelined frames for gathered")
    print("  calls): the share of the page's own WebSocket round trip that survives Tether.")
    callbacks = result.callbacks
    if callbacks:
        jspi = f", tether sync face {callbacks['jspi']:.1f}" if "jspi" in callbacks else ""
        print(
            "event-loop callbacks (WebLoop.call_later) per sequential round trip (diagnostic): "
            f"tether async {callbacks['tether']:.1f}{jspi}, raw echo {callbacks['raw']:.1f}"
        )
    if result.split:
        print("where a sequential round trip goes, mean µs (diagnostic; the page's clock ticks in 100 µs):")
        print(f"  {'':<24}{'page send':>10}{'wire+server':>13}{'page receive':>14}{'total':>8}")
        for label, (sent, away, back) in result.split.items():
            name = "raw echo" if label == "raw" else f"tether [{label}]"
            print(f"  {name:<24}{sent:>10.0f}{away:>13.0f}{back:>14.0f}{sent + away + back:>8.0f}")
    for note in result.notes:
        print(f"note: {note}")
    print()
    print_targets(result.rows, TARGETS)
    if result.foreign:
        print(f"  ERROR  the page tried to reach other hosts: {result.foreign}")
