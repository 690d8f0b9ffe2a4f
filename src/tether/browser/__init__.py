"""The browser peer: Tether inside Pyodide, over the browser's ``WebSocket``.

In a page served by :func:`tether.web.serve_web` the boot script installs this package and
runs :func:`tether.browser.page.main`, which connects back and exposes a
:class:`~tether.browser.page.Page` (the DOM and a few helpers) to the native side. Your own
page code connects like this::

    import tether.aio

    async with tether.aio.connect(root=my_object) as peer:   # the server that served the page
        print(await peer.root.add(3, 4))                      # async face: awaitables

``tether.aio.connect`` is :func:`connect` when ``sys.platform == "emscripten"``, and
``tether.connect`` is :func:`connect_blocking` (plain code, blocking through JSPI). In plain code
entered through ``pyodide.runPythonAsync`` proxies block with JSPI instead
(``peer.root.add(3, 4)`` is ``7``); see :mod:`tether.browser.session`.

Nothing here imports ``websockets``; ``js`` and ``pyodide`` are imported only when used.
"""

from __future__ import annotations

from .session import (
    BlockingPeer,
    BrowserSession,
    Connecting,
    can_block,
    connect,
    connect_blocking,
    in_async_code,
    page_ws_url,
)
from .transport import BrowserTransport

__all__ = [
    "BlockingPeer",
    "BrowserSession",
    "BrowserTransport",
    "Connecting",
    "can_block",
    "connect",
    "connect_blocking",
    "in_async_code",
    "page_ws_url",
]
