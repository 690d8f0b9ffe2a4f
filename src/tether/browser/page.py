"""What a page served by :func:`tether.web.serve_web` runs after booting: :func:`main`.

:func:`main` connects to the server that served the page and exposes a :class:`Page` as the
page's root. On the native side, ``page = await peer.fetch_root()`` then reaches it::

    page.document.title = "Hello"                        # the DOM, through Pyodide's JsProxy
    p = page.document.createElement("p"); p.textContent = "from Python"
    page.document.body.appendChild(p)
    page.objects["counter"]                              # objects page code registered

Page code adds its own objects with ``tether.browser.page.expose("name", obj)`` and reaches
the server's root through ``tether.browser.page.peer.root``.
"""

from __future__ import annotations

import sys
from typing import Any

from ..aio.session import AsyncPeer
from .session import connect

__all__ = ["Page", "expose", "main"]

peer: AsyncPeer | None = None
"""The connection :func:`main` opened (``None`` before it ran)."""


class Page:
    """The page as the native side sees it: the DOM, the browser window and named objects."""

    def __init__(self) -> None:
        import js

        self.document: Any = js.document
        self.window: Any = js.window
        self.objects: dict[str, Any] = {}

    @property
    def title(self) -> str:
        return str(self.document.title)

    @title.setter
    def title(self, value: str) -> None:
        self.document.title = value

    def log(self, *values: Any) -> None:
        """Write ``values`` to the browser console."""
        import js

        js.console.log(" ".join(str(v) for v in values))

    def info(self) -> dict[str, Any]:
        """Python and Pyodide versions, the user agent and whether JSPI blocking is possible."""
        import js

        try:
            import pyodide

            pyodide_version = str(pyodide.__version__)
        except (ImportError, AttributeError):
            pyodide_version = "?"
        return {
            "python": sys.version.split()[0],
            "pyodide": pyodide_version,
            "user_agent": str(js.navigator.userAgent),
            "jspi": bool(js.eval("typeof WebAssembly.Suspending === 'function'")),
        }


page = None if sys.platform != "emscripten" else Page()


def expose(name: str, obj: Any) -> Any:
    """Make ``obj`` reachable from the native side as ``page.objects[name]``; return it."""
    if page is None:
        raise RuntimeError("tether.browser.page runs inside a browser page (Pyodide) only")
    page.objects[name] = obj
    return obj


async def main(url: str | None = None, **options: Any) -> AsyncPeer:
    """Connect to ``url`` (default: the server that served the page) exposing :data:`page`.

    The server that served the page is trusted by default (``trusted=True``): it sent the
    page's code, so it can do anything in the page already, and :class:`Page` exists to let it
    drive the DOM (read and set attributes of ``js`` objects). Pass ``trusted=False`` when
    ``url`` names another server. The connection stays open after this returns; it is in
    :data:`peer`.
    """
    global peer
    if page is None:
        raise RuntimeError("tether.browser.page runs inside a browser page (Pyodide) only")
    if url is None:
        options.setdefault("trusted", True)
    peer = await connect(url, root=page, **options)
    return peer
