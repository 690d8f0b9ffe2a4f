"""Threads for the threading runtime: an elastic worker pool and the release flusher.

The pool never runs out: when every worker is busy (say 500 of them, each blocked in a nested
remote call) a new one starts, and a worker left idle for ``idle_timeout`` seconds ends. Nested
calls therefore never deadlock for want of a thread, and an idle process keeps few threads.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any


class WorkerPool:
    """Runs each submitted job on an idle worker thread, starting a new one if none is idle."""

    def __init__(self, idle_timeout: float = 30.0, name: str = "tether-worker") -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads = 0
        self._idle_timeout = idle_timeout
        self._name = name

    @property
    def threads(self) -> int:
        return self._threads

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1
                start = False
            else:
                self._threads += 1
                start = True
        self._jobs.put((fn, args))
        if start:
            threading.Thread(target=self._work, name=self._name, daemon=True).start()

    def _work(self) -> None:
        get = self._jobs.get
        while True:
            try:
                fn, args = get(timeout=self._idle_timeout)
            except queue.Empty:
                with self._lock:
                    if self._idle:  # nobody claimed this worker: it may end
                        self._idle -= 1
                        self._threads -= 1
                        return
                continue  # a submitter claimed an idle worker: its job is on the way
            try:
                fn(*args)
            except BaseException:  # jobs handle their own errors; a stray one must not kill us
                pass
            fn = args = None  # type: ignore[assignment]  # drop references before idling
            with self._lock:
                self._idle += 1


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def worker_pool() -> WorkerPool:
    """The process-wide pool that runs incoming messages of threading sessions."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = WorkerPool()
    return _pool


class ReleaseFlusher:
    """One thread that sends batched release messages for every session that has some.

    ``request(flush)`` may be called from a garbage-collector callback in any thread:
    ``SimpleQueue.put`` is safe there. The flusher waits ``delay`` seconds after a request so
    that releases arriving together travel in one message.
    """

    def __init__(self, delay: float = 0.005) -> None:
        self._requests: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._delay = delay
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def request(self, flush: Callable[[], None]) -> None:
        self._requests.put(flush)
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="tether-release", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while True:
            flush = self._requests.get()
            time.sleep(self._delay)
            try:
                flush()
            except BaseException:
                pass


release_flusher = ReleaseFlusher()
