"""Objects served by the loopback tests, importable by server subprocesses
(``python -m tether serve tests.native.services:make_service``)."""

from __future__ import annotations

import os
import time
from typing import Any


class Calculator:
    def add(self, a: int, b: int) -> int:
        return a + b

    def echo(self, x: Any) -> Any:
        return x

    def sleep(self, seconds: float) -> str:
        time.sleep(seconds)
        return "slept"

    def pid(self) -> int:
        return os.getpid()

    def bounce(self, n: int, other: Any) -> int:
        return 0 if n == 0 else 1 + other.bounce(n - 1, self)

    def apply(self, f: Any, *args: Any) -> Any:
        return f(*args)

    def fail(self) -> None:
        raise ZeroDivisionError("division by zero, remotely")

    def _private(self) -> str:
        return "private"


class Service(Calculator):
    """A per-connection root that can call the client back through its peer."""

    def __init__(self, peer: Any) -> None:
        self.peer = peer

    def ask_client(self, question: str) -> Any:
        return self.peer.root.answer(question)


def make_service(peer: Any) -> Service:
    return Service(peer)


calculator = Calculator()
