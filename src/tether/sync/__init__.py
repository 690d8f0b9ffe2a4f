"""The sync face (threads, and websockets' sans-I/O protocol over plain sockets):
:func:`connect`, :func:`serve`, and the :class:`Peer` and :class:`Server` they return.
``tether.connect`` and ``tether.serve`` are these; this package is where the flavour lives:
``session`` (the threading session), ``transport`` (a WebSocket whose receiving thread pushes
messages), ``settings`` (the ``transport=`` option), ``client`` and ``server``.
"""

from __future__ import annotations

from .client import connect
from .server import Server, serve
from .session import Peer

__all__ = ["Peer", "Server", "connect", "serve"]
