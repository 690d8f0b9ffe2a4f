"""The threading runtime's worker pool (``tether.workers``): a worker that blocks (waits for a
remote answer, or watches a connection) makes room for a queued job at once, so waiting never
deadlocks for want of a thread; and it starts one only while fewer than ``eager`` workers are
left to run jobs, so a burst of messages does not start a thread per block."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from tether.workers import WorkerPool


def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


def test_a_blocking_worker_starts_one_for_a_queued_job_at_once() -> None:
    """Both workers (eager=2) wait for what the queued third job does: the first to block
    starts a worker for it, without the supervisor (it would wait a minute here)."""
    pool = WorkerPool(idle_timeout=5, eager=2, starve_after=60)
    go = threading.Event()
    started = threading.Barrier(3)
    done: list[bool] = []

    def waits() -> None:
        started.wait(5)  # (both run, and the third job is queued, before either blocks)
        counted = pool.block()
        try:
            done.append(go.wait(5))
        finally:
            if counted:
                pool.unblock()

    pool.submit(waits)
    pool.submit(waits)
    pool.submit(go.set)  # queued: two workers run, eager=2
    assert pool.threads == 2
    started.wait(5)
    until(lambda: len(done) == 2, "both waiting jobs to end")
    assert done == [True, True]
    assert pool.threads <= 4  # (each blocking worker may have started one)


def test_a_worker_that_blocks_again_and_again_in_a_burst_starts_no_thread_per_block() -> None:
    """One worker blocks and unblocks 50 times while 200 short jobs wait (a watcher of a
    connection that is sent a burst of messages does this): the pool keeps about ``eager``
    workers running, not one more per block (this started a thread per block before)."""
    pool = WorkerPool(idle_timeout=5, eager=2, starve_after=60)
    ran: list[int] = []
    gate = threading.Event()

    def quick(i: int) -> None:
        gate.wait(5)
        time.sleep(0.001)  # (the queue lasts longer than the 50 blocks)
        ran.append(i)

    def blocks_often() -> None:
        gate.set()
        for _ in range(50):
            counted = pool.block()
            time.sleep(0.0005)
            if counted:
                pool.unblock()

    pool.submit(blocks_often)
    for i in range(200):
        pool.submit(quick, i)
    until(lambda: len(ran) == 200, "the short jobs to run")
    assert sorted(ran) == list(range(200))
    assert pool.threads <= 3  # eager=2, and one started while blocks_often was counted blocked


def test_the_supervisor_starts_workers_for_stuck_jobs_burst_after_burst() -> None:
    """Jobs that block on something else (not counted as blocked) leave queued jobs waiting:
    the supervisor starts workers for them after ``starve_after``, for a second burst as well
    as for the first (it goes back to waiting between them, and must be woken again)."""
    pool = WorkerPool(idle_timeout=5, eager=1, starve_after=0.01)
    for burst in range(3):
        go = threading.Event()
        running: list[int] = []

        def stuck(i: int, go: threading.Event = go, running: list[int] = running) -> None:
            running.append(i)
            go.wait(5)  # (all four must run at once before any ends)

        for i in range(4):
            pool.submit(stuck, i)
        until(lambda running=running: len(running) == 4, f"all four stuck jobs of burst {burst} to run")
        go.set()
        until(lambda: pool._jobs.empty(), "the queue to empty")
        time.sleep(0.05)
        assert not pool._wakeup.is_set(), "the supervisor should wait for the next burst, not spin"


def test_while_the_process_computes_the_supervisor_starts_one_worker_at_a_time() -> None:
    """A job that computes holds the only eager worker while 50 quick jobs queue: no job
    finishes for a while, but the process is busy (on a CPU), not stuck. The supervisor starts
    one worker a wait (it runs the quick jobs), not 50 (which only contend for the interpreter
    lock: a busy machine grew a server's pool by 64 at a time)."""
    pool = WorkerPool(idle_timeout=5, eager=1, starve_after=0.01)
    finished: list[int] = []

    def compute() -> None:
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            sum(range(1000))  # Python work: the interpreter lock is held, a CPU used
        finished.append(-1)

    pool.submit(compute)
    until(lambda: pool.threads == 1 and pool._jobs.empty(), "the computing job to start")
    for i in range(50):
        pool.submit(finished.append, i)
    until(lambda: len(finished) == 51, "every job to finish")
    # (one more a wait at most, and the quick jobs finish on the first: 2 here; before, 51)
    assert pool.threads <= 10, f"{pool.threads} workers for one computing job and 50 quick ones"


def test_a_supervisor_that_waits_too_long_to_run_starts_one_worker_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs stuck on an idle process get a worker each after one wait; but when the supervisor's
    own wait takes over twice as long as it asked (the machine, or the interpreter lock, kept it
    from running: the workers may be starved, not stuck), it starts one worker a wait. (Here
    its sleep is made slow: the stuck jobs still all run, one more per wait.)"""
    real_sleep = time.sleep

    def starved_sleep(seconds: float) -> None:
        real_sleep(seconds * 20 if seconds >= 0.01 else seconds)

    monkeypatch.setattr(time, "sleep", starved_sleep)
    pool = WorkerPool(idle_timeout=5, eager=1, starve_after=0.01)
    go = threading.Event()
    running: list[int] = []

    def stuck(i: int) -> None:
        running.append(i)
        go.wait(5)

    try:
        for i in range(4):
            pool.submit(stuck, i)
        until(lambda: len(running) >= 2, "a second stuck job to run")
        assert len(running) == 2 and pool.threads == 2, f"{pool.threads} workers after one starved wait"
        until(lambda: len(running) == 4, "every stuck job to run, one wait after another")
    finally:
        go.set()
