"""The native side drives a page's DOM; closed pages and bad frames fail cleanly."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tether.exceptions import ConnectionLost

from .conftest import PageDriver, Web, new_page
from .services import PAGE_SETUP


def test_native_side_drives_the_dom_of_an_autoconnected_page(browser: Any, web: Web) -> None:
    before = set(web.peers())
    driver = new_page(browser, web.url)  # the default boot: connect back exposing tether.browser.page.Page
    try:
        page_root = web.wait_for_peer(before).root
        document = page_root.document
        document.title = "Set natively"
        element = document.createElement("p")
        element.id = "from-native"
        element.textContent = "added by the native side"
        document.body.appendChild(element)
        assert page_root.title == "Set natively"
        assert driver.page.title() == "Set natively"
        assert driver.page.text_content("#from-native") == "added by the native side"
        assert driver.page.text_content("#tether-status") == "Connected"
        info = page_root.info()
        assert info["jspi"] is True and info["python"].startswith("3.")
        assert driver.foreign == []
    finally:
        driver.close()


def test_closing_the_page_fails_pending_native_calls_promptly(browser: Any, web: Web) -> None:
    driver = new_page(browser, web.url + "?connect=0")
    before = set(web.peers())
    driver.run(PAGE_SETUP)
    server_peer = web.wait_for_peer(before)
    page_root = server_peer.root
    outcome: list[Any] = []

    def pending_call() -> None:
        try:
            outcome.append(page_root.sleep(60))
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=pending_call, daemon=True)
    caller.start()
    time.sleep(0.3)  # the call is in flight, the page is sleeping in it
    closed_at = time.monotonic()
    driver.close()
    caller.join(10)
    elapsed = time.monotonic() - closed_at
    assert outcome and isinstance(outcome[0], ConnectionLost), outcome
    assert elapsed < 2.0, f"the pending call failed only after {elapsed:.2f} s"
    with pytest.raises(ConnectionLost):
        page_root.add(1, 2)
    assert server_peer.closed


RAW_SOCKET = """
import asyncio, json, js
import tether.aio
from pyodide.ffi import create_proxy, to_js
from tether.browser import page_ws_url

async def raw_exchange(frames):
    loop = asyncio.get_running_loop()
    opened, closed = loop.create_future(), loop.create_future()
    ws = js.WebSocket.new(page_ws_url())
    ws.binaryType = "arraybuffer"
    on_open = create_proxy(lambda ev: opened.set_result(None))
    on_close = create_proxy(lambda ev: closed.set_result([ev.code, ev.reason]))
    ws.addEventListener("open", on_open)
    ws.addEventListener("close", on_close)
    try:
        await asyncio.wait_for(opened, 5)
        for frame in frames:
            ws.send(frame if isinstance(frame, str) else to_js(frame))
        return await asyncio.wait_for(closed, 5)
    finally:
        on_open.destroy()
        on_close.destroy()
"""


@pytest.mark.parametrize(
    ("frames", "reason_part"),
    [
        ("[b'\\xde\\xad\\xbe']", ""),  # shorter than one word
        ("[b'\\x60\\x00\\x00\\x00', b'\\x2f\\xff\\xff\\xff\\x00\\x00']", ""),  # opening, then an unknown tag
        ("[b'\\x00\\x00\\x00\\x05garbage']", ""),  # a message before the opening frame
        ("['a text message']", "binary"),
    ],
)
def test_bad_frames_from_a_page_close_with_1002(
    page: PageDriver, web: Web, frames: str, reason_part: str
) -> None:
    page.run(RAW_SOCKET + "'null'")
    code, reason = page.run(f"json.dumps(await raw_exchange({frames}))")
    assert code == 1002, reason
    assert reason and reason_part in reason
    # The server keeps serving: a new conversation on the same page works.
    assert (
        page.run("""
async with tether.aio.connect() as p:
    r = await p.root.add(20, 22)
json.dumps(r)
""")
        == 42
    )


def test_native_side_closing_fails_the_pages_pending_calls_promptly(page: PageDriver, web: Web) -> None:
    before = set(web.peers())
    page.run(
        "import asyncio, json, time, tether.aio\n"
        "closing_peer = await tether.aio.connect()\n"
        "pending = asyncio.ensure_future(closing_peer.root.sleep(5))\n"
        "'null'"
    )
    server_peer = web.wait_for_peer(before)
    web.runner.run(server_peer.close())
    result = page.run(
        """
t = time.perf_counter()
try:
    await pending
    outcome = "answered"
except tether.ConnectionLost as exc:
    outcome = "ConnectionLost: " + str(exc)
json.dumps([outcome, time.perf_counter() - t, closing_peer.closed])
"""
    )
    outcome, waited, closed = result
    assert outcome.startswith("ConnectionLost"), outcome
    assert waited < 2.0 and closed
