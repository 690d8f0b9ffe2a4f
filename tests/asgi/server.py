"""A real uvicorn serving an ASGI application in a thread of its own, for the tests.

``with Uvicorn(app) as server:`` starts ``uvicorn.Server`` on 127.0.0.1 (a free port, the
lifespan on, warnings only) in a daemon thread and waits until it listens; leaving the block
asks it to exit and waits (bounded) for the thread to end. ``server.run(coro)`` runs a
coroutine on uvicorn's own loop (where the application's sessions live).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

uvicorn = pytest.importorskip("uvicorn")

START_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0


class Uvicorn:
    def __init__(self, app: Any, **config: Any) -> None:
        settings = {
            "host": "127.0.0.1",
            "port": 0,
            "lifespan": "on",
            "log_level": "warning",
            "timeout_graceful_shutdown": 5,
            **config,
        }
        self.server = uvicorn.Server(uvicorn.Config(app, **settings))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> Uvicorn:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive():
                raise AssertionError("uvicorn exited while starting (see the log above)")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"uvicorn did not start within {START_TIMEOUT} s")
            time.sleep(0.01)
        listening = self.server.servers[0]
        self.port = listening.sockets[0].getsockname()[1]
        self.loop = listening.get_loop()
        return self

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        """Run ``coro`` on uvicorn's loop and return its result."""
        assert self.loop is not None, "start the server first"
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(STOP_TIMEOUT)
        assert not self.thread.is_alive(), f"uvicorn did not stop within {STOP_TIMEOUT} s"

    def __enter__(self) -> Uvicorn:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        if self.thread.is_alive():
            self.stop()


def wait_until(condition: Any, timeout: float = 5.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.01)
