"""``tether.aio.stepping.send_now``: a send's first step taken at once, the rest (if it waits)
finished by a task as a task would run it, whatever it yields."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tether.aio.stepping import send_now

pytestmark = pytest.mark.timeout(30)


async def test_a_send_that_does_not_wait_runs_whole_and_makes_no_task() -> None:
    steps: list[str] = []

    async def send() -> None:
        steps.append("written")

    unfinished: set[asyncio.Task[None]] = set()
    before = asyncio.all_tasks()
    send_now(send(), unfinished)
    assert steps == ["written"] and not unfinished and asyncio.all_tasks() == before


async def test_a_send_that_waits_is_finished_by_a_task_through_every_kind_of_wait() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[str] = loop.create_future()
    failing: asyncio.Future[str] = loop.create_future()
    steps: list[Any] = []

    async def send() -> None:
        steps.append("written")
        steps.append(await gate)  # a future: its result comes back into the send
        await asyncio.sleep(0)  # a bare yield
        try:
            await failing  # a future that fails: the send sees the exception
        except KeyError as exc:
            steps.append(repr(exc))
        steps.append("done")

    unfinished: set[asyncio.Task[None]] = set()
    send_now(send(), unfinished)
    assert steps == ["written"] and len(unfinished) == 1
    gate.set_result("drained")
    await asyncio.sleep(0.01)
    failing.set_exception(KeyError("x"))
    await asyncio.wait_for(asyncio.wait(set(unfinished)), 2)
    assert steps == ["written", "drained", "KeyError('x')", "done"] and not unfinished


async def test_the_first_steps_exception_is_raised_to_the_caller() -> None:
    async def send() -> None:
        raise ConnectionResetError("closed")

    with pytest.raises(ConnectionResetError):
        send_now(send(), set())


async def test_a_failure_after_waiting_is_retrieved_and_a_cancel_closes_the_send() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda loop, context: reported.append(context))
    try:
        gate: asyncio.Future[None] = loop.create_future()
        closed: list[bool] = []

        async def fails() -> None:
            await gate
            raise OSError("lost")

        async def cancelled() -> None:
            try:
                await loop.create_future()
            finally:
                closed.append(True)

        unfinished: set[asyncio.Task[None]] = set()
        send_now(fails(), unfinished)
        send_now(cancelled(), unfinished)
        tasks = set(unfinished)
        gate.set_result(None)
        await asyncio.sleep(0.01)
        for task in unfinished:
            task.cancel()
        await asyncio.wait(tasks, timeout=2)
        assert not unfinished and closed == [True]
        del tasks
        import gc

        gc.collect()
        await asyncio.sleep(0)
        assert reported == []
    finally:
        loop.set_exception_handler(None)
