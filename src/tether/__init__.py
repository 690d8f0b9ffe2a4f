"""Tether: remote messaging between live Python object memories over WebSockets.

The sync face::

    import tether

    with tether.serve(Calculator(), host="127.0.0.1", port=0) as server:
        with tether.connect(server.url) as peer:
            peer.root.add(3, 4)        # one round trip -> 7

The async face is :mod:`tether.aio` (``async with tether.aio.connect(url) as peer``).
Names are imported lazily, so ``import tether`` loads no transport.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__
from .exceptions import (
    AccessDenied,
    Busy,
    ConnectionLost,
    DecodeError,
    EncodeError,
    FrameTooLarge,
    GiftRefused,
    HandshakeFailed,
    ProtocolError,
    Refused,
    RemoteError,
    TetherError,
    UsageError,
)

__all__ = [
    "AccessDenied",
    "AccessPolicy",
    "Busy",
    "ConnectionLost",
    "DecodeError",
    "EncodeError",
    "FrameTooLarge",
    "GiftRefused",
    "HandshakeFailed",
    "Limits",
    "Options",
    "Peer",
    "ProtocolError",
    "Proxy",
    "Refused",
    "RemoteError",
    "Server",
    "TetherError",
    "UsageError",
    "breakpoint",
    "by_reference",
    "by_value",
    "by_value_class",
    "connect",
    "describe",
    "fetch",
    "grant_debugging",
    "help",
    "is_proxy",
    "pm",
    "post_mortem",
    "register",
    "register_exception",
    "serve",
    "timeout",
]

_LAZY = {
    "serve": ".sync.server",
    "connect": ".sync.client",
    "Server": ".sync.server",
    "Peer": ".sync.session",
    "Proxy": ".proxy",
    "describe": ".proxy",
    "is_proxy": ".proxy",
    "AccessPolicy": ".access",
    "register": ".access",
    "Limits": ".limits",
    "Options": ".options",
    "timeout": ".deadline",
    "register_exception": ".errors",
    "by_reference": ".values",
    "by_value": ".values",
    "by_value_class": ".classes",
    "fetch": ".proxy",
    "help": ".proxy",
    "post_mortem": ".debug",
    "pm": ".debug",
    "breakpoint": ".debug",
    "grant_debugging": ".debug",
}

# Public submodules, imported on first use as attributes of the package.
_SUBMODULES = frozenset({"aio", "web", "browser", "testing", "access", "admission", "limits", "exceptions", "debug"})

if TYPE_CHECKING:
    from .access import AccessPolicy, register
    from .classes import by_value_class
    from .deadline import timeout
    from .debug import breakpoint, grant_debugging, pm, post_mortem
    from .errors import register_exception
    from .limits import Limits
    from .options import Options
    from .proxy import Proxy, describe, fetch, help, is_proxy
    from .sync.client import connect
    from .sync.server import Server, serve
    from .sync.session import Peer
    from .values import by_reference, by_value


def __getattr__(name: str) -> Any:
    if sys.platform == "emscripten" and name in ("connect", "serve", "Server"):
        if name != "connect":
            raise AttributeError(f"a browser cannot listen: tether.{name} exists natively only")
        from .browser import connect_blocking

        globals()["connect"] = connect_blocking
        return connect_blocking
    from importlib import import_module

    if name in _SUBMODULES:  # `import tether` then `tether.aio.connect(...)` works
        return import_module(f"{__name__}.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tether' has no attribute {name!r}")

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
