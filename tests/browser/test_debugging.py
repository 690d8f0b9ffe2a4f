"""Remote debugging with a page (``tether.debug``): a page's failing handler shows its frames in
the native caller's traceback, the native side's frames show in the page's, and what needs a
thread to block (a post-mortem in the page) says it cannot."""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from typing import Any

import pytest

import tether

from .conftest import LoopThread, PageDriver, new_page, pyodide_or_skip

PAGE_MODULE = '''
import traceback


class PageRoot:
    def fail(self, n):
        page_local = n * 2
        raise KeyError(f"page {n}")

    def call_native(self, native):
        try:
            native.divide(1, 0)  # the sync face (JSPI) in a handler
        except ZeroDivisionError as err:
            return "".join(traceback.format_exception(err))
'''

PAGE_SETUP = f"""
import json, sys
import tether, tether.aio
with open("/home/pyodide/pagedebug.py", "w") as f:
    f.write({PAGE_MODULE!r})
sys.path.insert(0, "/home/pyodide")
import pagedebug
peer = await tether.aio.connect(root=pagedebug.PageRoot(), debug=True)
json.dumps(peer.info.get("debug"))
"""


class Native:
    def divide(self, a: int, b: int) -> float:
        native_local = a
        return native_local / b


class Server:
    def __init__(self, runner: LoopThread, server: Any) -> None:
        self.runner = runner
        self.server = server


@pytest.fixture(scope="module")
def debugging_web() -> Iterator[Server]:
    """serve_web with debug=True: the pages that ask for debugging get it."""
    pyodide_dir = pyodide_or_skip()
    import tether.web
    runner = LoopThread()

    async def start() -> Any:
        return await tether.web.serve_web(lambda peer: Native(), port=0, pyodide_dir=pyodide_dir, debug=True)

    server = runner.run(start())
    try:
        yield Server(runner, server)
    finally:
        runner.run(server.close())
        runner.stop()


@pytest.fixture(scope="module")
def debugging_page(browser: Any, debugging_web: Server) -> Iterator[tuple[PageDriver, Any]]:
    driver = new_page(browser, str(debugging_web.server.url) + "?connect=0")
    try:
        before = set(debugging_web.server.peers)
        assert driver.run(PAGE_SETUP) is True  # the server's hello says debug too
        peers = [p for p in debugging_web.server.peers if p not in before]
        assert peers, "the page did not connect"
        yield driver, peers[0]
    finally:
        driver.close()


def test_a_pages_failing_handler_shows_its_frames_to_a_native_debugging_caller(
    debugging_page: tuple[PageDriver, Any],
) -> None:
    _, page_peer = debugging_page
    with pytest.raises(KeyError) as caught:
        page_peer.root.fail(3)
    text = "".join(traceback.format_exception(caught.value))
    assert "/home/pyodide/pagedebug.py>\", line 8, in fail" in text
    assert '    raise KeyError(f"page {n}")' in text
    assert text.rstrip().endswith("KeyError: 'page 3'")


def test_the_native_sides_frames_show_in_the_pages_traceback(debugging_page: tuple[PageDriver, Any]) -> None:
    _, page_peer = debugging_page
    text = page_peer.root.call_native(Native())
    assert f'{__file__}>", line {Native.divide.__code__.co_firstlineno + 2}, in divide' in text
    assert "    return native_local / b" in text
    assert "ZeroDivisionError: division by zero" in text


def test_a_post_mortem_in_a_page_says_it_cannot(debugging_page: tuple[PageDriver, Any]) -> None:
    _, page_peer = debugging_page
    with pytest.raises(KeyError) as caught:
        page_peer.root.fail(4)
    with pytest.raises(tether.UsageError, match=r"a post-mortem blocks a thread while the debugger runs"):
        tether.post_mortem(caught.value)


def test_the_browser_demo_shows_the_native_frames_in_the_pages_traceback(browser: Any) -> None:
    """``python -m tether demo --once`` (the demo of ``make demo``): its page and its server
    both ask for debugging, so the page's traceback of a native KeyError shows the native frame."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import tether.web

    from .conftest import CHROMIUM

    source = str(Path(tether.web.__file__).parents[2])
    env = dict(os.environ, PYTHONIOENCODING="utf-8", TETHER_CHROMIUM=CHROMIUM)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
    out = subprocess.run(
        [sys.executable, "-m", "tether", "demo", "--once", "--port", "0"],
        capture_output=True, text=True, timeout=85, env=env, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    step = out.stdout.split("and traceback.print_exception(exc) in the page reads like a local one (debug=True):", 1)[1]
    assert "tether_demo/page.py\", line " in step and "in look_up" in step
    assert '|   File "<remote ws://127.0.0.1:' in step and 'tether_demo/web.py>", line ' in step
    assert "in author\n       |     return self.shelf[title]" in step
