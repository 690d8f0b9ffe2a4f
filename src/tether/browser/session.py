"""The browser peer's session and :func:`connect` (inside Pyodide).

A page has one thread, the browser's, and asyncio runs on it (Pyodide's WebLoop), so a
proxy cannot tell "another thread wants to block" from "async code wants an awaitable" the way
the native asyncio runtime does. :class:`BrowserSession` decides by where the operation is
written:

* **async face**: written in an ``async def`` (or in a lambda, comprehension or generator
  expression inside one, or in top-level ``runPythonAsync`` code that uses ``await``), a proxy
  operation returns an awaitable: ``await root.add(3, 4)``.
* **sync face**: written in plain code (a ``def``, or top-level code without ``await``), it
  blocks for the answer with JSPI (``pyodide.ffi.run_sync``), so ``root.add(3, 4)`` is ``7``.
  Operations whose result Python checks (``len(p)``, ``str(p)``, ``for x in p``) always block.
  Blocking needs a stack that may switch: code entered through ``pyodide.runPythonAsync``,
  ``pyFunc.callPromising()`` or an ``async def``. Elsewhere (``pyodide.runPython``, a DOM event
  listener) it raises :class:`~tether.exceptions.UsageError` saying so.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from types import FrameType
from typing import Any
from urllib.parse import parse_qs

from ..admission import client_subprotocols
from ..aio.promise import Promise
from ..aio.session import AsyncPeer, AsyncSession, ConnectingBase, open_async_session
from ..deadline import remaining
from ..errors import register_runtime_file
from ..exceptions import UsageError
from ..gate import nested_in
from ..options import Options, resolve_options
from ..session import PeerBase
from .transport import HIGH_WATER, BrowserTransport

register_runtime_file(__file__)  # its frames stay out of tracebacks sent to peers

log = logging.getLogger("tether")

_ASYNC_FLAGS = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE
_ANONYMOUS = frozenset({"<genexpr>", "<lambda>", "<listcomp>", "<setcomp>", "<dictcomp>"})


def in_async_code(depth: int = 1) -> bool:
    """Whether the code calling into tether (above ``depth`` frames) is async code.

    Skips tether's own frames and anonymous code (lambdas, comprehensions, generator
    expressions), then looks at the first named function or module code. When only those
    frames are on the stack (a task running tether's own coroutines), it is async code if any
    of them is a coroutine.
    """
    frame: FrameType | None = sys._getframe(depth + 1)
    skipped_async = False
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        code = frame.f_code
        if not (name == "tether" or name.startswith("tether.")) and code.co_name not in _ANONYMOUS:
            return bool(code.co_flags & _ASYNC_FLAGS)
        skipped_async = skipped_async or bool(code.co_flags & _ASYNC_FLAGS)
        frame = frame.f_back
    return skipped_async


def can_block() -> bool:
    """Whether plain code may block here (JSPI is available and the stack can switch)."""
    try:
        from pyodide.ffi import can_run_sync
    except ImportError:
        return False
    return bool(can_run_sync())


class BrowserSession(AsyncSession):
    """An :class:`~tether.aio.session.AsyncSession` whose proxies block in plain code (JSPI).

    See the module docstring for which operations return awaitables and which block.

    On a transport that pushes (``attach(on_message, on_closed)``, as :class:`BrowserTransport`
    does) there is no reader task: the WebSocket's ``message`` listener hands each frame to
    :meth:`~tether.aio.session.AsyncSession._feed` (the asyncio runtime's push path, shared with
    the native async face), which decodes it and resolves the waiting call's future right there,
    and frames are written with the transport's ``send_nowait`` as they are queued. In
    Pyodide every resolved future costs event-loop callbacks (``call_soon`` schedules a browser
    task: about 55 µs each, ``await asyncio.sleep(0)`` in a page on a 2-core machine), and the
    reader task's own wake-up (a future per message, resolved by the listener) cost two of
    them per message. A call's answer now costs one callback in either face (four and seven
    before); see :meth:`acall` and :meth:`_call_blocking`.
    """

    def __init__(self, transport: Any, **options: Any) -> None:
        super().__init__(transport, **options)
        # A page opens no connections of its own to be introduced to an object's owner: its
        # hello takes no handoffs, so the server forwards the proxies it sends (it still
        # introduces others to the page's own objects where that makes sense).
        self.protocol.handoff_secret = None

    # -- calls: the async face, and the sync face (JSPI) ----------------------------------

    def call(
        self,
        receiver: int,
        selector: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any] | None = None,
        must_block: bool = False,
    ) -> Any:
        if not must_block and in_async_code(2):
            return Promise(self, receiver, selector, args, kwargs)
        if remaining(self.timeout) is None and can_block() and hasattr(self.transport, "send_nowait"):
            return self._call_blocking(receiver, selector, args, kwargs)
        return self.block(self.acall(receiver, selector, args, kwargs), selector)

    def _new_future(self) -> asyncio.Future[Any]:
        """A plain ``asyncio.Future`` for an answer: Pyodide's ``loop.create_future()`` adds a
        done callback (its count of work in progress), which costs one more event-loop
        callback when the answer arrives."""
        return asyncio.Future(loop=self.loop)

    def _call_blocking(
        self,
        receiver: int,
        selector: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any] | None,
    ) -> Any:
        """The sync face without a task: send the call now, then hand the answer's future
        itself to ``run_sync`` (one event-loop callback per call, against four for
        ``run_sync`` of a coroutine). Needs a transport with ``send_nowait`` and no timeout."""
        from pyodide.ffi import run_sync

        answer = _BoxedAnswer(self.loop)
        self._queue_call(answer, receiver, selector, args, kwargs, nested_in(self, asyncio.current_task(self.loop)))
        self._flush()  # written now (send_nowait, checked in call())
        return run_sync(answer.future).value

    @staticmethod
    def block(awaitable: Any, selector: str = "call") -> Any:
        """Run ``awaitable`` to completion from plain code with JSPI, or explain why not."""
        if can_block():
            from pyodide.ffi import run_sync

            # run_sync hands the result through JavaScript, which probes its attributes; a
            # proxy would forward those probes to the peer, so the result travels in a box.
            return run_sync(_boxed(awaitable)).value
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        raise UsageError(
            f"{selector} on a proxy must wait for the peer, and this code cannot block: "
            "either use the async face in an async def (await proxy.method(...), "
            f"await tether.aio.call(proxy, {selector!r})), or enter Python through "
            "pyodide.runPythonAsync(code) or pyFunc.callPromising(...) so that JSPI can "
            "block (not pyodide.runPython or a plain event-listener call)"
        )


class _Box:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


async def _boxed(awaitable: Any) -> _Box:
    return _Box(await awaitable)


class _BoxedAnswer:
    """A pending call's slot for the sync face: the answer arrives boxed in ``future`` (a
    plain ``asyncio.Future``, which ``run_sync`` takes as it is)."""

    __slots__ = ("future",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.future: asyncio.Future[_Box] = asyncio.Future(loop=loop)

    def done(self) -> bool:
        return self.future.done()

    def set_result(self, value: Any) -> None:
        self.future.set_result(_Box(value))

    def set_exception(self, error: BaseException) -> None:
        self.future.set_exception(error)


async def open_browser_session(
    transport: Any, *, root: object = None, url: str | None = None, open_timeout: float = 10.0, **options: Any
) -> AsyncPeer:
    """Start the client side of a conversation on ``transport`` with a :class:`BrowserSession`."""
    options["run_sync_in_threads"] = False
    return await open_async_session(
        transport, root=root, url=url, open_timeout=open_timeout, session_class=BrowserSession, **options
    )


class BlockingPeer(PeerBase):
    """What ``tether.connect`` returns in a page: a connection for plain code, whose calls
    block through JSPI as they do natively. Close it with :meth:`close` or a ``with`` block."""

    def __init__(self, peer: AsyncPeer) -> None:
        self._peer = peer
        self.session = peer.session

    @property
    def root(self) -> Any:
        """A proxy to the server's root object."""
        return self._peer._root

    def close(self) -> None:
        BrowserSession.block(self._peer.close(), "close")

    def __enter__(self) -> BlockingPeer:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<tether.Peer {self.session.describe()} {'closed' if self.closed else 'open'} (page)>"


