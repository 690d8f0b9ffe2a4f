"""The browser demo of ``make demo``: this process and a web page message each other's objects.

``python -m tether demo`` serves ``web/static/demo.html`` on http://127.0.0.1:8765/ (the page
and the Tether WebSocket on one port, see :mod:`tether.web`). The page boots Python (Pyodide)
and runs its program, ``web/static/demo_page.py`` (through :func:`page_main`), which connects
back exposing the DOM and a few methods of its own. Each page that connects gets a
:class:`Library` as the native side's root, and asks for a scripted :class:`Conversation`:

1. the native side edits the page through a proxy to ``js.document``, and reads it back;
2. the page calls native objects (a method, a list by value, an object by reference);
3. a nested call: native -> page -> native -> page -> native -> page, each waiting for the next;
4. remote errors both ways, with the remote traceback.

Both sides trace every message they send and receive (:class:`Trace`): the native side prints
its trace in the terminal, the page lists its own in the page. Without a display the demo
runs the page itself in headless Chromium (Playwright, Debian's ``/usr/bin/chromium``), prints
the transcript, and keeps serving for anyone who opens the URL.

This module is also imported inside the page (the whole ``tether`` package is), so only the
standard library is imported at module level: ``aiohttp`` and ``playwright`` natively, when
used, and ``js`` never.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from .exceptions import ConnectionLost, RemoteError
from .headless import CHROMIUM, CHROMIUM_ARGS, async_host_guard
from .proxy import _state, is_proxy

DEFAULT_PORT = 8765
PAGE = Path(__file__).with_name("web") / "static" / "demo.html"
HEADLESS_TIMEOUT = 75.0  # seconds for Chromium to start, boot Pyodide and finish the conversation

# -- the message trace (both sides) ---------------------------------------------------------------


class Entry(NamedTuple):
    """One traced message: ``sent`` or ``received`` by this side."""

    direction: str  # "sent" | "received"
    exchange: str  # "N7": the native side's 7th call (its answer has the same label); "" one-way
    kind: str  # "call" | "answer" | "error"
    text: str
    depth: int  # how many calls were waiting for answers: nesting
    traceback: str | None = None


# Messages that are the demo's own commentary (section titles shown in the page) and the
# garbage collector's batched releases: not part of the conversation, so not traced.
QUIET = frozenset({"note", "release"})


class Trace:
    """Readable :class:`Entry` records of every message a session sends and receives.

    It wraps the session's protocol object (``encode_call``, ``encode_answer``,
    ``encode_error`` and ``receive``), so it must be made before the session reads its first
    frame. ``me`` and ``peer`` name the two sides; a call is labelled with the caller's initial
    and how many calls it has made (traced ones: both sides skip the same ones), so both
    sides give it the same label, and so does its answer. Values are shown without sending a
    single message: a proxy by the name given with :meth:`name`, by the expression that
    fetched it, or by its class and key.
    """

    def __init__(self, session: Any, me: str, peer: str, emit: Callable[[Entry], None]) -> None:
        self.protocol = protocol = session.protocol
        self.emit = emit
        self._me, self._peer = me[:1].upper(), peer[:1].upper()
        self._calls = {"sent": 0, "received": 0}
        self._labels: dict[bytes, str] = {}  # exchange id -> label, until answered
        self._open: set[bytes] = set()  # calls sent or received, not answered yet
        self._quiet: set[bytes] = set()
        self._fetches: dict[bytes, str] = {}  # calls sent: answer proxies are named after them
        self._remote: dict[int, str] = {}  # the peer's object key -> label
        self._local: dict[int, tuple[object, str]] = {}  # id -> (object, label)
        self._lock = threading.Lock()
        encode_call, encode_answer, encode_error = protocol.encode_call, protocol.encode_answer, protocol.encode_error
        receive = protocol.receive

        def traced_call(
            receiver: int,
            selector: str,
            args: Any,
            kwargs: Any = None,
            one_way: bool = False,
            on_behalf: bytes | None = None,
        ) -> tuple[bytes | None, bytes]:
            exchange_id, frame = encode_call(receiver, selector, args, kwargs, one_way, on_behalf)
            self._sent_call(exchange_id, receiver, selector, args, kwargs or {})
            return exchange_id, frame

        def traced_answer(exchange_id: bytes, value: object) -> bytes:
            frame = encode_answer(exchange_id, value)
            if frame[:4] == _ANSWER_TAG:  # else encode_error ran (and traced) instead
                self._answer("sent", exchange_id, "answer", f"= {self.show(value)}")
            return frame

        def traced_error(exchange_id: bytes, exc: BaseException) -> bytes:
            self._answer("sent", exchange_id, "error", f"raised {_exception_text(exc)}")
            return encode_error(exchange_id, exc)  # type: ignore[no-any-return]

        def traced_receive(data: bytes) -> list[Any]:
            events = receive(data)
            for event in events:
                self._received(event)
            return events  # type: ignore[no-any-return]

        setattr(protocol, "encode_call", traced_call)  # noqa: B010
        setattr(protocol, "encode_answer", traced_answer)  # noqa: B010
        setattr(protocol, "encode_error", traced_error)  # noqa: B010
        setattr(protocol, "receive", traced_receive)  # noqa: B010

    # -- naming -------------------------------------------------------------------------------

    def name(self, obj: Any, label: str) -> Any:
        """Show ``obj`` (a proxy or a local object) as ``label`` from now on; return it."""
        if is_proxy(obj):
            self._remote[_state(obj).key] = label
        else:
            self._local[id(obj)] = (obj, label)
        return obj

    def label(self, obj: Any) -> str:
        if is_proxy(obj):
            state = _state(obj)
            known = self._remote.get(state.key)
            if known is None:
                name = state.info.qualname if state.info else "object"
                known = self._remote[state.key] = f"{name}#{state.key}"
            return known
        if obj is self.protocol.tether:
            return "tether"
        entry = self._local.get(id(obj))
        if entry is not None and entry[0] is obj:
            return entry[1]
        return _local_label(obj)

    def show(self, value: Any, depth: int = 0) -> str:
        """A short, readable form of ``value`` that sends no message."""
        if is_proxy(value):
            return f"<{self.label(value)}>"
        kind = type(value)
        if value is None or kind in (bool, int, float, complex):
            return repr(value)
        if kind is str:
            return repr(value if len(value) <= 60 else value[:57] + "...")
        if kind is bytes:
            return f"<{len(value)} bytes>"
        if kind in (list, tuple, set, frozenset, dict):
            if depth >= 2:
                return "[...]" if kind is list else "(...)" if kind is tuple else "{...}"
            items = list(value.items() if kind is dict else value)
            shown = [
                f"{self.show(k, depth + 1)}: {self.show(v, depth + 1)}" if kind is dict else self.show(k, depth + 1)
                for k, v in (items[:6] if kind is dict else [(i, None) for i in items[:6]])
            ]
            if len(items) > 6:
                shown.append(f"... {len(items) - 6} more")
            inner = ", ".join(shown)
            if kind is list:
                return f"[{inner}]"
            if kind is tuple:
                return f"({inner}{',' if len(items) == 1 else ''})"
            if kind is dict:
                return f"{{{inner}}}"
            return f"{kind.__name__}({{{inner}}})" if items else f"{kind.__name__}()"
        if isinstance(value, BaseException):
            return _exception_text(value)
        return f"<{self.label(value)}>"

    def call_text(self, receiver: str, selector: str, args: Any, kwargs: dict[str, Any]) -> str:
        if selector == "__getattribute__" and len(args) == 1 and not kwargs:
            return f"{receiver}.{args[0]}"
        if selector == "__setattr__" and len(args) == 2 and not kwargs:
            return f"{receiver}.{args[0]} = {self.show(args[1])}"
        shown = ", ".join([self.show(a) for a in args] + [f"{k}={self.show(v)}" for k, v in kwargs.items()])
        if selector == "__call__":
            return f"{receiver}({shown})"
        if selector == "__getitem__" and len(args) == 1:
            return f"{receiver}[{shown}]"
        return f"{receiver}.{selector}({shown})"

    # -- events ---------------------------------------------------------------------------------

    def _label_call(self, direction: str, exchange_id: bytes | None) -> str:
        self._calls[direction] += 1
        label = f"{self._me if direction == 'sent' else self._peer}{self._calls[direction]}"
        if exchange_id is not None:
            self._labels[exchange_id] = label
        return label

    def _sent_call(self, exchange_id: bytes | None, receiver: int, selector: str, args: Any, kwargs: Any) -> None:
        with self._lock:
            if selector in QUIET:
                if exchange_id is not None:
                    self._quiet.add(exchange_id)
                return
            tether = receiver == self.protocol.peer_tether_key
            target = "tether" if tether else self._remote.get(receiver, f"#{receiver}")
            text = self.call_text(target, selector, args, kwargs)
            depth = len(self._open)
            label = self._label_call("sent", exchange_id)
            if exchange_id is not None and not tether:
                self._open.add(exchange_id)
                if "<" not in text and len(text) <= 40:
                    self._fetches[exchange_id] = text
        self.emit(Entry("sent", label, "call", text, depth))

    def _answer(self, direction: str, exchange_id: bytes, kind: str, text: str, tb: str | None = None) -> None:
        with self._lock:
            if exchange_id in self._quiet:
                self._quiet.discard(exchange_id)
                return
            self._open.discard(exchange_id)
            depth = len(self._open)
            label = self._labels.pop(exchange_id, "?")
        self.emit(Entry(direction, label, kind, text, depth, tb))

    def _received(self, event: Any) -> None:
        from .protocol import AnswerReceived, ErrorReceived, Incoming

        kind = type(event)
        if kind is Incoming:
            message = event.message
            eid = message.exchange_id
            with self._lock:
                if message.selector in QUIET:
                    if eid is not None:
                        self._quiet.add(eid)
                    return
                text = self.call_text(self.label(message.receiver), message.selector, message.args, message.kwargs)
                depth = len(self._open)
                label = self._label_call("received", eid)
                if eid is not None and message.receiver is not self.protocol.tether:
                    self._open.add(eid)
            self.emit(Entry("received", label, "call", text, depth))
        elif kind is AnswerReceived:
            value = event.value
            fetched = self._fetches.pop(event.exchange_id, None)
            if fetched is not None and is_proxy(value) and _state(value).key not in self._remote:
                self._remote[_state(value).key] = fetched
            self._answer("received", event.exchange_id, "answer", f"= {self.show(value)}")
        elif kind is ErrorReceived:
            error = event.error
            self._fetches.pop(event.exchange_id, None)
            tb = getattr(error, "remote_traceback", None)
            tb = without_tether_frames(tb) if tb else None
            self._answer("received", event.exchange_id, "error", f"raised {_exception_text(error)}", tb)


_ANSWER_TAG = (0x2000001D).to_bytes(4, "big")


def without_tether_frames(traceback: str | None) -> str:
    """A remote traceback without the frames of Tether's runtime, and without ``^^^`` lines.

    Tether leaves its own frames out of the tracebacks it sends unless no other frame would
    remain, and the demo's code lives in the ``tether`` package, so here they come along.
    When the error was raised in Tether's code (a JavaScript error thrown by a call it made),
    the last frame stays: the call that raised.
    """
    if not traceback:
        return "(none)"
    head: list[str] = []
    frames: list[list[str]] = []
    tail: list[str] = []
    for line in traceback.rstrip().splitlines():
        if line.strip() and not line.strip().strip("^~"):
            continue
        if line.startswith('  File "'):
            frames.append([line])
        elif line.startswith("    ") and frames and not tail:
            frames[-1].append(line)
        elif frames:
            tail.append(line)
        else:
            head.append(line)

    def ours(frame: list[str]) -> bool:
        path = frame[0].split('"')[1].replace("\\", "/")
        return "/tether/" not in path or path.endswith(("/webdemo.py", "/demo_page.py"))

    kept = [frame for frame in frames if ours(frame)] or frames[-1:]
    return "\n".join(head + [line for frame in kept for line in frame] + tail)


def _exception_text(exc: BaseException) -> str:
    if isinstance(exc, RemoteError):
        return f"{exc.remote_type}: {exc.message}"
    text = str(exc) if not isinstance(exc, KeyError) else repr(exc.args[0]) if exc.args else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _local_label(obj: Any) -> str:
    """A name for a local object; for a JavaScript object (in the page) its id, tag or kind."""
    kind = type(obj)
    if kind.__module__.startswith("pyodide"):
        try:
            if str(obj.typeof) == "function":
                return str(obj.name)
            if getattr(obj, "id", None):
                return f"#{obj.id}"
            tag = getattr(obj, "tagName", None)
            if tag:
                return str(tag).lower()
            return str(obj.constructor.name)
        except Exception:
            return "JavaScript object"
    return getattr(obj, "__name__", None) or kind.__name__


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
        self.trace = Trace(peer.session, "native", "page", self._message)
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

            self.say(f"the conversation with page {self.number} failed: {_exception_text(exc)}")
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
        from .web import serve_web
    except ImportError as exc:
        say(f"tether demo: the browser demo needs aiohttp (pip install 'tether[web]'): {exc}")
        say("  python -m tether demo --native runs the native demo (two processes) without it")
        return 2
    from .exceptions import UsageError

    demo = Demo(terminal)
    try:
        server = serve_web(demo.root_for, "127.0.0.1", port, send_tracebacks=True, index=PAGE)
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
                say(f"tether demo: running the page in headless Chromium failed: {_exception_text(ok)}")
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


# -- the page side (runs in Pyodide) ------------------------------------------------------------


async def page_main() -> Any:
    """The demo page's entry point (its ``<meta name="tether-main">``): run ``demo_page.py``.

    The page's program is a module of its own, ``demo_page``, not part of ``tether``: the
    browser session tells the async face from the sync face by the first frame outside
    ``tether`` (see :func:`tether.browser.session.in_async_code`), so page code must not be
    a ``tether`` module.
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_page", PAGE.with_name("demo_page.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["demo_page"] = module
    spec.loader.exec_module(module)
    return await module.main()
