"""What a side says about itself in ``hello``, and what it makes of the peer's
(``docs/protocol.md`` section 7): its language and versions, the largest frame it takes,
whether it reads "on behalf of" (4.1), debugging (section 10), and its part in three-party
handoffs (its vat, where it listens, its binding key: 5.5)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .gifts import SECRET_SIZE, handoff_key

if TYPE_CHECKING:
    from .protocol import Protocol

__all__ = ["apply_hello", "hello_info"]


def hello_info(protocol: Protocol) -> dict[str, Any]:
    """This side's hello on ``protocol``'s connection; with ``"debug": true`` when this side
    asked for debugging (``tether.debug``)."""
    info: dict[str, Any] = {
        "language": "python",
        "tether": __version__,
        "python": ".".join(map(str, sys.version_info[:3])),
        "platform": sys.platform,
        "max_frame_size": protocol.max_frame_size,
        "nesting": True,
    }
    if protocol.tether.debug:
        info["debug"] = True
    info["vat"] = protocol.vat.id
    if protocol.advertise is not None:
        info["advertise"] = protocol.advertise
    if protocol.handoff_secret is not None:
        info["handoff_key"] = handoff_key(protocol.handoff_secret)
    return info


def apply_hello(protocol: Protocol, info: object) -> None:
    """Take the peer's hello (a flat Array of keys and values, or a Dictionary): whether it is
    a Python Tether, its largest frame, whether it reads "on behalf of", and whether it takes
    handoffs (then this side writes them to it, unless it forwards)."""
    if type(info) is list and len(info) % 2 == 0 and all(type(k) is str for k in info[::2]):
        info = dict(zip(info[::2], info[1::2], strict=True))
    if not isinstance(info, dict):
        return
    protocol.peer_info = info
    language = info.get("language")
    python = type(language) is str and language == "python"  # no proxy's __eq__
    protocol.references.peer_is_python = python
    size = info.get("max_frame_size")
    protocol.peer_max_frame_size = size if type(size) is int and size > 0 else None
    protocol.peer_reads_nesting = python and info.get("nesting") is True
    key = info.get("handoff_key")
    takes = python and protocol.writes_handoffs and type(key) is bytes and len(key) == SECRET_SIZE
    protocol.references.handoff_binding = key if takes else None
    if protocol.on_hello is not None:
        protocol.on_hello()
