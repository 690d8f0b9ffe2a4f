"""The sync face (threads and ``websockets.sync``): :func:`connect`, :func:`serve`, and the
:class:`Peer` and :class:`Server` they return. ``tether.connect`` and ``tether.serve`` are
these; this package is where the flavour lives: ``session`` (the threading session),
``transport`` (websockets connections that push messages), ``client`` and ``server``.
"""

from __future__ import annotations

from .client import connect
from .server import Server, serve
from .session import Peer

__all__ = ["Peer", "Server", "connect", "serve"]
