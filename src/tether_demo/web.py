"""The browser demo of ``make demo``: this process and a web page message each other's objects.

``python -m tether_demo`` serves ``demo.html`` on http://127.0.0.1:8765/ (the page and the
Tether WebSocket on one port, see :mod:`tether.web`), with this package shipped to the page
(``serve_web(..., packages=[tether_demo])``). The page boots Python (Pyodide) and runs its
program, :mod:`tether_demo.page` (its ``<meta name="tether-main">``), which connects back
exposing the DOM and a few methods of its own. Each page that connects gets a
:class:`Library` as the native side's root, and asks for a scripted :class:`Conversation`:

1. the native side edits the page through a proxy to ``js.document``, and reads it back;
2. the page calls native objects (a method, a list by value, an object by reference);
3. a nested call: native -> page -> native -> page -> native -> page, each waiting for the next;
4. remote errors both ways, with the remote traceback (both sides ask for debugging, so a
   remote error's traceback shows the other side's frames as frames).

Both sides trace every message they send and receive (:class:`tether.trace.Trace`): the native
side prints its trace in the terminal, the page lists its own in the page. Without a display
the demo runs the page itself in headless Chromium (Playwright, Debian's ``/usr/bin/chromium``),
prints the transcript, and keeps serving for anyone who opens the URL. ``aiohttp`` and
``playwright`` are imported when used.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tether_demo
from tether.exceptions import ConnectionLost, RemoteError, UsageError
from tether.trace import Entry, Trace, exception_text, without_tether_frames

from . import UNTRACED
from .headless import CHROMIUM, CHROMIUM_ARGS, async_host_guard

DEFAULT_PORT = 8765
PAGE = Path(__file__).with_name("demo.html")
HEADLESS_TIMEOUT = 75.0  # seconds for Chromium to start, boot Pyodide and finish the conversation

# -- the native side ----------------------------------------------------------------------------


class Counter:
    """Travels by reference: the page gets a proxy and increments the native object."""

    def __init__(self) -> None:
        self.count = 0

    def increment(self, by: int = 1) -> int:
        self.count += by
        return self.count


class Library:
    """The native root each page sees (one per connection)."""

    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation
        self.shelf = {"SICP": "Abelson & Sussman", "Smalltalk-80": "Goldberg & Robson"}

    def add(self, a: Any, b: Any) -> Any:
        return a + b

    def titles(self) -> list[str]:
        return sorted(self.shelf)

    def author(self, title: str) -> str:
        return self.shelf[title]  # a KeyError travels back to the caller, with this traceback

    def new_counter(self) -> Counter:
        return Counter()

    def ping(self, n: int, other: Any) -> int:
        """One hop of the nested call: runs on a worker thread, blocks on the page's answer."""
        self.conversation.say(f"native: ping({n}) runs on {threading.current_thread().name}")
        return 0 if n == 0 else 1 + other.ping(n - 1, self)

    def converse(self) -> str:
        """Start the scripted conversation with this page: the page asks once it is connected,
        and again from its button."""
        return "started" if self.conversation.start() else "already running"


