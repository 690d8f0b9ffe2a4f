"""A bound on one peer's messages running here at once (``Limits.max_concurrency``).

Every runtime hands each incoming message to :meth:`CallGate.submit` instead of starting it
directly; the gate starts it at once while fewer than ``limit`` of that peer's messages are
running, queues it (in arrival order) otherwise, and answers it with an error when the queue
holds ``max_queued`` already. A runtime calls :meth:`CallGate.done` when a message it started
has finished, which starts the next queued one. So one peer can occupy at most ``limit``
threads or tasks, however many calls it sends, and nothing it sends is dropped silently.

A chain of nested calls between two peers holds one running message per hop on each side, so
the limit also bounds how deep such a chain can nest on one connection (default 256 a side:
512 hops).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from .exceptions import Busy

__all__ = ["CallGate"]


class CallGate:
    """Runs a peer's messages through ``start(message)``, at most ``limit`` at once."""

    __slots__ = ("_lock", "_queue", "_refuse", "_start", "limit", "max_queued", "running")

    def __init__(
        self,
        limit: int,
        max_queued: int,
        start: Callable[[Any], None],
        refuse: Callable[[Any, BaseException], None],
    ) -> None:
        self.limit = limit
        self.max_queued = max_queued
        self.running = 0
        self._queue: deque[Any] = deque()
        self._lock = threading.Lock()
        self._start = start
        self._refuse = refuse

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, message: Any) -> None:
        """Start ``message`` now, or queue it behind the running ones."""
        with self._lock:
            if self.running < self.limit:
                self.running += 1
                go = True
            elif len(self._queue) < self.max_queued:
                self._queue.append(message)
                return
            else:
                go = False
        if go:
            self._start(message)
            return
        self._refuse(
            message,
            Busy(
                f"{self.limit} calls from this peer are running here and {self.max_queued} more "
                "are waiting (Limits.max_concurrency, Limits.max_queued); call again later"
            ),
        )

    def done(self) -> None:
        """A started message finished: start the next queued one, if any."""
        with self._lock:
            if self._queue:
                message = self._queue.popleft()
            else:
                self.running -= 1
                return
        self._start(message)

    def clear(self) -> list[Any]:
        """Forget the queued messages (the connection is gone); return them."""
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
        return queued
