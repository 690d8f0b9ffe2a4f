"""The receiving side of promise pipelining: answers kept for the messages a peer sends to them
before they arrive (``docs/protocol.md`` 4.1, "keep" and "answer of").

A session has one :class:`KeptAnswers`. When the peer's call says *keep*, the session calls
:meth:`KeptAnswers.keep` before running it and :meth:`KeptAnswers.settle` when it finishes;
a message whose receiver is an :class:`~tether.frames.AnswerOf` goes to
:meth:`KeptAnswers.pipelined`, which runs it on the kept answer (through the session's gate)
as soon as that is there, in arrival order, or fails it with the call's error. The peer's
``drop_answers`` calls :meth:`KeptAnswers.drop`. The sending side is ``tether.aio.promise``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .errors import register_runtime_file
from .exceptions import Busy, ProtocolError
from .frames import MessageSend
from .limits import Limits

register_runtime_file(__file__)  # its frames stay out of tracebacks sent to peers

__all__ = ["KeptAnswers"]


class _Kept:
    """An answer kept for messages pipelined on it: done, then result or error."""

    __slots__ = ("done", "error", "result", "waiting")

    def __init__(self) -> None:
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.waiting: list[MessageSend] = []


class KeptAnswers:
    """One connection's kept answers (see the module docstring). ``run(message)`` starts a
    message (the session's gate); ``answer(message, result, error)`` answers one."""

    def __init__(
        self,
        limits: Limits,
        run: Callable[[MessageSend], None],
        answer: Callable[[MessageSend, Any, BaseException | None], None],
    ) -> None:
        self._limits = limits
        self._run = run
        self._answer = answer
        self._kept: dict[bytes, _Kept] = {}
        self._lock = threading.Lock()
        self._waiting = 0
        self._waiting_bytes = 0  # the frame bytes of the waiting messages

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, message: MessageSend) -> bool:
        """Keep this call's answer; False (and the call answered with Busy, not run) when
        ``Limits.max_kept_answers`` are kept already."""
        limit = self._limits.max_kept_answers
        with self._lock:
            if len(self._kept) < limit:
                self._kept[message.exchange_id] = _Kept()  # type: ignore[index]
                return True
        self._answer(message, None, Busy(
            f"{limit} answers are kept for this peer's pipelined messages already "
            "(Limits.max_kept_answers): await some of them, or let them go"
        ))  # fmt: skip
        return False

    def pipelined(self, message: MessageSend) -> None:
        """A message sent to the answer of the peer's call (``AnswerOf``): run it on that answer
        once it is there, in the order such messages came; fail it with that call's error."""
        target = message.receiver.exchange_id  # type: ignore[attr-defined]
        with self._lock:
            kept = self._kept.get(target)
            busy = False
            if kept is not None and not kept.done:
                limits = self._limits
                if self._waiting < limits.max_queued and (
                    not self._waiting or self._waiting_bytes + message.size <= limits.max_queued_bytes
                ):
                    kept.waiting.append(message)
                    self._waiting += 1
                    self._waiting_bytes += message.size
                    return
                busy = True
                waiting, waiting_bytes = self._waiting, self._waiting_bytes
        if busy:
            self._answer(message, None, Busy(
                f"{waiting} messages wait for answers already, {waiting_bytes} bytes of frames "
                f"(Limits.max_queued {self._limits.max_queued}, Limits.max_queued_bytes "
                f"{self._limits.max_queued_bytes})"
            ))  # fmt: skip
            return
        self._release(message, kept)

    def settle(self, exchange_id: bytes, result: Any, error: BaseException | None) -> None:
        """The kept call ``exchange_id`` finished: run (or fail) what waits for it."""
        with self._lock:
            kept = self._kept.get(exchange_id)
            if kept is None or kept.done:
                return
            kept.done, kept.result, kept.error = True, result, error
            waiting, kept.waiting = kept.waiting, []
            self._waiting -= len(waiting)
            self._waiting_bytes -= sum(m.size for m in waiting)
        for message in waiting:
            self._release(message, kept)

    def drop(self, exchange_ids: list[bytes]) -> None:
        """The peer will pipeline nothing more on these answers: forget them."""
        orphans: list[MessageSend] = []
        with self._lock:
            for exchange_id in exchange_ids:
                kept = self._kept.pop(exchange_id, None)
                if kept is not None and kept.waiting:
                    orphans += kept.waiting
                    self._waiting -= len(kept.waiting)
                    self._waiting_bytes -= sum(m.size for m in kept.waiting)
        for message in orphans:
            self._release(message, None)

    def clear(self) -> None:
        """The connection is gone: forget everything (waiting messages are not answered)."""
        with self._lock:
            self._kept.clear()
            self._waiting = self._waiting_bytes = 0

    def _release(self, message: MessageSend, kept: _Kept | None) -> None:
        if kept is None:
            self._answer(message, None, ProtocolError(
                "a message was pipelined on the answer to a call this side does not keep (the call "
                "did not ask for it to be kept, was refused for Limits.max_kept_answers, or the "
                "answer was dropped)"
            ))  # fmt: skip
        elif kept.error is not None:
            self._answer(message, None, kept.error)  # the error goes down the chain
        else:
            message.receiver = kept.result
            self._run(message)