def connect_blocking(url: str | None = None, root: object = None, **options: Any) -> BlockingPeer:
    """``tether.connect`` in a page: connect and wait, from plain code, through JSPI.

    Plain code entered with ``pyodide.runPythonAsync`` (or ``callPromising``) can block; other
    code gets a UsageError saying so, and can ``await tether.aio.connect(...)`` instead.
    """
    return BlockingPeer(BrowserSession.block(connect(url, root, **options)._open(), "connect"))


def page_ws_url() -> str:
    """The Tether endpoint of the server that served this page: ``ws`` next to the page
    (``ws://<host>/ws`` for a page at ``/``; ``ws://<host>/tether/ws`` for a page at ``/tether/``,
    as an ASGI app mounted there serves it)."""
    import js

    url = js.URL.new("ws", js.document.baseURI)
    scheme = "wss" if str(url.protocol) == "https:" else "ws"
    return f"{scheme}://{url.host}{url.pathname}"


def page_token() -> str | None:
    """The ``token`` in this page's URL fragment (``#token=...``), or ``None``."""
    import js

    fragment = str(js.location.hash).lstrip("#")
    values = parse_qs(fragment).get("token")
    return values[0] if values else None


class Connecting(ConnectingBase):
    """What :func:`connect` returns: await it, or use it with ``async with``."""

    def __init__(self, url: str | None, root: object, options: Options) -> None:
        self._url = url
        self._root = root
        self._options = options
        self._peer: AsyncPeer | None = None

    async def _open(self) -> AsyncPeer:
        url = self._url or page_ws_url()
        o = self._options
        token = o.token
        if token is None and self._url is None:
            token = page_token()
        high_water = HIGH_WATER if o.high_water is None else o.high_water
        transport = await BrowserTransport.open(url, o.open_timeout, high_water, client_subprotocols(token))
        try:
            return await open_browser_session(
                transport, root=self._root, url=url, open_timeout=o.open_timeout, **o.session(serving=False)
            )
        except BaseException:
            await transport.close()
            raise



