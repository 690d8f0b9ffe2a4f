"""``tether.timeout(seconds)``: a deadline for every remote call made inside it.

::

    with tether.timeout(2.0):              # sync code
        peer.root.slow()                   # TimeoutError after 2 s, and cancelled remotely

    async with tether.timeout(2.0):        # async code (the same object)
        await peer.root.slow()

The deadline lives in a context variable, so it follows the code that set it (its thread, or
its task) and nothing else; timeouts nest, and the inner deadline wins only when it is sooner.
A call that misses it raises :class:`TimeoutError` at the caller, frees its pending entry at
once, and tells the other side to cancel the handler (``docs/protocol.md`` section 7,
``cancel``).
"""

from __future__ import annotations

import contextvars
import time
from typing import Any

from .exceptions import UsageError

__all__ = ["remaining", "timeout"]

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("tether_deadline", default=None)


class timeout:
    """A deadline of ``seconds`` from now for the remote calls made inside (sync or async)."""

    __slots__ = ("_token", "seconds")

    def __init__(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise UsageError(f"tether.timeout() takes a number of seconds above 0, not {seconds!r}")
        self.seconds = float(seconds)
        self._token: Any = None

    def __enter__(self) -> timeout:
        deadline = time.monotonic() + self.seconds
        outer = _deadline.get()
        self._token = _deadline.set(deadline if outer is None else min(outer, deadline))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _deadline.reset(self._token)

    async def __aenter__(self) -> timeout:
        return self.__enter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        self.__exit__(*exc_info)


def remaining(default: float | None) -> float | None:
    """Seconds a call made now may wait: the sooner of ``default`` (a connection's
    ``timeout=``, or None) and the current :class:`timeout`'s deadline."""
    deadline = _deadline.get()
    if deadline is None:
        return default
    left = max(0.0, deadline - time.monotonic())
    return left if default is None else min(default, left)
