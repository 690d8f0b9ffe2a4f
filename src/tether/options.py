"""One set of connection options for every ``serve``, ``connect`` and ``serve_web``, on every
face: the same names and defaults everywhere, validated once, with an error that names the
option for anything unknown or out of place.

Pass them as keywords (``tether.connect(url, timeout=5)``) or build an :class:`Options` once
and pass it as ``options=`` (keywords given as well override it)::

    opts = tether.Options(token=secret, limits=tether.Limits(max_concurrency=32))
    server = tether.serve(root, port=0, options=opts)
    peer = tether.connect(server.url, options=opts)

Settings of the WebSocket library itself go in ``transport=`` (a dict handed to
``websockets``), never mixed with these.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from ssl import SSLContext
from typing import Any

from .access import AccessPolicy
from .exceptions import UsageError
from .limits import Limits
from .protocol import DEFAULT_MAX_FRAME_SIZE

__all__ = ["CONNECTING_ONLY", "DEFAULT_KEEPALIVE", "DEFAULT_MAX_FRAME_SIZE", "FACE_ONLY", "NAMES", "SERVING_ONLY", "Options", "resolve_options"]

DEFAULT_KEEPALIVE = 20.0

# Options that only a side that listens, or only some faces, take.
SERVING_ONLY = frozenset({"origins", "advertise", "max_connections"})
CONNECTING_ONLY = frozenset({"open_timeout"})
FACE_ONLY = {"run_sync_in_threads": frozenset({"aio", "web"}), "high_water": frozenset({"browser"})}


@dataclass(frozen=True)
class Options:
    """Everything a connection can be told, with the defaults every face uses.

    What the peer may do here: ``trusted`` (a peer you would give a shell: private names and
    any class), ``policy`` (an :class:`~tether.AccessPolicy`; default: the untrusted rule of
    ``docs/security.md``), ``accept_code`` (define classes and functions the peer sends by
    value: runs its code), ``passing`` (per class, ``"value"`` or ``"reference"``), ``limits``
    (a :class:`~tether.Limits`), ``send_tracebacks`` (default: off when serving, on when
    connecting), ``debug`` (ask for remote debugging: where the peer asks too, each side may
    debug the other and trusts it as with ``trusted``; ``tether.debug``).

    The conversation: ``max_frame_size`` (bytes, 16 MiB), ``marker_base`` (0x60000001 for a
    Caffeine JavaScript peer), ``timeout`` (seconds each call this side makes may take; default
    none), ``open_timeout`` (seconds to open a connection, 10), ``keepalive`` (seconds between
    pings, 20; ``None``: no pings).

    Many machines (three-party handoff, ``docs/guide.md`` "Objects on many machines"):
    ``handoff`` is ``"direct"`` (default: a proxy of another connection that this side sends
    is handed off, so the recipient talks to the object's owner directly, where it can reach it;
    else calls are forwarded through this side) or ``"forward"`` (always forward, and take no
    handoffs); ``advertise`` (serving: the URL others reach this server at, sent in hello so
    that peers can be introduced to it; ``True``: the address it is bound to, unless that is a
    wildcard; ``False``: none).

    Admission and transport: ``token`` (the shared secret), ``origins`` (serving: the browser
    origins admitted), ``max_connections`` (serving: connections open or opening at once, 1,024;
    one more is refused with HTTP 503 before anything is read), ``ssl`` (an ``ssl.SSLContext``:
    ``wss://``), ``run_sync_in_threads``
    (asyncio face: plain methods on worker threads, default on), ``high_water`` (page: bytes
    buffered before a send waits), ``transport`` (a dict of ``websockets`` settings).
    """

    trusted: bool = False
    policy: AccessPolicy | None = None
    accept_code: bool = False
    passing: Mapping[type, str] | None = None
    limits: Limits | None = None
    send_tracebacks: bool | None = None
    debug: bool = False
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    marker_base: int | None = None
    timeout: float | None = None
    open_timeout: float = 10.0
    keepalive: float | None = DEFAULT_KEEPALIVE
    token: str | None = None
    origins: tuple[str, ...] | None = None
    ssl: SSLContext | None = None
    run_sync_in_threads: bool = True
    high_water: int | None = None
    transport: Mapping[str, Any] = field(default_factory=dict)
    handoff: str = "direct"
    advertise: str | bool = True
    max_connections: int = 1024

    def __post_init__(self) -> None:
        _check(self)

    def session(self, serving: bool) -> dict[str, Any]:
        """The options a session takes (what the peer may do, and the conversation)."""
        return {
            "trusted": self.trusted,
            "policy": self.policy,
            "send_tracebacks": (not serving) if self.send_tracebacks is None else self.send_tracebacks,
            "max_frame_size": self.max_frame_size,
            "marker_base": self.marker_base,
            "timeout": self.timeout,
            "accept_code": self.accept_code,
            "passing": dict(self.passing) if self.passing is not None else None,
            "limits": self.limits,
            "debug": self.debug,
            "handoff": self.handoff,
        }

    def advertised(self, bound_url: str | None = None, host: str = "") -> str | None:
        """The URL a server says it listens on (``advertise``), given the one it is bound to
        (a server that does not know its own, such as an ASGI app, says only a URL given)."""
        if isinstance(self.advertise, str):
            return self.advertise
        if self.advertise is False or bound_url is None or host in ("0.0.0.0", "::", ""):
            return None
        return bound_url

    def for_dialing(self) -> Options:
        """These options for a connection this side opens to be introduced to an object's
        owner: no token (the owner is not the server the token is for) and nothing a server takes."""
        return dataclasses.replace(self, token=None, origins=None, advertise=True)


NAMES = tuple(f.name for f in dataclasses.fields(Options))


def resolve_options(where: str, serving: bool, face: str, options: Options | None, given: Mapping[str, Any]) -> Options:
    """The options for one entry point (``where``, e.g. ``"tether.connect"``): ``options``
    with the keywords ``given`` on top; raises UsageError naming any keyword that is unknown or
    does not apply here (``face`` is ``"sync"``, ``"aio"``, ``"browser"`` or ``"web"``). An
    :class:`Options` object may hold options for other sides too (one object for a program's
    servers and clients): each entry point uses what applies to it."""
    if options is not None and not isinstance(options, Options):
        raise UsageError(f"{where}(options=...) takes a tether.Options, not {type(options).__name__}")
    for name in given:
        if name not in NAMES:
            close = difflib.get_close_matches(name, NAMES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UsageError(
                f"{where}() got an unknown option {name!r}{hint} Options are: {', '.join(NAMES)} "
                "(websockets' own settings go in transport={...})"
            )
    chosen = dict(given)
    if chosen.get("origins") is not None:
        chosen["origins"] = tuple(chosen["origins"])
    resolved = dataclasses.replace(options, **chosen) if options is not None else Options(**chosen)
    for name in given:  # a keyword out of place is a mistake; an Options object serves every side
        if given[name] is None or given[name] == getattr(_DEFAULTS, name):
            continue
        if name in SERVING_ONLY and not serving:
            raise UsageError(f"{where}() got {name}=, which only a server takes (it says whom a server admits)")
        if name in CONNECTING_ONLY and serving:
            raise UsageError(f"{where}() got {name}=, which only connect() takes")
        faces = FACE_ONLY.get(name)
        if faces is not None and face not in faces:
            raise UsageError(f"{where}() got {name}=, which only {' and '.join(sorted(faces))} take")
    return resolved


def _check(o: Options) -> None:
    def number(name: str, value: Any, allow_none: bool) -> None:
        if value is None and allow_none:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            none = ", or None" if allow_none else ""
            raise UsageError(f"{name}= is a number of seconds above 0{none}; not {value!r}")

    number("timeout", o.timeout, True)
    number("open_timeout", o.open_timeout, False)
    number("keepalive", o.keepalive, True)
    if isinstance(o.max_frame_size, bool) or not isinstance(o.max_frame_size, int) or o.max_frame_size < 1024:
        raise UsageError(f"max_frame_size= is a number of bytes, at least 1024; not {o.max_frame_size!r}")
    if o.marker_base not in (None, 0x60000000, 0x60000001):
        raise UsageError(f"marker_base= is 0x60000000 (Python, Smalltalk) or 0x60000001 (Caffeine JavaScript); not {o.marker_base!r}")
    if o.policy is not None and not isinstance(o.policy, AccessPolicy):
        raise UsageError(f"policy= takes a tether.AccessPolicy, not {type(o.policy).__name__}")
    if not isinstance(o.debug, bool):
        raise UsageError(f"debug= is True or False, not {o.debug!r}")
    if o.limits is not None and not isinstance(o.limits, Limits):
        raise UsageError(f"limits= takes a tether.Limits, not {type(o.limits).__name__}")
    for cls, mode in (o.passing or {}).items():
        if not isinstance(cls, type) or mode not in ("value", "reference"):
            raise UsageError(f"passing= maps classes to 'value' or 'reference'; got {cls!r}: {mode!r}")
    if o.token is not None and not isinstance(o.token, str):
        raise UsageError(f"token= is a string, not {type(o.token).__name__}")
    if o.origins is not None and not all(isinstance(x, str) for x in o.origins):
        raise UsageError("origins= is a list of origins such as 'https://app.example.com'")
    if o.ssl is not None and not isinstance(o.ssl, SSLContext):
        raise UsageError(f"ssl= takes an ssl.SSLContext, not {type(o.ssl).__name__}")
    if o.handoff not in ("direct", "forward"):
        raise UsageError(f"handoff= is 'direct' (introduce peers to an object's owner) or 'forward'; not {o.handoff!r}")
    if not isinstance(o.advertise, (bool, str)) or (
        isinstance(o.advertise, str) and not o.advertise.startswith(("ws://", "wss://"))
    ):
        raise UsageError(f"advertise= is a ws:// or wss:// URL, True (the bound address) or False; not {o.advertise!r}")
    if isinstance(o.max_connections, bool) or not isinstance(o.max_connections, int) or o.max_connections < 1:
        raise UsageError(f"max_connections= is a number of connections, at least 1; not {o.max_connections!r}")
    if not isinstance(o.transport, Mapping):
        raise UsageError(f"transport= is a dict of websockets settings, not {type(o.transport).__name__}")


_DEFAULTS = Options()