def connect(url: str | None = None, root: object = None, *, options: Options | None = None, **kwargs: Any) -> Connecting:
    """Connect from a page to a Tether server (by default the one that served the page).

    ``async with tether.aio.connect(url, root=page_object) as peer: await peer.root.add(3, 4)``,
    or ``peer = await tether.aio.connect(url)`` and later ``await peer.close()``. ``root`` is
    what the server reaches with ``await peer.fetch_root()``. The options are those of
    :class:`tether.Options`; ``high_water`` bounds the bytes the browser may buffer before
    ``send`` waits. ``token``: the server's secret; by default, to the page's own server, the
    ``token`` in the page URL's fragment (``#token=...``, what ``serve_web``'s ``page_url``
    gives), which no request carries. The browser's WebSocket takes no ``ssl`` (the page's
    scheme decides), ``transport`` or ``keepalive`` (it answers pings itself but cannot send them).
    """
    o = resolve_options("tether.aio.connect", False, "browser", options, kwargs)
    defaults = Options()
    unsupported = sorted(
        name for name in ("ssl", "transport", "keepalive") if getattr(o, name) != getattr(defaults, name)
    )
    if unsupported:
        raise UsageError(f"a browser WebSocket cannot take these options: {', '.join(unsupported)}")
    return Connecting(url, root, o)


__all__ = ["BlockingPeer", "BrowserSession", "Connecting", "can_block", "connect", "connect_blocking", "in_async_code", "open_browser_session", "page_token", "page_ws_url"]
