"""The browser's ``WebSocket`` as a transport of the asyncio runtime (inside Pyodide).

:class:`BrowserTransport` wraps one ``js.WebSocket`` with ``binaryType = "arraybuffer"``. Its
``message``/``close``/``error`` listeners are ``create_proxy`` proxies that run synchronously in
the browser's event loop: each message is copied out of its ``ArrayBuffer`` at once and queued
for :meth:`~BrowserTransport.recv`, or, once a session has called
:meth:`~BrowserTransport.attach`, handed straight to that session from the listener (push
mode: no reader task and no future per message, which saves two event-loop callbacks per
message in Pyodide's WebLoop). The listeners are removed and their proxies destroyed when the
socket closes.

``send`` calls ``ws.send`` synchronously, before any suspension point, as the runtime requires;
the browser queues the frame. It then waits only when the browser's own send buffer is above
``high_water`` bytes, which is the only back-pressure a browser WebSocket offers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from ..exceptions import ConnectionLost

__all__ = ["HIGH_WATER", "BrowserTransport"]

# What JS code may pass to WebSocket.close(): 1000 or 3000..4999 (others throw InvalidAccessError).
_APP_CODES = range(3000, 5000)
HIGH_WATER = 4 * 2**20


class BrowserTransport:
    """One browser WebSocket. Create it with ``await BrowserTransport.open(url)``."""

    def __init__(self, ws: Any, url: str, high_water: int = HIGH_WATER) -> None:
        self.ws = ws
        self.url = url
        self.high_water = high_water
        self.closed = False
        self.close_code: int | None = None
        self.close_reason = ""
        self._inbox: deque[bytes | str] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed_future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._listeners: list[tuple[str, Any]] = []
        self._push: Callable[[bytes | str], None] | None = None
        self._push_closed: Callable[[str], None] | None = None

    @classmethod
    async def open(
        cls, url: str, open_timeout: float = 10.0, high_water: int = HIGH_WATER, protocols: list[str] | None = None
    ) -> BrowserTransport:
        """Open a WebSocket to ``url`` offering ``protocols`` (the Tether subprotocol, and the
        token's) and wait until it is open (or raise ConnectionLost)."""
        import js
        from pyodide.ffi import to_js

        try:
            ws = js.WebSocket.new(url, to_js(protocols or ["tether"]))
        except Exception as exc:  # a SyntaxError for a malformed URL, a SecurityError...
            raise ConnectionLost(f"cannot connect to {url}: {exc}") from None
        ws.binaryType = "arraybuffer"
        transport = cls(ws, url, high_water)
        transport._listen()
        try:
            await asyncio.wait_for(asyncio.shield(transport._opened), open_timeout)
        except TimeoutError:
            await transport.close(1000, "open timeout")
            raise ConnectionLost(f"cannot connect to {url}: not open after {open_timeout} s") from None
        return transport

    def _listen(self) -> None:
        from pyodide.ffi import create_proxy

        for kind, handler in (
            ("open", self._on_open),
            ("message", self._on_message),
            ("close", self._on_close),
            ("error", self._on_error),
        ):
            proxy = create_proxy(handler)
            self.ws.addEventListener(kind, proxy)
            self._listeners.append((kind, proxy))

    # -- browser event callbacks (synchronous; they must never block) ---------------------------

    def _on_open(self, event: Any) -> None:
        if not self._opened.done():
            self._opened.set_result(None)

    def _on_message(self, event: Any) -> None:
        data = event.data
        message = data if isinstance(data, str) else data.to_bytes()
        push = self._push
        if push is not None:
            push(message)
        else:
            self._inbox.append(message)
            self._wake()

    def _on_error(self, event: Any) -> None:
        # The browser says nothing more about the error; a close event always follows.
        pass

    def _on_close(self, event: Any) -> None:
        self.closed = True
        self.close_code = int(event.code)
        self.close_reason = str(event.reason)
        if not self._opened.done():
            self._opened.set_exception(ConnectionLost(f"cannot connect to {self.url}: {self._describe()}"))
            self._opened.exception()  # retrieved: open() may already have given up
        if not self._closed_future.done():
            self._closed_future.set_result(None)
        self._wake()
        self._tell_closed()
        # Not from inside the listener that is running: destroy the proxies on the next turn.
        asyncio.get_running_loop().call_soon(self._unlisten)

    def _tell_closed(self) -> None:
        """Tell an attached session, once, that the socket is closed."""
        on_closed, self._push_closed = self._push_closed, None
        self._push = None
        if on_closed is not None:
            on_closed(self._describe())

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _unlisten(self) -> None:
        listeners, self._listeners = self._listeners, []
        for kind, proxy in listeners:
            try:
                self.ws.removeEventListener(kind, proxy)
            finally:
                proxy.destroy()

    def _describe(self) -> str:
        code = self.close_code
        if code == 1006:
            return "the connection failed or was cut (code 1006)"
        reason = f": {self.close_reason}" if self.close_reason else ""
        return f"peer closed the connection (code {code}{reason})"

    # -- the transport interface ---------------------------------------------------------------

    def attach(self, on_message: Callable[[bytes | str], None], on_closed: Callable[[str], None]) -> None:
        """Push mode: from now on the ``message`` listener calls ``on_message(data)`` itself
        (``recv`` is no longer used), and ``on_closed(reason)`` is called once when the socket
        closes. Messages already queued are handed over first, in order.

        Both run synchronously inside browser event callbacks, so they must never block or
        raise (an exception would only reach the browser console)."""
        while self._inbox:
            on_message(self._inbox.popleft())
        self._push = on_message
        self._push_closed = on_closed
        if self.closed:
            self._tell_closed()

    async def wait_closed(self, timeout: float) -> None:
        """Wait until the browser reports the socket closed (its close code is known then)."""
        try:
            await asyncio.wait_for(asyncio.shield(self._closed_future), timeout)
        except TimeoutError:
            pass

    def send_nowait(self, data: bytes) -> None:
        """Hand ``data`` to the browser as one binary message, without waiting for room in its
        send buffer (the sync face's calls, which then block for their answer anyway)."""
        if self.closed or int(self.ws.readyState) != 1:
            raise ConnectionLost(f"connection to {self.url} is closed: {self._describe()}")
        from pyodide.ffi import to_js

        self.ws.send(to_js(data))

    async def send(self, data: bytes) -> None:
        """Hand ``data`` to the browser as one binary message (synchronously), then wait
        while the browser's send buffer is above ``high_water``."""
        self.send_nowait(data)
        await self.drain()

    @property
    def writing_paused(self) -> bool:
        """Whether the browser's send buffer is above ``high_water`` (:meth:`drain` waits)."""
        return not self.closed and int(self.ws.bufferedAmount) > self.high_water

    async def drain(self) -> None:
        """Wait while the browser's send buffer is above ``high_water`` (the browser tells
        nothing when it empties: look every 5 ms)."""
        while int(self.ws.bufferedAmount) > self.high_water and not self.closed:
            await asyncio.sleep(0.005)

    async def recv(self) -> bytes | str:
        """The next message (``bytes`` for binary, ``str`` for text); ConnectionLost once closed."""
        while not self._inbox:
            if self.closed:
                raise ConnectionLost(self._describe())
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._inbox.popleft()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake and wait (up to 2 s) for the close event.

        Browsers only let pages send codes 1000 and 3000-4999; any other code (such as 1002
        for a protocol error) is sent as 1000 with the code in the reason.
        """
        if not self.closed:
            if code != 1000 and code not in _APP_CODES:
                reason = f"{code} {reason}".strip()
                code = 1000
            encoded = reason.encode()[:123]
            try:
                self.ws.close(code, encoded.decode(errors="ignore"))
            except Exception:
                pass
        try:
            await asyncio.wait_for(asyncio.shield(self._closed_future), 2.0)
        except TimeoutError:
            pass
        if not self.closed:  # no close event came: give up on the socket
            self.closed = True
            self.close_code = 1006
            self._wake()
            self._unlisten()
            self._tell_closed()
