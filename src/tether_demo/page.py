"""The Python program of the demo page (``demo.html``), run in the browser by Pyodide: the
page names :func:`main` in its ``<meta name="tether-main">``, and the server ships this package
to the page (``serve_web(..., packages=[tether_demo])``).

It connects back to the native peer that served the page, exposing a :class:`DemoPage` (the
DOM, plus the methods below), and lists every message of the connection in the page. Its
methods use the async face (``await library.add(3, 4)``), which works in every browser; plain
``def`` code could block for answers instead, through JSPI, where the browser has it.

The native side's half is :mod:`tether_demo.web`.
"""

from __future__ import annotations

import asyncio
import traceback
from typing import Any
from urllib.parse import parse_qs

import js

import tether
from tether.aio.session import open_async_session
from tether.browser import page as tether_page
from tether.browser.session import BrowserSession, page_ws_url
from tether.browser.transport import BrowserTransport
from tether.trace import Entry, Trace

from . import UNTRACED


class PageLog:
    """The conversation panel (``#log``): the traced messages and the native side's notes."""

    def __init__(self, document: Any) -> None:
        self.document = document
        self.list = document.getElementById("log")

    def _add(self, css: str, *parts: tuple[str, str]) -> Any:
        item = self.document.createElement("li")
        item.className = css
        for part_css, text in parts:
            span = self.document.createElement("span")
            span.className = part_css
            span.textContent = text
            item.appendChild(span)
        self.list.appendChild(item)
        panel = self.list.parentElement
        panel.scrollTop = panel.scrollHeight
        return item

    def message(self, entry: Entry) -> None:
        who = "page → native" if entry.direction == "sent" else "native → page"
        item = self._add(
            f"msg {entry.direction} {entry.kind}", ("who", who), ("xid", entry.exchange), ("text", entry.text)
        )
        item.style.paddingLeft = f"{0.5 + 1.2 * entry.depth}em"
        if entry.traceback:
            details = self.document.createElement("details")
            summary = self.document.createElement("summary")
            summary.textContent = "remote traceback"
            pre = self.document.createElement("pre")
            pre.textContent = entry.traceback
            details.appendChild(summary)
            details.appendChild(pre)
            item.appendChild(details)

    def note(self, text: str, kind: str = "note") -> None:
        self._add(f"note {kind}", ("text", text))


class DemoPage(tether_page.Page):
    """The page's root object: ``document``, ``window``, ``info()`` and the demo's methods."""

    def __init__(self, log: PageLog) -> None:
        super().__init__()
        self.log_panel = log
        self.peer: Any = None  # the connection, once open: self.peer.root is the native library
        self._tasks: set[asyncio.Future[Any]] = set()
        self._listeners: list[Any] = []

    def pace(self) -> float:
        """Seconds the native side pauses between steps (``?pace=``; 0 when run headless)."""
        values = parse_qs(str(js.location.search).lstrip("?")).get("pace", ["0.6"])
        try:
            return max(0.0, min(5.0, float(values[-1])))
        except ValueError:
            return 0.6

    def note(self, text: str, kind: str = "note") -> None:
        """The native side's commentary, shown in the panel (left out of the trace)."""
        self.log_panel.note(text, kind)

    async def explore(self) -> list[str]:
        """Page code calling native objects; returns what it did, for the native transcript."""
        library = self.peer.root
        done: list[str] = []

        def did(text: str) -> None:
            done.append(text)
            self.log_panel.note(f"page> {text}", "page")

        did(f"await library.add(3, 4) -> {await library.add(3, 4)}")
        did(f"await library.titles() -> {await library.titles()}")
        did(f"await library.author('SICP') -> {await library.author('SICP')!r}")
        counter = await library.new_counter()
        await counter.increment()
        total = await counter.increment(5)
        did(f"counter = await library.new_counter(); await counter.increment(); await counter.increment(5) -> {total}")
        did(f"tether.describe(counter) -> {tether.describe(counter)!r}")
        return done

    async def ping(self, n: int, other: Any) -> int:
        """One hop of the nested call: awaits the native side's next hop, which calls back here."""
        self.log_panel.note(f"page> ping({n}) awaits the native side" if n else "page> ping(0) answers 0", "page")
        return 0 if n == 0 else 1 + await other.ping(n - 1, self)

    async def look_up(self, title: str) -> dict[str, Any]:
        """Ask the native library for an author; a KeyError raised natively is caught here."""
        try:
            author = await self.peer.root.author(title)
        except KeyError as exc:
            caught = f"KeyError({exc.args[0]!r})" if exc.args else "KeyError"
            self.log_panel.note(f"page> caught {caught} raised natively (remote traceback above)", "page")
            return {
                "caught": caught,
                "remote_traceback": getattr(exc, "remote_traceback", None),
                # debugging is on (debug=True both sides): the native frames are frames here
                "traceback": "".join(traceback.format_exception(exc)),
            }
        self.log_panel.note(f"page> {title!r} is by {author}", "page")
        return {"author": author}

    # The page's controls. An event listener cannot wait for the peer (it is plain code, outside
    # what JSPI can suspend), so it starts a task running async code.

    def _spawn(self, awaitable: Any) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def listen(self) -> None:
        from pyodide.ffi import create_proxy

        def on_ask(event: Any) -> None:
            event.preventDefault()
            self._spawn(self.look_up(str(self.document.getElementById("title").value)))

        async def converse() -> None:
            await self.peer.root.converse()

        def on_replay(event: Any) -> None:
            self._spawn(converse())

        for element, kind, handler in (("ask", "submit", on_ask), ("replay", "click", on_replay)):
            listener = create_proxy(handler)
            self._listeners.append(listener)
            self.document.getElementById(element).addEventListener(kind, listener)
        for name in ("title", "ask-button", "replay"):
            self.document.getElementById(name).disabled = False


async def main() -> Any:
    """Connect back to the server that served the page, tracing every message into the panel.

    ``tether.aio.connect(root=page)`` is all a page needs to connect; the demo opens the
    session itself only to attach its :class:`~tether.trace.Trace` before the first frame.
    """
    log = PageLog(js.document)
    page = DemoPage(log)
    traces: list[Trace] = []

    class TracedSession(BrowserSession):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            trace = Trace(self, "page", "native", log.message, quiet=UNTRACED)
            trace.name(page, "page")
            trace.name(page.document, "document")
            traces.append(trace)

    url = page_ws_url()
    transport = await BrowserTransport.open(url)
    peer = await open_async_session(
        transport,
        root=page,
        url=url,
        session_class=TracedSession,
        run_sync_in_threads=False,
        send_tracebacks=True,
        trusted=True,  # the server that served this page's code: it edits the DOM through it
        debug=True,  # and errors both ways carry their frames (the server offers debugging too)
    )
    traces[0].name(peer.root, "library")
    page.peer = tether_page.peer = peer
    info = page.info()
    js.document.getElementById("about").textContent = (
        f"Python {info['python']} runs in this page (Pyodide {info['pyodide']}) and talks Tether "
        f"with the native peer at {url}."
    )
    page.listen()
    await peer.root.converse()  # the native side starts its part of the conversation
    return peer