class Terminal:
    """The native side's transcript: one line at a time, from any thread."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()
        try:
            "→←—".encode(self.stream.encoding or "ascii")
            self.arrows, self.dash = {"sent": "→", "received": "←"}, "—"
        except (UnicodeEncodeError, LookupError):
            self.arrows, self.dash = {"sent": "->", "received": "<-"}, "-"

    def line(self, text: str = "") -> None:
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def message(self, entry: Entry, tag: str = "") -> None:
        arrow = self.arrows[entry.direction]
        self.line(f"{tag}      {'  ' * entry.depth}{arrow} {entry.exchange:<4} {entry.text}")


class Conversation:
    """One page's connection: its trace, its :class:`Library`, and the scripted conversation."""

    def __init__(self, demo: Demo, peer: Any, number: int) -> None:
        self.demo = demo
        self.peer = peer
        self.number = number
        self.tag = "" if number == 1 else f"[page {number}]"
        self.say(f"page {number} connected ({peer.url}); the native side's view of each message:")
        self.trace = Trace(peer.session, "native", "page", self._message, quiet=UNTRACED)
        self.library = self.trace.name(Library(self), "library")
        self.page: Any = None
        self._running = threading.Lock()

    def _message(self, entry: Entry) -> None:
        self.demo.terminal.message(entry, self.tag)

    def say(self, text: str) -> None:
        self.demo.terminal.line(f"{self.tag}   {text}" if text else "")

    def start(self) -> bool:
        """Run the conversation in a thread (the sync face blocks); False if it is running."""
        if not self._running.acquire(blocking=False):
            return False
        threading.Thread(target=self._run, name=f"conversation-{self.number}", daemon=True).start()
        return True

    def _run(self) -> None:
        ok = False
        try:
            self.converse()
            ok = True
        except ConnectionLost as exc:
            self.say(f"page {self.number} went away: {exc}")
        except Exception as exc:
            import traceback

            self.say(f"the conversation with page {self.number} failed: {exception_text(exc)}")
            for line in traceback.format_exc().rstrip().splitlines():
                self.say(f"  {line}")
        finally:
            self._running.release()
            self.demo.finished(self.number, ok)

    # The conversation, as the native side writes it: plain code on the sync face.

    def heading(self, text: str) -> None:
        self.say("")
        self.say(text)
        self.page.note(text, "heading")

    def code(self, text: str) -> None:
        self.say(f"native> {text}")
        self.page.note(f"native> {text}", "code")

    def result(self, text: str, to_page: bool = True) -> None:
        self.say(f"  {text}")
        if to_page:
            self.page.note(text, "result")

    def converse(self) -> None:
        trace = self.trace
        page = self.page = trace.name(self.peer.root, "page")
        info = page.info()
        pause = float(page.pace())
        browser = "headless Chromium" if "Headless" in info["user_agent"] else info["user_agent"]
        self.result(
            f"the page runs Python {info['python']} in Pyodide {info['pyodide']} ({browser}), "
            f"JSPI {'available' if info['jspi'] else 'not available'}"
        )

        self.heading("1. The native side edits the page through a proxy to js.document")
        self.code("document = page.document")
        document = trace.name(page.document, "document")
        self.code("document.title = 'Edited by the native peer'")
        document.title = "Edited by the native peer"
        self.code("edits = document.getElementById('edits')")
        edits = trace.name(document.getElementById("edits"), "edits")
        for text in ("a <li> made by the native process", "its text set through a proxy"):
            time.sleep(pause)
            self.code(f"item = document.createElement('li'); item.textContent = {text!r}; edits.appendChild(item)")
            item = trace.name(document.createElement("li"), "item")
            item.textContent = text
            edits.appendChild(item)
        time.sleep(pause)
        self.code("document.title, edits.childElementCount, edits.lastElementChild.textContent")
        read_back = (document.title, edits.childElementCount, edits.lastElementChild.textContent)
        self.result(f"read back: {read_back!r}")

        time.sleep(pause)
        self.heading("2. The page calls native objects")
        self.code("page.explore()   # page code calls the native library through its own proxy, peer.root")
        for line in page.explore():
            self.result(f"page> {line}", to_page=False)

        time.sleep(pause)
        self.heading("3. A nested call: native -> page -> native -> page -> native -> page")
        self.code("page.ping(4, library)   # each side calls the other back before answering")
        hops = page.ping(4, self.library)
        self.result(f"= {hops}: four nested calls, answered innermost first")

        time.sleep(pause)
        self.heading("4. Remote errors, both ways")
        self.code("page.look_up('Dune')   # the page calls library.author('Dune'): a KeyError natively")
        outcome = page.look_up("Dune")
        self.result(f"the page caught {outcome['caught']}, with the native traceback:", to_page=False)
        for line in without_tether_frames(outcome["remote_traceback"]).splitlines():
            self.say(f"    | {line}")
        if outcome.get("traceback"):
            self.result("and traceback.print_exception(exc) in the page reads like a local one (debug=True):", to_page=False)
            for line in without_tether_frames(outcome["traceback"]).splitlines():
                self.say(f"    | {line}")
        time.sleep(pause)
        self.code("document.querySelector('#')   # not a CSS selector: JavaScript throws in the page")
        try:
            document.querySelector("#")
        except RemoteError as exc:
            self.result(f"the native side caught RemoteError: {exc.remote_type}: {exc.message}")
            self.say("  with the page's traceback:")
            for line in without_tether_frames(exc.remote_traceback).splitlines():
                self.say(f"    | {line}")
        else:
            raise AssertionError("document.querySelector('#') did not raise")
        page.note(
            "Done. Now try this page's controls; the terminal shows the native side's view.",
            "heading",
        )
        self.say("")
        self.say(f"conversation with page {self.number} done; connection stats: {self.peer.stats()}")


class Demo:
    """The native side of the demo: a :class:`Conversation` per page that connects."""

    def __init__(self, terminal: Terminal) -> None:
        self.terminal = terminal
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Queue[tuple[int, bool]] = asyncio.Queue()
        self._count = 0

    def root_for(self, peer: Any) -> Library:
        """The root factory of the web server: called with each new connection. The page
        calls ``library.converse()`` once connected; other clients just get the Library."""
        self._count += 1
        return Conversation(self, peer, self._count).library

    def finished(self, number: int, ok: bool) -> None:
        """Called from a conversation's thread."""
        try:
            self.loop.call_soon_threadsafe(self.done.put_nowait, (number, ok))
        except RuntimeError:
            pass  # the loop is closed


