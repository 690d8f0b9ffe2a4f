"""The async face: every remote operation is awaitable and no call blocks the event loop.

::

    async with tether.aio.serve(Calculator(), port=0) as server:
        async with tether.aio.connect(server.url) as peer:
            await peer.root.add(3, 4)                   # 7
            async for item in peer.root.items():        # batched iteration
                ...

Operations that Python requires to return a plain value (``len(p)``, ``bool(p)``, ``str(p)``)
cannot be awaited; use :func:`call`: ``await tether.aio.call(p, "__len__")``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

__all__ = ["AsyncPeer", "Server", "call", "connect", "serve"]

if TYPE_CHECKING:
    from .client import connect
    from .server import Server, serve
    from .session import AsyncPeer


async def call(proxy: Any, selector: str, *args: Any, **kwargs: Any) -> Any:
    """Send any selector to a proxy's object and await the answer (``"__len__"``, ``"add"``)."""
    from ..proxy import _state

    state = _state(proxy)
    session = state.session
    acall = getattr(session, "acall", None)
    if acall is None:
        return session.call(state.key, selector, args, kwargs)
    return await acall(state.key, selector, args, kwargs)


def __getattr__(name: str) -> Any:
    if name == "AsyncPeer":
        from .session import AsyncPeer

        return AsyncPeer
    if name in ("connect", "serve", "Server"):
        if sys.platform == "emscripten":
            if name != "connect":
                raise AttributeError(f"a browser cannot listen: tether.aio.{name} exists natively only")
            from ..browser import connect

            return connect
        if name == "connect":
            from .client import connect

            return connect
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module 'tether.aio' has no attribute {name!r}")
