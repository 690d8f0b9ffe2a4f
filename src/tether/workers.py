"""Threads for the threading runtime: an elastic worker pool and the release flusher.

The pool never runs out: when every worker is blocked (say 500 of them, each in a nested remote
call) a new one starts, and a worker left idle for ``idle_timeout`` seconds ends. Nested calls
therefore never deadlock for want of a thread, and an idle process keeps few threads.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from .errors import register_runtime_file

__all__ = ["ReleaseFlusher", "WorkerPool", "worker_pool"]

register_runtime_file(__file__)  # its frames stay out of tracebacks sent to peers


_NOT_BLOCKING: Final = contextlib.nullcontext()  # what blocked() gives where there is nothing to count

# The share of a wait's time this process must have spent on a CPU for the supervisor to take
# its workers for busy, not stuck (stuck ones sleep, or wait for a lock or a socket).
_BUSY_SHARE: Final = 0.25


class WorkerPool:
    """Runs each submitted job on a worker thread; grows so that no job waits on stuck workers.

    Up to ``eager`` workers (default: twice the cores, at least 4) that are not blocked start
    as soon as jobs arrive. A worker that blocks (waits for a remote answer, or watches a
    connection: see :meth:`blocked`) no longer counts, so one starts at once in its place if
    jobs wait; beyond that a job waits for a worker to finish, and a supervisor starts more
    when queued jobs have waited ``starve_after`` seconds with no job finishing (handlers that
    sleep or block on something else). So nested calls never deadlock, quick handlers share a
    few threads (a burst of messages does not start one per block), and a worker left idle for
    ``idle_timeout`` seconds ends. While the process computes (its threads used a quarter of
    that wait on a CPU, or more), or the machine is busy (the supervisor's own wait took over
    twice as long), the jobs may wait for the interpreter lock or a core, not on stuck workers:
    then the supervisor starts one worker a wait, not one per waiting job (up to 64), which
    would only contend (a busy machine grew the pool by 64 at a time). Stuck jobs on a busy
    machine still get their workers, one wait after another.
    """

    def __init__(
        self,
        idle_timeout: float = 30.0,
        eager: int | None = None,
        starve_after: float = 0.01,
        name: str = "tether-worker",
    ) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads = 0
        self._blocked = 0
        self._finished = 0
        self._eager = eager if eager is not None else max(4, 2 * (os.cpu_count() or 2))
        self._idle_timeout = idle_timeout
        self._starve_after = starve_after
        self._name = name
        self._local = threading.local()
        self._wakeup = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def threads(self) -> int:
        return self._threads

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._jobs.put((fn, args))
        with self._lock:
            if self._jobs.qsize() <= self._idle:
                return  # a worker waiting for a job takes it
            start = self._threads - self._blocked < self._eager
            if start:
                self._threads += 1
        if start:
            self._start(1)
        else:
            self._wake_supervisor()

    def hand_off(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Give ``fn(*args)`` to a worker that waits for a job, if one does (then True), so that
        it runs now, not behind queued jobs; False: nothing was submitted."""
        with self._lock:
            if self._jobs.qsize() >= self._idle:
                return False
            self._jobs.put((fn, args))  # a worker waiting for a job takes it
        return True

    def _start(self, n: int) -> None:
        for _ in range(n):
            threading.Thread(target=self._work, name=self._name, daemon=True).start()

    def _work(self) -> None:
        self._local.worker = True
        get = self._jobs.get
        lock = self._lock
        fn: Any  # (Any: both are dropped, set to None, before the next wait)
        args: Any
        while True:
            with lock:
                self._idle += 1  # counts exactly the workers waiting in get()
            try:
                fn, args = get(timeout=self._idle_timeout)
            except queue.Empty:
                with lock:
                    self._idle -= 1
                    if self._jobs.empty():
                        self._threads -= 1
                        return
                continue
            with lock:
                self._idle -= 1
                backlog = self._jobs.qsize() > self._idle
            if backlog:  # more jobs than waiting workers: let the supervisor watch them
                self._wake_supervisor()
            try:
                fn(*args)
            except BaseException:  # jobs handle their own errors; a stray one must not kill us
                pass
            fn = args = None  # drop references before waiting again
            with lock:
                self._finished += 1

    def blocked(self) -> contextlib.AbstractContextManager[None]:
        """Mark the current worker as blocked (waiting for a remote answer) while inside; a
        worker blocked again inside (a message it runs meanwhile waits too) counts once.
        Outside a worker, or nested, it does nothing (and costs next to nothing)."""
        mine = self._local.__dict__  # this thread's own: a miss raises nothing (getattr's would)
        if not mine.get("worker", False) or mine.get("blocked", False):
            return _NOT_BLOCKING
        return self._blocking()

    @contextlib.contextmanager
    def _blocking(self) -> Iterator[None]:
        self.block()
        try:
            yield
        finally:
            self.unblock()

    def block(self) -> bool:
        """What :meth:`blocked` does on entering, for a hot loop: True if this thread is now
        counted as blocked; then call :meth:`unblock` when it is not any more."""
        local = self._local
        mine = local.__dict__  # (as in blocked)
        if not mine.get("worker", False) or mine.get("blocked", False):
            return False
        local.blocked = True
        with self._lock:
            self._blocked += 1
            # Jobs wait and fewer than ``eager`` workers are left to run them: one more starts
            # (submit's rule; more would only contend with the others for the interpreter).
            start = self._jobs.qsize() > self._idle and self._threads - self._blocked < self._eager
            if start:
                self._threads += 1
        if start:
            self._start(1)
        return True

    def unblock(self) -> None:
        """This thread, counted as blocked by :meth:`block`, is not any more."""
        self._local.blocked = False
        with self._lock:
            self._blocked -= 1

    def _wake_supervisor(self) -> None:
        if self._supervisor is None:
            with self._lock:
                if self._supervisor is None:
                    self._supervisor = threading.Thread(
                        target=self._supervise, name=f"{self._name}-supervisor", daemon=True
                    )
                    self._supervisor.start()
        # (threading.Event.set is six Python calls: a burst of messages calls this once or
        # twice per message, and the flag stays set while the supervisor watches the queue)
        if not self._wakeup.is_set():
            self._wakeup.set()

    def _supervise(self) -> None:
        while True:
            self._wakeup.wait()
            while True:
                while not self._jobs.empty():
                    finished = self._finished
                    started, used = time.monotonic(), time.process_time()
                    time.sleep(self._starve_after)
                    waiting = self._jobs.qsize() - self._idle
                    if waiting > 0 and self._finished == finished:  # no worker finished: stuck?
                        waited = time.monotonic() - started  # (more than twice the sleep: starved too)
                        busy = waited > 2 * self._starve_after or time.process_time() - used >= _BUSY_SHARE * waited
                        n = 1 if busy else min(waiting, 64)
                        with self._lock:
                            self._threads += n
                        self._start(n)
                # Cleared only now (a wake meanwhile found it set and did nothing), then the
                # queue is looked at once more: a job queued before the clear is seen here, one
                # queued after it sets the flag again.
                self._wakeup.clear()
                if self._jobs.empty():
                    break


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
        self._flusher: threading.Thread | None = None  # (not _thread: mypyc names the C field __thread, a C keyword)
        self._lock = threading.Lock()

    def request(self, flush: Callable[[], None]) -> None:
        if sys.is_finalizing():  # no thread can start now, and the connections are closed
            return
        self._requests.put(flush)
        if self._flusher is None:
            with self._lock:
                if self._flusher is None:
                    self._flusher = threading.Thread(
                        target=self._run, name="tether-release", daemon=True
                    )
                    self._flusher.start()

    def _run(self) -> None:
        while True:
            flush = self._requests.get()
            time.sleep(self._delay)
            try:
                flush()
            except BaseException:
                pass


release_flusher = ReleaseFlusher()
