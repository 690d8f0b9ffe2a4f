"""Run a send's first step now and leave only the rest, if any, to a task.

A transport whose ``send`` hands the message over before its first suspension point (the
contract of :class:`~tether.transports.AsyncTransport`; true of ``tether.web``'s and
``tether.asgi``'s) offers ``send_nowait`` with :func:`send_now`: the message is written (or
queued in order) at once, and a task is made only when the send then waits (for a full buffer to
drain). The session writes each frame that way, with no flush task per frame.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["send_now"]


def send_now(sending: Coroutine[Any, Any, None], unfinished: set[asyncio.Task[None]]) -> None:
    """Take ``sending``'s first step here (on the loop's thread). If it ends there, that is all;
    if it waits, a task finishes it, kept in ``unfinished`` until it ends (its outcome is
    retrieved: a failed send shows as the connection's end, which its reader reports). An
    exception of the first step is raised here, as ``send`` would raise it."""
    try:
        waiting = _taken(sending.send(None))
    except StopIteration:
        return
    task = asyncio.get_running_loop().create_task(_finish(sending, waiting))
    unfinished.add(task)
    task.add_done_callback(lambda done: _ended(done, unfinished))


def _ended(task: asyncio.Task[None], unfinished: set[asyncio.Task[None]]) -> None:
    unfinished.discard(task)
    if not task.cancelled():
        task.exception()  # (retrieved)


async def _finish(sending: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Run a started send to its end, as a task would: ``waiting`` is what it yielded (a
    future, or None for a bare yield)."""
    while True:
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                await waiting
        except asyncio.CancelledError:
            sending.close()  # the connection is going: so is the send
            raise
        except Exception:
            pass  # the send sees the same outcome when it resumes
        try:
            waiting = _taken(sending.send(None))
        except StopIteration:
            return


def _taken(waiting: Any) -> Any:
    """What a task does with a future its coroutine yields: take it (clear the flag that the
    future's ``await`` set; the next ``await`` of that future, ours, sets it again)."""
    if waiting is not None:
        waiting._asyncio_future_blocking = False
    return waiting