async def run_headless(url: str, demo: Demo) -> bool | None:
    """Open the page in headless Chromium and wait for its conversation. ``None``: no browser."""
    say = demo.terminal.line
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        say("tether demo: cannot run the page itself: the Python package playwright is missing")
        say("  (pip install playwright==1.65.2; it drives Debian's Chromium, no browser download)")
        return None
    if not os.path.exists(CHROMIUM):
        say(f"tether demo: cannot run the page itself: no Chromium at {CHROMIUM}")
        say("  (apt-get install chromium, or set TETHER_CHROMIUM to a Chromium or Chrome binary)")
        return None
    host = urlsplit(url).hostname
    foreign: list[str] = []
    guard = async_host_guard(foreign, host or "127.0.0.1")  # the page must need nothing else

    def console(message: Any) -> None:
        if message.type in ("error", "warning"):
            say(f"  [page console {message.type}] {message.text}")

    say(f"running the page in headless Chromium ({CHROMIUM}); loading Python in it...")
    started = time.monotonic()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context()
            await context.route("**/*", guard)
            page = await context.new_page()
            page.on("console", console)
            page.on("pageerror", lambda error: say(f"  [page error] {error}"))
            await page.goto(url + "?pace=0")
            await page.evaluate("window.tetherReady")  # Pyodide booted, tether installed, connected
            _, ok = await demo.done.get()
        finally:
            await browser.close()
    if foreign:
        say(f"tether demo: the page tried to reach other hosts (blocked): {foreign}")
        ok = False
    say(f"headless Chromium closed ({time.monotonic() - started:.1f} s)")
    return ok


def choose_headless(headless: bool, no_browser: bool, once: bool) -> bool:
    """Run the page in headless Chromium: when asked to (``--once`` asks too), or on a machine
    with no display (Linux without ``DISPLAY`` or ``WAYLAND_DISPLAY``), unless told not to."""
    if no_browser:
        return False
    if headless or once:
        return True
    if sys.platform in ("darwin", "win32"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


async def serve_demo(port: int, headless: bool, no_browser: bool, once: bool) -> int:
    """Serve the demo page; run it headless if asked (or with no display); serve on unless once.

    Exit status: 0; 1 when the scripted conversation failed or the port is taken; 2 when
    something the demo needs is missing (with ``--once``, Chromium or Playwright too); 130
    when stopped by a signal before the scripted conversation finished.
    """
    terminal = Terminal()
    say = terminal.line
    try:
        from tether.web import serve_web
    except ImportError as exc:
        say(f"tether demo: the browser demo needs aiohttp (pip install 'tether[web]'): {exc}")
        say("  python -m tether demo --native runs the native demo (two processes) without it")
        return 2

    demo = Demo(terminal)
    try:
        server = serve_web(
            demo.root_for, "127.0.0.1", port, send_tracebacks=True, debug=True, index=PAGE, packages=[tether_demo]
        )
    except UsageError as exc:
        say(f"tether demo: {exc}")
        say("  python -m tether demo --native runs the native demo (two processes) without it")
        return 2
    try:
        await server.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            say(f"tether demo: port {port} on 127.0.0.1 is already in use (another demo running?);")
            say("  choose another with --port N, or --port 0 for any free port")
        else:
            say(f"tether demo: cannot listen on 127.0.0.1:{port}: {exc}")
        await server.close()
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        say(f"tether demo: the native peer serves the page on {server.url} and Tether on {server.ws_url}")
        sent, received = terminal.arrows["sent"], terminal.arrows["received"]
        say(f"transcript: {sent} a message the native side sends, {received} one it receives; N7 is the native")
        say("  side's 7th call, P7 the page's; an answer repeats its call's label; indented: calls within calls")
        status = 0
        if choose_headless(headless, no_browser, once):
            stopped, ok = await _until(stop, asyncio.wait_for(run_headless(server.url, demo), HEADLESS_TIMEOUT))
            if stopped:
                return 130
            if isinstance(ok, TimeoutError):
                say(f"tether demo: the headless page did not finish within {HEADLESS_TIMEOUT:.0f} s")
            elif isinstance(ok, BaseException):
                say(f"tether demo: running the page in headless Chromium failed: {exception_text(ok)}")
            elif ok is None:
                say(f"  open {server.url} in a browser to see the demo")
            if ok is None:  # no browser to run the page in: with --once, nothing was shown
                status = 2 if once else 0
            elif ok is not True:
                status = 1
        elif once:
            say(f"waiting for a page to connect: open {server.url} in a browser")
            stopped, done = await _until(stop, demo.done.get())
            status = 130 if stopped else 0 if isinstance(done, tuple) and done[1] else 1
        if once:
            return status
        say("")
        say(f"serving on {server.url} {terminal.dash} open it in a browser; Ctrl-C to stop")
        await stop.wait()
        say("tether demo: stopping")
        return status
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await server.close()


async def _until(stop: asyncio.Event, awaitable: Any) -> tuple[bool, Any]:
    """Await ``awaitable`` unless ``stop`` is set first: (stopped, result or exception)."""
    task = asyncio.ensure_future(awaitable)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not task.done():
        task.cancel()
        try:
            await task
        except BaseException:
            pass
        return True, None
    try:
        return False, task.result()
    except Exception as exc:
        return False, exc


def main(port: int = DEFAULT_PORT, headless: bool = False, no_browser: bool = False, once: bool = False) -> int:
    return asyncio.run(serve_demo(port, headless, no_browser, once))
